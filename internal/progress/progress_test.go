package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBarPrintsCountRateETAAndFields(t *testing.T) {
	var buf bytes.Buffer
	b := New("train", 10, 110, "steps")
	b.Out, b.isTerm, b.Every = &buf, false, 0
	b.start = time.Now().Add(-10 * time.Second)
	b.Set(60, map[string]float64{"loss": 0.25})
	line := buf.String()
	for _, want := range []string{"train 60/110 steps", "(55%)", "ETA 10s", "loss=0.25"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
}
