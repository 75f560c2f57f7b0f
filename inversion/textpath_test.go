package inversion

import (
	"testing"

	"ddgi/optim"
	"ddgi/torch"
)

// The text path starts as a zero offset (so --init from an inversion
// without one changes nothing) and, trained, lets two prompts on the same
// h_t give different codes — what Eq. 2's M cannot do when h_t is the same.
func TestTextPathStartsAtZeroAndSeparatesPrompts(t *testing.T) {
	c := Tiny()
	c.TextDim = 6
	m, err := NewModel(c, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	torch.Scoped(func() {
		h1, _ := features(c, 1, 3)
		h := h1.Expand(2, c.HChannels, c.HSize, c.HSize).Contiguous() // one h_t for both prompts
		_, f2 := features(c, 2, 3)
		f2.Pooled = torch.Randn(torch.NewGenerator(9), []int64{2, 6}, torch.Float32, torch.CPU)
		steps := torch.FromInt64([]int64{999, 999}, 2)
		if d := m.Invert(h, f2, steps, true).WM.Sub(m.Mapping.MappedCode(h)).Abs().MaxAll().Item(); d != 0 {
			t.Fatalf("text path changes w^m at init by %v", d)
		}
		// Targets: the two prompts ask for opposite codes.
		target := torch.Randn(torch.NewGenerator(4), []int64{1, c.Styles, c.StyleDim}, torch.Float32, torch.CPU)
		target = torch.Cat([]*torch.Tensor{target, target.Neg()}, 0)
		opt := optim.NewAdam(optim.DefaultAdam(5e-3))
		var first, last float64
		for i := 0; i < 60; i++ {
			torch.Scoped(func() {
				loss := m.Invert(h, f2, steps, true).WM.Sub(target).Square().MeanAll()
				loss.Backward()
				opt.Update(m.Store.Trainable())
				if i == 0 {
					first = loss.Item()
				}
				last = loss.Item()
			})
		}
		if !(last < 0.5*first) {
			t.Fatalf("loss with the text path %v → %v", first, last)
		}
		w := m.Invert(h, f2, steps, true).WM
		if d := w.Select(0, 0).Sub(w.Select(0, 1)).Abs().MeanAll().Item(); d < 0.1 {
			t.Fatalf("two prompts on one h_t give codes %v apart", d)
		}
		f2.Pooled = nil
		if err := torch.Try(func() { m.Invert(h, f2, steps, true) }); err == nil {
			t.Fatal("no error without a pooled embedding")
		}
	})
}

// The prompt strength s is guidance on the text offset: s = 1 is Code,
// s = 3 adds 2·(P(e) − P(e_∅)) to it, and a prompt that is the empty one
// is unmoved by s.
func TestPromptStrengthGuidesTheTextOffset(t *testing.T) {
	c := Tiny()
	c.TextDim = 6
	m, err := NewModel(c, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	torch.Scoped(func() {
		torch.NoGrad(func() { // a trained-looking output layer (it starts at zero)
			w := m.Mapping.Text.Out.Weight
			w.CopyIn(torch.Randn(torch.NewGenerator(3), w.Shape(), torch.Float32, torch.CPU).MulScalar(0.1))
		})
		h, f := features(c, 2, 3)
		f.Pooled = torch.Randn(torch.NewGenerator(9), []int64{2, 6}, torch.Float32, torch.CPU)
		f.PooledEmpty = torch.Randn(torch.NewGenerator(10), []int64{1, 6}, torch.Float32, torch.CPU)
		p := m.Mapping.Text.TextOffset
		base := m.Mapping.MappedCode(h)
		if d := m.Mapping.GuidedCode(h, f, 1).Sub(m.Mapping.Code(h, f)).Abs().MaxAll().Item(); d != 0 {
			t.Errorf("s = 1 differs from Code by %g", d)
		}
		want := base.Add(p(f.Pooled)).Add(p(f.Pooled).Sub(p(f.PooledEmpty)).MulScalar(2))
		if d := m.Mapping.GuidedCode(h, f, 3).Sub(want).Abs().MaxAll().Item(); d > 1e-6 {
			t.Errorf("s = 3: %g from M(h) + P(e) + 2(P(e) − P(∅))", d)
		}
		if d := m.Mapping.GuidedCode(h, f, 3).Sub(m.Mapping.Code(h, f)).Abs().MaxAll().Item(); d < 1e-3 {
			t.Errorf("s = 3 moved the code by only %g", d)
		}
		e := f
		e.Pooled = f.PooledEmpty.Expand(2, 6)
		if d := m.Mapping.GuidedCode(h, e, 3).Sub(m.Mapping.Code(h, e)).Abs().MaxAll().Item(); d > 1e-6 {
			t.Errorf("the empty prompt moved by %g under s = 3", d)
		}
		f.PooledEmpty = nil
		if err := torch.Try(func() { m.Mapping.GuidedCode(h, f, 2) }); err == nil {
			t.Error("s = 2 without the empty prompt's embedding: no error")
		}
	})
}

// Spread ψ scales M's code's distance from w̄ and nothing else: W^m − w̄
// doubles at ψ = 2, and T's codes are unchanged.
func TestSpreadScalesTheCodeFromTheMean(t *testing.T) {
	c := Tiny()
	m, err := NewModel(c, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	torch.Scoped(func() {
		torch.NoGrad(func() {
			m.Mapping.WAvg.CopyIn(torch.Randn(torch.NewGenerator(4), m.Mapping.WAvg.Shape(), torch.Float32, torch.CPU))
		})
		h, f := features(c, 2, 3)
		steps := torch.FromInt64([]int64{999, 999}, 2)
		one := m.Invert(h, f, steps, false)
		m.Spread = 2
		two := m.Invert(h, f, steps, false)
		want := one.WM.Sub(m.Mapping.WAvg).MulScalar(2).Add(m.Mapping.WAvg)
		if d := two.WM.Sub(want).Abs().MaxAll().Item(); d > 1e-5 {
			t.Errorf("ψ = 2: W^m is %g from w̄ + 2(W^m − w̄)", d)
		}
		if d := two.WM.Sub(one.WM).Abs().MaxAll().Item(); d < 1e-3 {
			t.Errorf("ψ = 2 moved W^m by only %g", d)
		}
		if d := two.WGamma.Sub(one.WGamma).Abs().MaxAll().Item(); d != 0 {
			t.Errorf("ψ changed T's γ by %g", d)
		}
	})
}
