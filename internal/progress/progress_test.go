package progress

import (
	"bytes"
	"os"
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

// TestBarsAreQuietOffTerminal: with stderr in a file a bar prints nothing
// (a piped run stays clean) unless made by NewLogged (training logs), and
// Quiet silences both.
func TestBarsAreQuietOffTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stderr := os.Stderr
	os.Stderr = f
	defer func() { os.Stderr = stderr }()
	for _, c := range []struct {
		quiet, logged, prints bool
	}{{false, false, false}, {false, true, true}, {true, false, false}, {true, true, false}} {
		Quiet = c.quiet
		b := New("job", 0, 2, "img")
		if c.logged {
			b = NewLogged("job", 0, 2, "img")
		}
		Quiet = false
		st, _ := f.Stat()
		before := st.Size()
		b.Set(1, nil)
		b.Set(2, nil)
		b.Finish()
		st, _ = f.Stat()
		if printed := st.Size() > before; printed != c.prints {
			t.Errorf("quiet %v, logged %v: printed %v, want %v", c.quiet, c.logged, printed, c.prints)
		}
	}
}
