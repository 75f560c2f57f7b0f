package server

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzReadJSON: any body gives a validated request or a one-line error,
// never a panic (the checks shared with ddgi generate run too).
func FuzzReadJSON(f *testing.F) {
	for _, s := range []string{
		`{"text":"A woman.","mask":"iVBORw0KGgo="}`,
		`{"text":"A man.","scribble":"data:image/png;base64,AAAA","gan":"eg3d","yaw":30,"pitch":-5,"views":4,"seed":7,"format":"json"}`,
		`{"text":"x","mask":"AA==","scribble":"AA=="}`,
		`{"text":"","yaw":1e309}`,
		`{"text":"a"}{"text":"b"}`,
		`[1,2,3]`,
		`{"unknown":1}`,
	} {
		f.Add([]byte(s))
	}
	s := &Server{cfg: Config{}}
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, err := readJSON(bytes.NewReader(b))
		if err == nil {
			_, err = s.validate(raw, httptest.NewRequest("POST", "/api/generate", nil))
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error %q", err)
		}
	})
}
