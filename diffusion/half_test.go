package diffusion

import (
	"fmt"
	"path/filepath"
	"testing"

	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/torch"
)

// TestInferenceKeepsHalfWeights: an fp16 file loaded for inference keeps
// its weights fp16 in memory (U-Net and branch), and every output equals
// the fp32-loaded model's exactly, since each layer upcasts the same fp16
// values the fp32 load would have; Load (for training) stays fp32.
func TestInferenceKeepsHalfWeights(t *testing.T) {
	defer func(v int64) { nn.HalfAbove = v }(nn.HalfAbove)
	nn.HalfAbove = 0 // the tiny model stands for SD1.5's
	c, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base, branch := filepath.Join(dir, "unet.safetensors"), filepath.Join(dir, "mask.safetensors")
	m, err := New(PatchConfig(c), torch.CPU, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(base, true); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddControl(kinds.Mask, 5); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveControl(kinds.Mask, branch, true); err != nil {
		t.Fatal(err)
	}
	load := func(f func(string, torch.Device) (*Model, error)) (*Model, *ControlNet) {
		m, err := f(base, torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		n, err := m.LoadControl(branch)
		if err != nil {
			t.Fatal(err)
		}
		return m, n
	}
	full, fullBranch := load(Load)
	half, halfBranch := load(func(p string, d torch.Device) (*Model, error) { return LoadInference(p, d, nn.FP32) })
	for _, s := range []*nn.Store{full.Store, fullBranch.Store, half.Store, halfBranch.Store} {
		want := torch.Float32
		if s.Half {
			want = torch.Float16
		}
		for _, name := range s.Names() {
			if dt := s.Get(name).DType(); dt != want {
				t.Fatalf("%s is %s in a store with Half %v", name, dt, s.Half)
			}
		}
	}
	if full.Store.Half || fullBranch.Store.Half || !half.Store.Half || !halfBranch.Store.Half {
		t.Fatalf("Half: Load %v/%v, LoadInference %v/%v; want false/false, true/true", full.Store.Half, fullBranch.Store.Half, half.Store.Half, halfBranch.Store.Half)
	}
	cc := full.Config
	torch.NoGrad(func() {
		torch.Scoped(func() {
			zt, tt, ctx, mask := fixedInputs(cc)
			a := full.Predict(zt, tt, ctx, Conditions{Mask: mask})
			b := half.Predict(zt, tt, ctx, Conditions{Mask: mask})
			if d := a.Sub(b).Abs().MaxAll().Item(); d != 0 {
				t.Errorf("controlled ε from fp16-stored weights differs from the fp32 load by %g", d)
			}
			if a.Abs().MaxAll().Item() == 0 {
				t.Error("ε is all zero: the comparison proves nothing")
			}
		})
	})
}

// TestBF16Taps: with nn.BF16 the U-Net and its branch are kept in bf16
// and compute in it, while the taps come back in fp32 with the fp32
// model's shapes and within bf16's rounding of its values (8 bits of
// mantissa: about 0.4% a product, compounded over the blocks).
func TestBF16Taps(t *testing.T) {
	c, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base, branch := filepath.Join(dir, "unet.safetensors"), filepath.Join(dir, "mask.safetensors")
	m, err := New(c, torch.CPU, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddControl(kinds.Mask, 5); err != nil {
		t.Fatal(err)
	}
	if err := m.Save(base, false); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveControl(kinds.Mask, branch, false); err != nil {
		t.Fatal(err)
	}
	load := func(p nn.Precision) *Model {
		m, err := LoadInference(base, torch.CPU, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.LoadControl(branch); err != nil {
			t.Fatal(err)
		}
		return m
	}
	full, bf := load(nn.FP32), load(nn.BF16)
	for _, s := range []*nn.Store{bf.Store, bf.Controls[kinds.Mask].Store} {
		for _, name := range s.Names() {
			if dt := s.Get(name).DType(); dt != torch.BFloat16 {
				t.Fatalf("%s is %s in a BF16 store", name, dt)
			}
		}
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			zt, tt, ctx, mask := fixedInputs(c)
			a := full.Taps(zt, tt, ctx, Conditions{Mask: mask})
			b := bf.Taps(zt, tt, ctx, Conditions{Mask: mask})
			pairs := [][2]*torch.Tensor{{a.H, b.H}, {a.Eps, b.Eps}}
			for i := range a.F {
				pairs = append(pairs, [2]*torch.Tensor{a.F[i], b.F[i]})
			}
			for i := range a.A {
				for k := range a.A[i] {
					pairs = append(pairs, [2]*torch.Tensor{a.A[i][k], b.A[i][k]}, [2]*torch.Tensor{a.AOut[i][k], b.AOut[i][k]})
				}
			}
			if len(a.A) == 0 || len(b.A) != len(a.A) {
				t.Fatalf("%d attention levels in bf16, %d in fp32", len(b.A), len(a.A))
			}
			worst := 0.0
			defer func() { t.Logf("worst max |fp32 − bf16| / max |fp32| over the taps: %.3g", worst) }()
			for i, p := range pairs {
				if p[1].DType() != torch.Float32 || fmt.Sprint(p[0].Shape()) != fmt.Sprint(p[1].Shape()) {
					t.Fatalf("tap %d: %s %v from bf16, want float32 %v", i, p[1].DType(), p[1].Shape(), p[0].Shape())
				}
				scale := p[0].Abs().MaxAll().Item()
				d := p[0].Sub(p[1]).Abs().MaxAll().Item()
				worst = max(worst, d/scale)
				if scale == 0 || d == 0 || d > 0.03*scale {
					t.Errorf("tap %d: max |fp32 − bf16| %g against max |fp32| %g; want nonzero (bf16 ran) and ≤ 3%%", i, d, scale)
				}
			}
		})
	})
}

// TestTapShapesMatchAPass: the analytic tap shapes are those of a pass.
func TestTapShapesMatchAPass(t *testing.T) {
	for _, name := range []string{"tiny", "small64"} {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(c, torch.CPU, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, f := c.TapShapes()
		torch.NoGrad(func() {
			torch.Scoped(func() {
				zt := torch.Zeros([]int64{1, c.LatentChannels, c.LatentSize, c.LatentSize}, torch.Float32, torch.CPU)
				ctx := torch.Zeros([]int64{1, 4, c.ContextDim}, torch.Float32, torch.CPU)
				tp := m.Taps(zt, torch.FromInt64([]int64{5}, 1), ctx, Conditions{})
				if got := fmt.Sprint(tp.H.Shape()[1:]); got != fmt.Sprint(h) {
					t.Errorf("%s: h_t %s, TapShapes %v", name, got, h)
				}
				if len(tp.F) != len(f) {
					t.Fatalf("%s: %d f taps, TapShapes %d", name, len(tp.F), len(f))
				}
				for i := range f {
					if got := fmt.Sprint(tp.F[i].Shape()[1:]); got != fmt.Sprint(f[i]) {
						t.Errorf("%s: f_t[%d] %s, TapShapes %v", name, i, got, f[i])
					}
				}
			})
		})
	}
}
