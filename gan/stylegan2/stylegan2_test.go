package stylegan2

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"ddgi/nn"
	"ddgi/torch"
)

func maxAbsDiff(a, b *torch.Tensor) float64 { return a.Sub(b).Abs().MaxAll().Item() }

func buildG(t testing.TB, preset string) *Generator {
	t.Helper()
	c, err := Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(nn.NewStore(torch.CPU, 1).Root(), c)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestShapes builds every preset; tiny and small64 run a forward pass, the
// full-size ones run one at 256 (batch 1) and only build at 512/1024.
func TestShapes(t *testing.T) {
	for _, name := range []string{"tiny", "small64", "ffhq256", "ffhq512", "ffhq1024"} {
		t.Run(name, func(t *testing.T) {
			torch.Scoped(func() {
				c := Presets[name]
				wantL := map[int]int{16: 6, 64: 10, 256: 14, 512: 16, 1024: 18}[c.Resolution]
				if c.NumWS() != wantL {
					t.Fatalf("L = %d, want %d", c.NumWS(), wantL)
				}
				g := buildG(t, name)
				d, err := NewDiscriminator(nn.NewStore(torch.CPU, 2).Root(), c, DOpts{})
				if err != nil {
					t.Fatal(err)
				}
				if c.Resolution > 256 || (c.Resolution == 256 && testing.Short()) {
					return
				}
				torch.NoGrad(func() {
					b := int64(2)
					if c.Resolution >= 256 {
						b = 1
					}
					z := torch.Randn(torch.NewGenerator(0), []int64{b, int64(c.ZDim)}, torch.Float32, torch.CPU)
					wp := g.Mapping(z, nil, 0.7)
					if s := wp.Shape(); s[0] != b || s[1] != int64(wantL) || s[2] != int64(c.WDim) {
						t.Fatalf("w+ shape %v", s)
					}
					img := g.Synthesis(wp, NoiseRandom)
					if s := img.Shape(); s[0] != b || s[1] != 3 || s[2] != int64(c.Resolution) || s[3] != int64(c.Resolution) {
						t.Fatalf("image shape %v", s)
					}
					if s := d.Forward(img, nil).Shape(); len(s) != 1 || s[0] != b {
						t.Fatalf("logit shape %v", s)
					}
				})
			})
		})
	}
}

// TestFusedEqualsUnfused: the grouped-conv modulated conv and the
// scale/conv/scale form give the same images.
func TestFusedEqualsUnfused(t *testing.T) {
	torch.Scoped(func() {
		g := buildG(t, "tiny")
		z := torch.Randn(torch.NewGenerator(3), []int64{3, 32}, torch.Float32, torch.CPU)
		wp := g.Mapping(z, nil, 1)
		a := g.Synthesis(wp, NoiseConst)
		g.SetFused(true)
		b := g.Synthesis(wp, NoiseConst)
		if d := maxAbsDiff(a, b); d > 1e-4 {
			t.Fatalf("fused vs unfused differ by %g", d)
		}
	})
}

// TestDemodulationUnitVariance: with demodulation, a modulated conv of
// unit-variance input keeps unit output variance (StyleGAN2 Eq. 3).
func TestDemodulationUnitVariance(t *testing.T) {
	torch.Scoped(func() {
		st := nn.NewStore(torch.CPU, 4)
		m := NewModulatedConv(st.Root(), 64, 64, 3, 16, true, false)
		g := torch.NewGenerator(5)
		x := torch.Randn(g, []int64{4, 64, 32, 32}, torch.Float32, torch.CPU)
		w := torch.Randn(g, []int64{4, 16}, torch.Float32, torch.CPU)
		y := m.Forward(x, w).Slice(2, 1, 31, 1).Slice(3, 1, 31, 1)
		if v := y.Square().MeanAll().Item(); math.Abs(v-1) > 0.1 {
			t.Fatalf("output second moment %.3f, want ≈ 1", v)
		}
	})
}

// TestR1LinearD: for D(x) = Σ a·x, ∇ₓD = a, so R1 = γ/2·‖a‖²; and its
// gradient with respect to a (through CreateGraph) is γ·a.
func TestR1LinearD(t *testing.T) {
	torch.Scoped(func() {
		g := torch.NewGenerator(6)
		a := torch.Randn(g, []int64{1, 3, 4, 4}, torch.Float32, torch.CPU).SetRequiresGrad(true)
		x := torch.Randn(g, []int64{5, 3, 4, 4}, torch.Float32, torch.CPU).SetRequiresGrad(true)
		logits := x.Mul(a).Flatten(1, -1).Sum([]int64{1}, false)
		const gamma = 3.0
		r1 := R1Penalty(logits, []*torch.Tensor{x}, gamma)
		want := gamma / 2 * a.Square().SumAll().Item()
		if got := r1.Item(); math.Abs(got-want) > 1e-4*want {
			t.Fatalf("R1 = %g, want %g", got, want)
		}
		r1.Backward()
		if d := maxAbsDiff(a.Grad(), a.MulScalar(gamma)); d > 1e-4 {
			t.Fatalf("dR1/da differs from γa by %g", d)
		}
	})
}

// TestR1FiniteDifference compares dR1/dθ to central differences on a
// smooth float64 D (conv → tanh → blur-downsample → linear): a leaky-ReLU D
// makes R1 piecewise constant in its kinks, so differences are taken
// where they are defined.
func TestR1FiniteDifference(t *testing.T) {
	torch.Scoped(func() {
		g := torch.NewGenerator(6)
		w := torch.Randn(g, []int64{4, 3, 3, 3}, torch.Float64, torch.CPU).MulScalar(0.3).SetRequiresGrad(true)
		v := torch.Randn(g, []int64{1, 4 * 4 * 4}, torch.Float64, torch.CPU).MulScalar(0.2)
		x := torch.Randn(g, []int64{2, 3, 8, 8}, torch.Float64, torch.CPU)
		r1 := func() *torch.Tensor {
			xi := x.Detach().SetRequiresGrad(true)
			h := torch.Conv2d(xi, w, nil, torch.Same(1, 1)).Tanh()
			h = Blur(h, 1, 1, 1).Slice(2, 0, 8, 2).Slice(3, 0, 8, 2).Flatten(1, -1)
			logits := torch.Linear(h, v, nil).Reshape(-1)
			return R1Penalty(logits, []*torch.Tensor{xi}, 2)
		}
		r1().Backward()
		grad := w.Grad().Float64s()
		w0 := w.Detach().Clone()
		const eps = 1e-5
		for _, i := range []int64{0, 13, 50, 107} {
			oh := torch.OneHot(torch.FromInt64([]int64{i}, 1), 108).To(torch.Float64).Reshape(4, 3, 3, 3)
			set := func(e float64) { torch.NoGrad(func() { w.CopyIn(w0.Add(oh.MulScalar(e))) }) }
			set(eps)
			plus := r1().Item()
			set(-eps)
			minus := r1().Item()
			set(0)
			fd := (plus - minus) / (2 * eps)
			if math.Abs(fd-grad[i]) > 1e-4*math.Abs(fd)+1e-8 {
				t.Errorf("param %d: autograd %g vs finite difference %g", i, grad[i], fd)
			}
		}
	})
}

// TestSaveLoadIdentical: a saved generator reloads to identical output.
func TestSaveLoadIdentical(t *testing.T) {
	torch.Scoped(func() {
		g := buildG(t, "tiny")
		g.ComputeMeanLatent(2000, 1, nil)
		path := filepath.Join(t.TempDir(), "g.safetensors")
		if err := g.Save(path, false); err != nil {
			t.Fatal(err)
		}
		h, err := Load(path, torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		z := torch.Randn(torch.NewGenerator(9), []int64{2, 32}, torch.Float32, torch.CPU)
		torch.NoGrad(func() {
			a := g.Forward(z, nil, 0.7, NoiseConst)
			b := h.Forward(z, nil, 0.7, NoiseConst)
			if d := maxAbsDiff(a, b); d != 0 {
				t.Fatalf("reloaded output differs by %g", d)
			}
			if d := maxAbsDiff(g.WAvg(), h.WAvg()); d != 0 || g.WAvg().Abs().SumAll().Item() == 0 {
				t.Fatalf("w_avg not saved (diff %g)", d)
			}
		})
	})
}

// TestTruncationPsiZero: ψ = 0 maps every z to w̄.
func TestTruncationPsiZero(t *testing.T) {
	torch.Scoped(func() {
		g := buildG(t, "tiny")
		g.ComputeMeanLatent(1000, 2, nil)
		z := torch.Randn(torch.NewGenerator(10), []int64{3, 32}, torch.Float32, torch.CPU)
		wp := g.Mapping(z, nil, 0)
		if d := maxAbsDiff(wp, g.MeanWPlus().Expand(3, -1, -1)); d > 1e-6 {
			t.Fatalf("ψ=0 codes differ from w̄ by %g", d)
		}
	})
}

// BenchmarkGenerator64 reports small64 generator images/s (batch 16).
func BenchmarkGenerator64(b *testing.B) {
	g := buildG(b, "small64")
	z := torch.Randn(torch.NewGenerator(0), []int64{16, 256}, torch.Float32, torch.CPU)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		torch.NoGrad(func() { torch.Scoped(func() { g.Forward(z, nil, 1, NoiseRandom) }) })
	}
	b.ReportMetric(float64(16*b.N)/time.Since(start).Seconds(), "images/s")
}

// TestConvTranspose2xSlices checks that a transposed conv big enough to be
// computed in output-channel slices equals the one-piece result.
func TestConvTranspose2xSlices(t *testing.T) {
	torch.NoGrad(func() {
		torch.Scoped(func() {
			x := torch.Randn(torch.NewGenerator(1), []int64{1, 16, 256, 256}, torch.Float32, torch.CPU)
			w := torch.Randn(torch.NewGenerator(2), []int64{16, 32, 3, 3}, torch.Float32, torch.CPU)
			if cols := int64(32 * 9 * 256 * 256 * 4); cols <= convTWorkspace {
				t.Fatalf("test too small to slice: %d bytes of columns", cols)
			}
			want := torch.ConvTranspose2d(x, w, nil, torch.ConvOpts{Stride: [2]int64{2, 2}})
			if d := maxAbsDiff(ConvTranspose2x(x, w), want); d > 1e-5 {
				t.Fatalf("sliced transposed conv differs by %g", d)
			}
		})
	})
}

// TestValidateRefusesHugeConfigs: a weights file's config is read before
// anything is allocated, so a corrupt or hostile one fails there.
func TestValidateRefusesHugeConfigs(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"mapping_layers": func(c *Config) { c.MappingLayers = 1_000_000 },
		"resolution":     func(c *Config) { c.Resolution = 1 << 20 },
		"w_dim":          func(c *Config) { c.WDim = 1 << 30 },
		"channel_max":    func(c *Config) { c.ChannelMax = 1 << 20 },
	} {
		c, _ := Preset("small64")
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: a huge config was accepted", name)
		}
	}
	for _, p := range []string{"tiny", "small64", "ffhq256", "ffhq512", "ffhq1024"} {
		c, _ := Preset(p)
		if err := c.Validate(); err != nil {
			t.Errorf("preset %s: %v", p, err)
		}
	}
}
