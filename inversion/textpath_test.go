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
