// Package golden compares tensors with reference values stored in a
// safetensors file under testdata: outputs that must not change when code
// is refactored (the shipped models' renders) or that came from another
// implementation (parity fixtures). With DDGI_WRITE_GOLDEN=1 a missing or
// differing reference is (re)written instead, for use on the commit whose
// outputs are the reference.
package golden

import (
	"os"
	"slices"
	"testing"

	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

// Writing reports whether references are being (re)written.
func Writing() bool { return os.Getenv("DDGI_WRITE_GOLDEN") == "1" }

// Load reads every tensor of a reference file as float32 CPU tensors.
func Load(t testing.TB, path string) map[string]*torch.Tensor {
	t.Helper()
	f, err := safetensors.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*torch.Tensor, len(f.Tensors))
	for name, st := range f.Tensors {
		x, err := nn.FromSafetensors(st, torch.CPU)
		if err != nil {
			t.Fatalf("%s: tensor %s: %v", path, name, err)
		}
		out[name] = x.To(torch.Float32)
	}
	return out
}

// Save writes tensors (as float32) to path.
func Save(t testing.TB, path string, ts map[string]*torch.Tensor) {
	t.Helper()
	f := &safetensors.File{Metadata: map[string]string{"written_by": "DDGI_WRITE_GOLDEN=1 go test"}, Tensors: map[string]safetensors.Tensor{}}
	for name, x := range ts {
		st, err := nn.ToSafetensors(x.To(torch.Float32).Contiguous(), false)
		if err != nil {
			t.Fatal(err)
		}
		f.Tensors[name] = st
	}
	if err := safetensors.Save(path, f); err != nil {
		t.Fatal(err)
	}
}

// Check compares got with the tensors of path by name: same shape and a
// largest absolute difference ≤ tol (reported either way). Under Writing
// it stores got as the reference instead.
func Check(t testing.TB, path string, got map[string]*torch.Tensor, tol float64) {
	t.Helper()
	if Writing() {
		Save(t, path, got)
		t.Logf("wrote %s", path)
		return
	}
	want := Load(t, path)
	for name, g := range got {
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: no reference %q", path, name)
			continue
		}
		if gs, ws := g.Shape(), w.Shape(); !slices.Equal(gs, ws) {
			t.Errorf("%s: shape %v, reference %v", name, gs, ws)
			continue
		}
		d := g.To(torch.Float32).Sub(w).Abs().MaxAll().Item()
		t.Logf("%s: max |Δ| = %.3g (tolerance %.0e)", name, d, tol)
		if !(d <= tol) {
			t.Errorf("%s: max |Δ| = %.3g > %.0e against %s", name, d, tol, path)
		}
	}
}
