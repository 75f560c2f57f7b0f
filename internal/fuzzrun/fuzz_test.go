// Package fuzzrun runs every fuzz target of the decoders that take user
// bytes for a bounded time in the full suite (go test ./...): PNG masks and
// scribbles, JSON requests, safetensors headers, PyTorch checkpoints.
// `go test -short` skips it; DDGI_FUZZTIME sets the time per target.
package fuzzrun

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

var targets = []struct{ pkg, name string }{
	{"data", "FuzzDecodeMask"},
	{"data", "FuzzDecodeScribble"},
	{"server", "FuzzReadJSON"},
	{"safetensors", "FuzzRead"},
	{"convert/torchfile", "FuzzOpen"},
}

func TestFuzzTargetsBriefly(t *testing.T) {
	if testing.Short() {
		t.Skip("fuzzing runs in the full suite")
	}
	fuzztime := os.Getenv("DDGI_FUZZTIME")
	if fuzztime == "" {
		fuzztime = "10s"
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to fuzz with")
		}
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			cmd := exec.Command(goBin, "test", "-run", "^$", "-fuzz", "^"+tg.name+"$", "-fuzztime", fuzztime, "-parallel", "1", ".")
			cmd.Dir = filepath.Join("..", "..", tg.pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s/%s: %v\n%s", tg.pkg, tg.name, err, out)
			}
		})
	}
}
