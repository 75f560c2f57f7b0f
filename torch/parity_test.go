package torch_test

import (
	"math"
	"testing"

	"ddgi/nn"
	"ddgi/optim"
	"ddgi/safetensors"
	"ddgi/torch"
)

// Golden tensors come from scripts/golden.py run under PyTorch 1.13.
func golden(t *testing.T) func(name string) *torch.Tensor {
	f, err := safetensors.Load("testdata/golden.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	return func(name string) *torch.Tensor {
		st, ok := f.Tensors[name]
		if !ok {
			t.Fatalf("golden tensor %s missing", name)
		}
		x, err := nn.FromSafetensors(st, torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
}

func assertClose(t *testing.T, name string, got, want *torch.Tensor, tol float64) {
	t.Helper()
	gs, ws := got.Shape(), want.Shape()
	if len(gs) != len(ws) {
		t.Errorf("%s: shape %v, PyTorch %v", name, gs, ws)
		return
	}
	for i := range gs {
		if gs[i] != ws[i] {
			t.Errorf("%s: shape %v, PyTorch %v", name, gs, ws)
			return
		}
	}
	g, w := got.Float64s(), want.Float64s()
	for i := range g {
		if d := math.Abs(g[i] - w[i]); d > tol*(1+math.Abs(w[i])) {
			t.Errorf("%s[%d]: %v, PyTorch %v", name, i, g[i], w[i])
			return
		}
	}
}

func TestParityWithPyTorch(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g := golden(t)
	const tol = 1e-5

	x := g("conv.x").SetRequiresGrad(true)
	w := g("conv.w").SetRequiresGrad(true)
	b := g("conv.b").SetRequiresGrad(true)
	y := torch.Conv2d(x, w, b, torch.ConvOpts{Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}, Groups: 2})
	assertClose(t, "conv2d", y, g("conv.y"), tol)
	y.Sin().SumAll().Backward()
	assertClose(t, "conv2d grad x", x.Grad(), g("conv.gx"), tol)
	assertClose(t, "conv2d grad w", w.Grad(), g("conv.gw"), tol)
	assertClose(t, "conv2d grad b", b.Grad(), g("conv.gb"), tol)

	assertClose(t, "conv_transpose2d", torch.ConvTranspose2d(g("convt.x"), g("convt.w"), nil, torch.Same(2, 1)), g("convt.y"), tol)
	assertClose(t, "group_norm+silu", torch.GroupNorm(g("gn.x"), 4, g("gn.w"), g("gn.b"), 1e-5).Silu(), g("gn.y"), tol)
	assertClose(t, "layer_norm+gelu", torch.LayerNorm(g("ln.x"), []int64{7}, g("ln.w"), g("ln.b"), 1e-5).Gelu(), g("ln.y"), tol)

	xi := g("interp.x")
	assertClose(t, "bilinear", torch.Interpolate(xi, 10, 12, torch.Bilinear, false), g("interp.bilinear"), tol)
	assertClose(t, "nearest", torch.Interpolate(xi, 10, 12, torch.Nearest, false), g("interp.nearest"), tol)
	assertClose(t, "avg_pool2d", torch.AvgPool2d(xi, 2, 2, 0), g("pool.avg"), tol)
	assertClose(t, "grid_sample", torch.GridSample(xi, g("gs.grid"), torch.Bilinear, torch.GridZeros, false), g("gs.y"), tol)

	xs := g("sm.x")
	assertClose(t, "softmax", xs.Softmax(-1), g("sm.softmax"), tol)
	assertClose(t, "log_softmax", xs.LogSoftmax(0), g("sm.logsoftmax"), tol)
	assertClose(t, "cumprod", xs.Sigmoid().Cumprod(1), g("cum.prod"), tol)
	assertClose(t, "cumsum", xs.Cumsum(0), g("cum.sum"), tol)
	assertClose(t, "cross_entropy", torch.CrossEntropy(xs, g("loss.target").To(torch.Int64), nil, -100, 0, torch.ReduceMean), g("loss.ce"), tol)
	assertClose(t, "bce_with_logits", torch.BCEWithLogits(xs, xs.Sigmoid().Round(), torch.ReduceMean), g("loss.bce"), tol)

	// A whole block: nn.MultiHeadAttention loaded by its documented names.
	st := nn.NewStore(torch.CPU, 0)
	attn := nn.NewMultiHeadAttention(st.Root().Sub("attn"), 8, 6, 8, 2)
	torch.NoGrad(func() {
		for _, n := range st.Names() {
			st.Get(n).CopyIn(g(n))
		}
	})
	out, probs := attn.Forward(g("attn.x"), g("attn.ctx"), nil, true)
	assertClose(t, "attention", out, g("attn.y"), tol)
	assertClose(t, "attention probs", probs, g("attn.probs"), tol)
}

func TestAdamMatchesPyTorch(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	g := golden(t)
	for _, c := range []struct {
		name string
		cfg  optim.AdamConfig
	}{
		{"adam", optim.DefaultAdam(0.05)},
		{"adamw", optim.AdamConfig{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Decoupled: true}},
	} {
		st := nn.NewStore(torch.CPU, 0)
		w := st.Root().Param("w", []int64{3, 4}, nn.Constant(0))
		torch.NoGrad(func() { w.CopyIn(g(c.name + ".w0")) })
		opt := optim.NewAdam(c.cfg)
		X, Y := g(c.name+".X"), g(c.name+".Y")
		for i := 0; i < 5; i++ {
			torch.Scoped(func() {
				X.Matmul(w.Transpose(0, 1)).Sub(Y).Square().MeanAll().Backward()
				opt.Update(st.Trainable())
			})
		}
		assertClose(t, c.name, w, g(c.name+".w5"), 1e-5)
	}
}

func TestLoadPTStateDict(t *testing.T) {
	m, err := torch.LoadPT("testdata/state_dict.pt")
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 {
		t.Fatalf("%d tensors", len(m))
	}
	if v := m["layer.weight"].Float32s(); len(v) != 6 || v[5] != 5 {
		t.Fatalf("layer.weight %v", v)
	}
	if v := m["steps"].Int64s(); v[0] != 7 {
		t.Fatalf("steps %v", v)
	}
	if _, err := torch.LoadPT("testdata/golden.safetensors"); err == nil {
		t.Fatal("a safetensors file loaded as .pt")
	}
	if _, err := torch.LoadPT("testdata/missing.pt"); err == nil {
		t.Fatal("missing file loaded")
	}
}
