package inversion

import (
	"math"
	"testing"

	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
)

// linearG is a frozen stand-in for the GAN: image = tanh(W·flatten(w+)).
type linearG struct {
	s    *nn.Store
	fc   *nn.Linear
	wavg *torch.Tensor
	size int64
}

func newLinearG(c Config, size int64) *linearG {
	s := nn.NewStore(torch.CPU, 42)
	g := &linearG{s: s, size: size}
	g.fc = nn.NewLinear(s.Root().Sub("fc"), c.Styles*c.StyleDim, 3*size*size, nn.LinearOpts{})
	g.wavg = s.Root().Buffer("w_avg", []int64{c.StyleDim}, nn.Normal(0.1))
	s.Freeze("")
	return g
}

func (g *linearG) Synthesize(w, _ *torch.Tensor) *torch.Tensor {
	return g.fc.Forward(w.Flatten(1, 2)).Tanh().Reshape(-1, 3, g.size, g.size)
}
func (g *linearG) MeanLatent() *torch.Tensor { return g.wavg }

func features(c Config, b int64, seed uint64) (*torch.Tensor, Features) {
	gen := torch.NewGenerator(seed)
	h := torch.Randn(gen, []int64{b, c.HChannels, c.HSize, c.HSize}, torch.Float32, torch.CPU)
	f := Features{Words: torch.FromFloat32([]float32{0, 1, 1, 0, 0, 1, 1, 1}[:4*b], b, 4)}
	sizes := []int64{4, 8}
	for n, ch := range c.FChannels {
		s := sizes[n]
		f.F = append(f.F, torch.Randn(gen, []int64{b, ch, s, s}, torch.Float32, torch.CPU))
		f.AttOut = append(f.AttOut, []*torch.Tensor{
			torch.Randn(gen, []int64{b, s * s, ch}, torch.Float32, torch.CPU),
			torch.Randn(gen, []int64{b, s * s, ch}, torch.Float32, torch.CPU)})
		f.AttP = append(f.AttP, []*torch.Tensor{torch.Randn(gen, []int64{b, 2, s * s, 4}, torch.Float32, torch.CPU).Softmax(-1)})
	}
	return h, f
}

