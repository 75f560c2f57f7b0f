package nn

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/safetensors"
	"ddgi/torch"
)

// blendStore is a small network whose conv is large enough to quantize.
func blendStore(seed uint64) *Store {
	s := NewStore(torch.CPU, seed)
	NewConv2d(s.Root().Sub("conv"), 64, 32, 3, Conv2dOpts{Padding: 1})
	NewLinear(s.Root().Sub("fc"), 8, 4, LinearOpts{})
	return s
}

func blendFile(t *testing.T, s *Store, half bool, config string) *safetensors.File {
	t.Helper()
	f, err := s.File(SaveOptions{Half: half})
	if err != nil {
		t.Fatal(err)
	}
	f.Metadata["config"] = config
	return f
}

// lazy writes f to a temporary file and opens it as Interpolate reads it.
func lazy(t *testing.T, f *safetensors.File) *safetensors.Lazy {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("w%d.safetensors", len(f.Tensors)))
	if err := safetensors.Save(path, f); err != nil {
		t.Fatal(err)
	}
	l, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestInterpolateIsWiSEFT: t = 0 and 1 give the two files back, t = 0.3 the
// weighted mean of every tensor (an int8 input dequantized first), and the
// result loads into the network; name prefixes restrict the blend; files
// of other models are refused.
func TestInterpolateIsWiSEFT(t *testing.T) {
	a, b := blendStore(1), blendStore(2)
	cfg := `{"model":{"Width":8},"train":{"Steps":1}}`
	fa, fb := lazy(t, blendFile(t, a, false, cfg)), lazy(t, blendFile(t, b, false, `{"model":{"Width":8},"train":{"Steps":2}}`))
	for _, tt := range []float64{0, 0.3, 1} {
		f, err := Interpolate(fa, fb, tt)
		if err != nil {
			t.Fatal(err)
		}
		r := blendStore(9)
		if err := r.LoadFile(f); err != nil {
			t.Fatalf("t=%g: the blend does not load: %v", tt, err)
		}
		for _, name := range r.Names() {
			torch.Scoped(func() {
				want := a.Get(name).Detach().MulScalar(1 - tt).Add(b.Get(name).Detach().MulScalar(tt))
				if d := r.Get(name).Sub(want).Abs().MaxAll().Item(); d > 1e-6 {
					t.Errorf("t=%g %s: off the weighted mean by %g", tt, name, d)
				}
			})
		}
		if !strings.Contains(f.Metadata["interpolated"], "WiSE-FT") || f.Metadata["config"] != fb.Metadata["config"] {
			t.Errorf("t=%g: metadata %v", tt, f.Metadata)
		}
	}
	// An int8 "from" is dequantized; the fp16 result stays within int8's half step plus fp16 rounding.
	q := blendFile(t, a, true, cfg)
	if _, err := Quantize(q); err != nil {
		t.Fatal(err)
	}
	f, err := Interpolate(lazy(t, q), fb, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tensors["conv.weight"+QuantScaleSuffix]; ok || f.Tensors["conv.weight"].DType != safetensors.F16 {
		t.Errorf("blend of an int8 file: conv.weight stored as %s with scales kept", f.Tensors["conv.weight"].DType)
	}
	r := blendStore(9)
	if err := r.LoadFile(f); err != nil {
		t.Fatal(err)
	}
	torch.Scoped(func() {
		wa, wb := a.Get("conv.weight").Detach(), b.Get("conv.weight").Detach()
		want := wa.Add(wb).MulScalar(0.5)
		step := wa.Abs().MaxAll().Item() / 127
		if d := r.Get("conv.weight").Sub(want).Abs().MaxAll().Item(); d > step/4+2e-3 {
			t.Errorf("int8 blend off the mean by %g (half step %g)", d, step/2)
		}
	})

	// Prefixes blend those tensors only; the rest is to's.
	f, err = Interpolate(fa, fb, 0.5, "conv.")
	if err != nil {
		t.Fatal(err)
	}
	r = blendStore(9)
	if err := r.LoadFile(f); err != nil {
		t.Fatal(err)
	}
	for _, name := range r.Names() {
		torch.Scoped(func() {
			want := b.Get(name).Detach()
			if strings.HasPrefix(name, "conv.") {
				want = want.Add(a.Get(name).Detach()).MulScalar(0.5)
			}
			if d := r.Get(name).Sub(want).Abs().MaxAll().Item(); d > 1e-6 {
				t.Errorf("blend of conv. only: %s off by %g", name, d)
			}
		})
	}
	if _, err := Interpolate(fa, fb, 0.5, "nothing."); err == nil {
		t.Error("a prefix no tensor has: no error")
	}

	other := NewStore(torch.CPU, 3)
	NewConv2d(other.Root().Sub("conv"), 64, 32, 3, Conv2dOpts{Padding: 1})
	NewLinear(other.Root().Sub("fc"), 8, 5, LinearOpts{})
	renamed := NewStore(torch.CPU, 3)
	NewConv2d(renamed.Root().Sub("conv"), 64, 32, 3, Conv2dOpts{Padding: 1})
	NewLinear(renamed.Root().Sub("head"), 8, 4, LinearOpts{})
	for name, bad := range map[string]*safetensors.Lazy{
		"other shape":  lazy(t, blendFile(t, other, false, cfg)),
		"other names":  lazy(t, blendFile(t, renamed, false, cfg)),
		"other config": lazy(t, blendFile(t, b, false, `{"model":{"Width":16}}`)),
	} {
		if _, err := Interpolate(fa, bad, 0.5); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for _, tt := range []float64{-0.1, 1.5} {
		if _, err := Interpolate(fa, fb, tt); err == nil {
			t.Errorf("t=%g: no error", tt)
		}
	}
}

// TestInterpolateCopiesIntegerTensors: an integer tensor (here a plain
// int8 table with no scale) is copied when the files agree and refused
// when they differ, never turned into a float mix.
func TestInterpolateCopiesIntegerTensors(t *testing.T) {
	file := func(v int8) *safetensors.Lazy {
		f := blendFile(t, blendStore(1), false, `{}`)
		f.Tensors["table"] = safetensors.Tensor{DType: safetensors.I8, Shape: []int64{2}, Data: []byte{byte(v), 3}}
		return lazy(t, f)
	}
	f, err := Interpolate(file(1), file(1), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Tensors["table"]; got.DType != safetensors.I8 || string(got.Data) != string([]byte{1, 3}) {
		t.Errorf("integer table came out %s %v", got.DType, got.Data)
	}
	if _, err := Interpolate(file(1), file(2), 0.5); err == nil {
		t.Error("differing integer tables: no error")
	}
}

// TestInterpolateRefusesNonFinite: a NaN weight in either file is an
// error, not a NaN blend.
func TestInterpolateRefusesNonFinite(t *testing.T) {
	good := blendFile(t, blendStore(1), false, `{}`)
	bad := blendFile(t, blendStore(2), false, `{}`)
	st := bad.Tensors["fc.bias"]
	st.Data = append([]byte(nil), st.Data...)
	copy(st.Data, []byte{0, 0, 0xc0, 0x7f}) // float32 NaN
	bad.Tensors["fc.bias"] = st
	if _, err := Interpolate(lazy(t, good), lazy(t, bad), 0.5); err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN weight: %v", err)
	}
}
