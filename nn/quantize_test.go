package nn

import (
	"path/filepath"
	"testing"

	"ddgi/safetensors"
	"ddgi/torch"
)

// TestQuantizeRoundTrip: a quantized file loads into the same network
// with every large weight within half a step (max|row|/254) of the
// original and leaves small tensors exact.
func TestQuantizeRoundTrip(t *testing.T) {
	s := NewStore(torch.CPU, 3)
	NewConv2d(s.Root().Sub("conv"), 64, 32, 3, Conv2dOpts{Padding: 1})
	NewLinear(s.Root().Sub("fc"), 8, 4, LinearOpts{})
	f, err := s.File(SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := Quantize(f)
	if err != nil || n != 1 {
		t.Fatalf("quantized %d tensors, err %v; want the conv weight only", n, err)
	}
	if _, err := Quantize(f); err == nil {
		t.Fatal("quantizing twice gave no error")
	}
	path := filepath.Join(t.TempDir(), "q.safetensors")
	if err := safetensors.Save(path, f); err != nil {
		t.Fatal(err)
	}
	r := NewStore(torch.CPU, 99)
	NewConv2d(r.Root().Sub("conv"), 64, 32, 3, Conv2dOpts{Padding: 1})
	NewLinear(r.Root().Sub("fc"), 8, 4, LinearOpts{})
	if _, err := r.Load(path); err != nil {
		t.Fatal(err)
	}
	for _, name := range s.Names() {
		torch.Scoped(func() {
			a, b := s.Get(name), r.Get(name)
			d := a.Sub(b).Abs()
			if a.Dim() >= 2 && a.Numel() >= QuantizeMin {
				step := a.Detach().Reshape(a.Size(0), -1).Abs().Amax([]int64{1}, true).DivScalar(127)
				if excess := d.Reshape(a.Size(0), -1).Sub(step.MulScalar(0.5 + 1e-4)).MaxAll().Item(); excess > 0 || d.MaxAll().Item() == 0 {
					t.Errorf("%s: int8 error beyond half a step (by %g) or none at all", name, excess)
				}
			} else if d.MaxAll().Item() != 0 {
				t.Errorf("%s: small tensor changed", name)
			}
		})
	}
}
