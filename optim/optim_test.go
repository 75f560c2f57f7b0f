package optim

import (
	"math"
	"path/filepath"
	"testing"

	"ddgi/nn"
	"ddgi/torch"
)

func quadratic(s *nn.Store) *torch.Tensor {
	w := s.Get("w")
	return w.SubScalar(3).Square().SumAll()
}

func newStore() *nn.Store {
	s := nn.NewStore(torch.CPU, 1)
	s.Root().Param("w", []int64{4}, nn.Normal(1))
	return s
}

// TestResumeMatchesUninterruptedRun saves Adam's state mid-way and checks
// that a restarted optimizer continues bit-identically.
func TestResumeMatchesUninterruptedRun(t *testing.T) {
	cfg := AdamConfig{LR: 0.1, Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.01, Decoupled: true}
	run := func(s *nn.Store, opt *Adam, steps int) {
		for i := 0; i < steps; i++ {
			torch.Scoped(func() {
				quadratic(s).Backward()
				opt.Update(s.Trainable())
			})
		}
	}
	a := newStore()
	optA := NewAdam(cfg)
	run(a, optA, 10)

	b := newStore()
	optB := NewAdam(cfg)
	run(b, optB, 5)
	dir := t.TempDir()
	if err := b.Save(filepath.Join(dir, "m.safetensors"), nn.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := optB.Save(filepath.Join(dir, "opt.safetensors")); err != nil {
		t.Fatal(err)
	}
	c := nn.NewStore(torch.CPU, 99)
	c.Root().Param("w", []int64{4}, nn.Normal(1))
	if _, err := c.Load(filepath.Join(dir, "m.safetensors")); err != nil {
		t.Fatal(err)
	}
	optC := NewAdam(cfg)
	if err := optC.Load(filepath.Join(dir, "opt.safetensors"), torch.CPU); err != nil {
		t.Fatal(err)
	}
	if optC.Step != 5 {
		t.Fatalf("step %d after load", optC.Step)
	}
	run(c, optC, 5)
	wa, wc := a.Get("w").Float32s(), c.Get("w").Float32s()
	for i := range wa {
		if wa[i] != wc[i] {
			t.Fatalf("resumed run differs at %d: %v vs %v", i, wa[i], wc[i])
		}
	}
}

func TestEMAAndClip(t *testing.T) {
	src, ema := newStore(), newStore()
	torch.NoGrad(func() {
		src.Get("w").FillIn(1)
		ema.Get("w").FillIn(0)
	})
	EMA{Target: ema}.Update(src, 0.9)
	if v := ema.Get("w").Float32s()[0]; math.Abs(float64(v)-0.1) > 1e-6 {
		t.Fatalf("EMA after one update %v, want 0.1", v)
	}
	torch.Scoped(func() {
		src.Get("w").MulScalar(100).SumAll().Backward() // grad = 100 per element, norm 200
		n := ClipGradNorm(src.Trainable(), 1)
		if math.Abs(n-200) > 1e-3 {
			t.Fatalf("norm before clipping %v, want 200", n)
		}
		g := src.Get("w").Grad().Norm(2, nil, false).Item()
		if math.Abs(g-1) > 1e-4 {
			t.Fatalf("norm after clipping %v, want 1", g)
		}
	})
}

func TestLoadRejectsCorruptState(t *testing.T) {
	opt := NewAdam(DefaultAdam(1))
	if err := opt.Load(filepath.Join(t.TempDir(), "missing.safetensors"), torch.CPU); err == nil {
		t.Fatal("missing state loaded")
	}
}