func TestShapesAndEq4StartsAsIdentity(t *testing.T) {
	c := Tiny()
	m, err := NewModel(c, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	torch.Scoped(func() {
		h, f := features(c, 2, 3)
		codes := m.Invert(h, f, torch.FromInt64([]int64{10, 990}, 2), false)
		for name, w := range map[string]*torch.Tensor{"wm": codes.WM, "wγ": codes.WGamma, "wβ": codes.WBeta, "w": codes.W} {
			if s := w.Shape(); len(s) != 3 || s[0] != 2 || s[1] != c.Styles || s[2] != c.StyleDim {
				t.Fatalf("%s shape %v", name, s)
			}
		}
		// T starts at w^γ = 1, w^β = 0, so w = w^m (Eq. 4 identity).
		if d := codes.W.Sub(codes.WM).Abs().MaxAll().Item(); d != 0 {
			t.Fatalf("w differs from w^m at init by %v", d)
		}
		local, global := m.AbSMNet.RefinedFeatures(f)
		if s := local.Shape(); s[1] != 24 || s[2] != c.Size {
			t.Fatalf("F̂ shape %v", s)
		}
		if s := global.Shape(); s[1] != 1 || s[2] != c.Size {
			t.Fatalf("F̄̂ shape %v", s)
		}
	})
}

func TestEq3AndEq4Identities(t *testing.T) {
	torch.Scoped(func() {
		g := torch.NewGenerator(5)
		local := torch.Randn(g, []int64{2, 3, 4, 4}, torch.Float32, torch.CPU)
		global := torch.Randn(g, []int64{2, 3, 4, 4}, torch.Float32, torch.CPU)
		one := torch.Ones([]int64{2, 1, 1, 1}, torch.Float32, torch.CPU)
		if d := MixLocalGlobal(one, local, global).Sub(local).Abs().MaxAll().Item(); d != 0 {
			t.Fatalf("α=1 does not give the local branch (%v)", d)
		}
		if d := MixLocalGlobal(one.MulScalar(0), local, global).Sub(global).Abs().MaxAll().Item(); d != 0 {
			t.Fatalf("α=0 does not give the global branch (%v)", d)
		}
		wm := torch.Randn(g, []int64{2, 4, 8}, torch.Float32, torch.CPU)
		ones := torch.Ones([]int64{2, 4, 8}, torch.Float32, torch.CPU)
		if d := ModulateCode(wm, ones, ones.MulScalar(0)).Sub(wm).Abs().MaxAll().Item(); d != 0 {
			t.Fatalf("w^γ=1, w^β=0 does not give w^m (%v)", d)
		}
		wg := torch.Randn(g, []int64{2, 4, 8}, torch.Float32, torch.CPU)
		wb := torch.Randn(g, []int64{2, 4, 8}, torch.Float32, torch.CPU)
		want := wm.Mul(wg).Add(wb)
		if d := ModulateCode(wm, wg, wb).Sub(want).Abs().MaxAll().Item(); d > 1e-6 {
			t.Fatalf("Eq. 4 mismatch %v", d)
		}
	})
}

func TestAttentionMapsNormalisedAndWordAveraged(t *testing.T) {
	c := Tiny()
	m, _ := NewModel(c, torch.CPU, 1)
	torch.Scoped(func() {
		_, f := features(c, 2, 3)
		A, Abar := m.AbSMNet.AttentionMaps(f)
		if len(A) != 2 || A[1].Size(1) != 8 || A[0].Size(2) != c.Size {
			t.Fatalf("A shapes %v %v", A[0].Shape(), A[1].Shape())
		}
		if mx := Abar.MaxAll().Item(); math.Abs(mx-1) > 1e-6 {
			t.Fatalf("Ā peak %v, want 1", mx)
		}
		if mn := Abar.MinAll().Item(); mn < 0 {
			t.Fatalf("Ā has negative values %v", mn)
		}
	})
}

// TestTwoStageTrainingLowersLossesAndFreezes trains M (Eq. 6) then T (Eq. 7)
// for a few steps against a frozen linear G and checks each loss falls and
// the frozen network stays bit-identical.
func TestTwoStageTrainingLowersLossesAndFreezes(t *testing.T) {
	c := Tiny()
	m, _ := NewModel(c, torch.CPU, 1)
	g := newLinearG(c, 8)
	if err := m.Mapping.SetMeanLatent(g.MeanLatent()); err != nil {
		t.Fatal(err)
	}
	h, f := features(c, 2, 3)
	gt := torch.Rand(torch.NewGenerator(9), []int64{2, 3, 8, 8}, torch.Float32, torch.CPU).MulScalar(1.6).SubScalar(0.8)
	d0 := gt.Flip(3)
	steps := torch.FromInt64([]int64{100, 700}, 2)
	torch.Persist(h, gt, d0, steps)
	lam := DefaultWeights()

	snapshot := func(prefix string) map[string][]float32 {
		out := map[string][]float32{}
		for _, n := range m.Store.Names() {
			if len(n) >= len(prefix) && n[:len(prefix)] == prefix {
				out[n] = m.Store.Get(n).Float32s()
			}
		}
		return out
	}
	same := func(a, b map[string][]float32) bool {
		for k, v := range a {
			for i := range v {
				if b[k][i] != v[i] {
					return false
				}
			}
		}
		return true
	}
	train := func(stage string, n int) (first, last float64) {
		opt := optim.NewAdam(optim.DefaultAdam(5e-3))
		for i := 0; i < n; i++ {
			torch.Scoped(func() {
				var terms Terms
				if stage == "M" {
					codes := m.Invert(h, f, steps, true)
					terms = MappingLoss(lam, gt, Render(g, codes.WM, nil), codes.WM, g.MeanLatent(), nil, nil)
				} else {
					codes := m.Invert(h, f, steps, false)
					terms = ModulationLoss(lam, d0, gt, Render(g, codes.W, nil), codes.W, g.MeanLatent(), nil, nil)
				}
				terms.Total.Backward()
				opt.Update(m.Store.Trainable())
				if i == 0 {
					first = terms.Total.Item()
				}
				last = terms.Total.Item()
			})
		}
		return
	}
	m.Store.Freeze("absmnet")
	tBefore := snapshot("absmnet")
	a, b := train("M", 30)
	if !(b < 0.8*a) {
		t.Fatalf("stage 1 (Eq. 6) loss %v → %v", a, b)
	}
	if !same(tBefore, snapshot("absmnet")) {
		t.Fatal("T changed while frozen in stage 1")
	}
	m.Store.Unfreeze("absmnet")
	m.Store.Freeze("mapping")
	mBefore := snapshot("mapping")
	a, b = train("T", 30)
	if !(b < 0.9*a) {
		t.Fatalf("stage 2 (Eq. 7) loss %v → %v", a, b)
	}
	if !same(mBefore, snapshot("mapping")) {
		t.Fatal("M changed while frozen in stage 2")
	}
}
