package diffusion

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"ddgi/kinds"
	"ddgi/optim"
	"ddgi/torch"
)

func newTiny(t testing.TB, conds ...kinds.Cond) *Model {
	t.Helper()
	c, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(c, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range conds {
		if _, err := m.AddControl(k, uint64(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// inputs draws latents, timesteps, text tokens and both conditions.
func inputs(c Config, b, ltok int64, seed uint64) (zt, ts, ctx *torch.Tensor, cond Conditions) {
	g := torch.NewGenerator(seed)
	zt = torch.Randn(g, []int64{b, c.LatentChannels, c.LatentSize, c.LatentSize}, torch.Float32, torch.CPU)
	ts = torch.RandInt(g, 0, int64(c.TrainSteps), []int64{b}, torch.CPU)
	ctx = torch.Randn(g, []int64{b, ltok, c.ContextDim}, torch.Float32, torch.CPU)
	s := c.ImageSize()
	lab := torch.RandInt(g, 0, MaskClasses, []int64{b, s, s}, torch.CPU)
	cond.Mask = torch.OneHot(lab, MaskClasses).Permute(0, 3, 1, 2).To(torch.Float32)
	cond.Scribble = torch.Rand(g, []int64{b, 1, s, s}, torch.Float32, torch.CPU).GtScalar(0.9).To(torch.Float32)
	return
}

// wantTaps derives the documented tap shapes from a config.
func wantTaps(c Config, b, ltok int64) (h []int64, f, a [][]int64) {
	n := len(c.Channels)
	s := c.LatentSize
	low := s >> (n - 1)
	h = []int64{b, c.Channels[n-1], low, low}
	for i := 0; i < n; i++ {
		lvl := n - 1 - i
		side := s >> lvl
		out := side
		if lvl > 0 {
			out = 2 * side
		}
		f = append(f, []int64{b, c.Channels[lvl], out, out})
		if c.Attention[lvl] {
			a = append(a, []int64{b, c.Heads, side * side, ltok})
		} else {
			a = append(a, nil)
		}
	}
	return
}

func checkTaps(t *testing.T, c Config, tp Taps, b, ltok int64) {
	t.Helper()
	h, f, a := wantTaps(c, b, ltok)
	if !slices.Equal(tp.H.Shape(), h) {
		t.Errorf("%s: H %v, want %v", c.Name, tp.H.Shape(), h)
	}
	if len(tp.F) != len(f) || len(tp.A) != len(f) {
		t.Fatalf("%s: %d F, %d A, want %d each", c.Name, len(tp.F), len(tp.A), len(f))
	}
	for i := range f {
		if !slices.Equal(tp.F[i].Shape(), f[i]) {
			t.Errorf("%s: F[%d] %v, want %v", c.Name, i, tp.F[i].Shape(), f[i])
		}
		wantK := 0
		if a[i] != nil {
			wantK = (c.LayersPerBlock + 1) * c.TransformerDepth
		}
		if len(tp.A[i]) != wantK {
			t.Errorf("%s: A[%d] has %d maps, want %d", c.Name, i, len(tp.A[i]), wantK)
		}
		for k, m := range tp.A[i] {
			if !slices.Equal(m.Shape(), a[i]) {
				t.Errorf("%s: A[%d][%d] %v, want %v", c.Name, i, k, m.Shape(), a[i])
			}
			// The layer's output: one C_i-vector per query position.
			if out := tp.AOut[i][k].Shape(); out[0] != b || out[1] != a[i][2] || out[2] != f[i][1] {
				t.Errorf("%s: AOut[%d][%d] %v, want [%d %d %d]", c.Name, i, k, out, b, a[i][2], f[i][1])
			}
		}
	}
	want := []int64{b, c.LatentChannels, c.LatentSize, c.LatentSize}
	if !slices.Equal(tp.Eps.Shape(), want) {
		t.Errorf("%s: Eps %v, want %v", c.Name, tp.Eps.Shape(), want)
	}
}

func TestTapShapes(t *testing.T) {
	for _, name := range []string{"tiny", "small64", "sd15"} {
		t.Run(name, func(t *testing.T) {
			c, err := Preset(name)
			if err != nil {
				t.Fatal(err)
			}
			conds := kinds.Conds
			if name == "sd15" {
				// 860M parameters: batch 1 on an 8×8 latent, base U-Net
				// only in -short (a branch adds 360M).
				c.LatentSize = 8
				conds = conds[:1]
				if testing.Short() {
					conds = nil
				}
			}
			m, err := New(c, torch.CPU, 1)
			if err != nil {
				t.Fatal(err)
			}
			// diffusers' SD1.5 UNet2DConditionModel has 859,520,964.
			if n := m.Store.NumParams(); name == "sd15" && n != 859520964 {
				t.Errorf("sd15 U-Net has %d parameters, SD1.5 has 859520964", n)
			}
			for _, k := range conds {
				if _, err := m.AddControl(k, 2); err != nil {
					t.Fatal(err)
				}
			}
			torch.NoGrad(func() {
				torch.Scoped(func() {
					var b, ltok int64 = 2, 7
					if name == "sd15" {
						b = 1
					}
					zt, ts, ctx, cond := inputs(c, b, ltok, 3)
					if len(conds) < 2 {
						cond.Scribble = nil
					}
					if len(conds) < 1 {
						cond.Mask = nil
					}
					checkTaps(t, c, m.Taps(zt, ts, ctx, cond), b, ltok)
				})
			})
		})
	}
}

func TestAttentionMapsSumToOne(t *testing.T) {
	m := newTiny(t, kinds.Mask)
	torch.NoGrad(func() {
		torch.Scoped(func() {
			zt, ts, ctx, cond := inputs(m.Config, 2, 5, 4)
			cond.Scribble = nil
			tp := m.Taps(zt, ts, ctx, cond)
			for i, blk := range tp.A {
				for k, a := range blk {
					if a.MinAll().Item() < 0 {
						t.Errorf("A[%d][%d] has negative probabilities", i, k)
					}
					dev := a.Sum([]int64{3}, false).SubScalar(1).Abs().MaxAll().Item()
					if dev > 1e-5 {
						t.Errorf("A[%d][%d]: rows sum to 1 ± %g", i, k, dev)
					}
				}
			}
		})
	})
}

func TestZeroConvBranchLeavesBaseUnchanged(t *testing.T) {
	m := newTiny(t, kinds.Mask, kinds.Scribble)
	for _, k := range m.Kinds() {
		for _, name := range m.Controls[k].Store.Names() {
			if base := m.Store.Get(name); base != nil {
				if d := m.Controls[k].Store.Get(name).Sub(base).Abs().MaxAll().Item(); d != 0 {
					t.Fatalf("%s branch %s not copied from the U-Net (max diff %g)", k, name, d)
				}
			}
		}
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			zt, ts, ctx, cond := inputs(m.Config, 2, 5, 5)
			base := m.Predict(zt, ts, ctx, Conditions{})
			with := m.Taps(zt, ts, ctx, cond)
			plain := m.UNet.forward(zt, ts, ctx, nil, true)
			if d := with.Eps.Sub(base).Abs().MaxAll().Item(); d != 0 {
				t.Errorf("branches at init change the output by %g, want bit-identical", d)
			}
			if d := with.H.Sub(plain.H).Abs().MaxAll().Item(); d != 0 {
				t.Errorf("branches at init change h_t by %g", d)
			}
		})
	})
}

func TestGuidanceScaleOneIsConditional(t *testing.T) {
	m := newTiny(t, kinds.Mask)
	torch.NoGrad(func() {
		torch.Scoped(func() {
			zt, ts, ctx, cond := inputs(m.Config, 2, 5, 6)
			cond.Scribble = nil
			empty := torch.Zeros(ctx.Shape(), torch.Float32, torch.CPU)
			full := m.Predict(zt, ts, ctx, cond)
			if d := m.Guided(zt, ts, ctx, empty, cond, NoGuidance).Sub(full).Abs().MaxAll().Item(); d != 0 {
				t.Errorf("guidance 1 differs from the conditional prediction by %g", d)
			}
			// The general formula also reduces to ε(c,x) at scale 1.
			noText := m.Predict(zt, ts, empty, cond)
			none := m.Predict(zt, ts, empty, cond.Dropped())
			if d := guide(full, noText, none, NoGuidance).Sub(full).Abs().MaxAll().Item(); d > 1e-5 {
				t.Errorf("composed guidance at scale 1 differs by %g", d)
			}
			g := Guidance{Text: 3, Cond: 1}
			want := noText.Add(full.Sub(noText).MulScalar(3))
			if d := m.Guided(zt, ts, ctx, empty, cond, g).Sub(want).Abs().MaxAll().Item(); d > 1e-5 {
				t.Errorf("text guidance 3 off by %g", d)
			}
		})
	})
}

func TestSaveLoadIdentical(t *testing.T) {
	m := newTiny(t, kinds.Mask)
	// Perturb the zero convs so the branch matters.
	torch.NoGrad(func() {
		for _, n := range m.Controls[kinds.Mask].Store.Names() {
			torch.Scoped(func() {
				w := m.Controls[kinds.Mask].Store.Get(n)
				w.AddIn(torch.Randn(torch.NewGenerator(9), w.Shape(), torch.Float32, torch.CPU), 0.01)
			})
		}
	})
	dir := t.TempDir()
	bp, cp := filepath.Join(dir, "unet.safetensors"), filepath.Join(dir, "mask.safetensors")
	if err := m.Save(bp, false); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveControl(kinds.Mask, cp, false); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(bp, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.LoadControl(cp); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.LoadControl(bp); err == nil {
		t.Error("loading a U-Net file as a branch succeeded")
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			zt, ts, ctx, cond := inputs(m.Config, 2, 5, 7)
			cond.Scribble = nil
			a, b := m.Predict(zt, ts, ctx, cond), m2.Predict(zt, ts, ctx, cond)
			if d := a.Sub(b).Abs().MaxAll().Item(); d != 0 {
				t.Errorf("reloaded model differs by %g", d)
			}
		})
	})
}

func TestNoiseLossFalls(t *testing.T) {
	for _, pred := range []string{"epsilon", "v_prediction"} {
		t.Run(pred, func(t *testing.T) {
			c, _ := Preset("tiny")
			c.Prediction = pred
			m, err := New(c, torch.CPU, 1)
			if err != nil {
				t.Fatal(err)
			}
			n, err := m.AddControl(kinds.Mask, 2)
			if err != nil {
				t.Fatal(err)
			}
			opt := optim.NewAdam(optim.DefaultAdam(2e-3))
			// A fixed batch of structured latents (smooth blobs) at fixed noise.
			g := torch.NewGenerator(3)
			x0 := torch.Randn(g, []int64{4, c.LatentChannels, 2, 2}, torch.Float32, torch.CPU)
			x0 = torch.Interpolate(x0, c.LatentSize, c.LatentSize, torch.Bilinear, false)
			torch.Persist(x0)
			_, _, ctx, cond := inputs(c, 4, 5, 4)
			torch.Persist(ctx, cond.Mask)
			cond.Scribble = nil
			var first, last float64
			for step := 0; step < 12; step++ {
				torch.Scoped(func() {
					sg := torch.NewGenerator(uint64(100 + step%3))
					eps := torch.Randn(sg, x0.Shape(), torch.Float32, torch.CPU)
					ts := torch.RandInt(sg, 0, int64(c.TrainSteps), []int64{4}, torch.CPU)
					xt := m.Schedule.AddNoise(x0, eps, ts)
					loss := m.Schedule.Loss(m.Predict(xt, ts, ctx, cond), x0, eps, ts)
					loss.Backward()
					opt.Update(append(m.Store.Trainable(), n.Store.Trainable()...))
					if step < 3 {
						first += loss.Item() / 3
					}
					if step >= 9 {
						last += loss.Item() / 3
					}
				})
			}
			if !(last < 0.8*first) {
				t.Errorf("loss %g → %g, want a fall of ≥ 20%%", first, last)
			}
		})
	}
}

// gaussianDenoiser is the exact ε-prediction for data x_0 ~ N(0, s²I):
// E[ε | x_t] = √(1−ᾱ) x_t / (ᾱ s² + 1 − ᾱ).
func gaussianDenoiser(s *Schedule, std float64) Denoiser {
	return func(xt *torch.Tensor, t int) *torch.Tensor {
		a := s.AlphaBar[t]
		return xt.MulScalar(math.Sqrt(1-a) / (a*std*std + 1 - a))
	}
}

func TestDDIMMatchesDDPM(t *testing.T) {
	c, _ := Preset("tiny")
	s, err := NewSchedule(c)
	if err != nil {
		t.Fatal(err)
	}
	const std = 0.5
	model := gaussianDenoiser(s, std)
	torch.NoGrad(func() {
		torch.Scoped(func() {
			xT := torch.Randn(torch.NewGenerator(1), []int64{4096}, torch.Float32, torch.CPU)
			ddpm := s.Run(xT, model, SamplerOpts{Sampler: "ddpm"}, torch.NewGenerator(2))
			// DDIM with η = 1 over all T steps has DDPM's posterior
			// mean and variance (DDIM Eq. 16), so with the same noise it
			// retraces the DDPM path.
			ddim1 := s.Run(xT, model, SamplerOpts{Steps: s.T(), Eta: 1}, torch.NewGenerator(2))
			if d := ddim1.Sub(ddpm).Abs().MaxAll().Item(); d > 1e-3 {
				t.Errorf("DDIM(η=1, T steps) departs from DDPM by %g", d)
			}
			// Both samplers, and deterministic DDIM at 1000 and 50 steps,
			// recover the data distribution's standard deviation.
			for name, x := range map[string]*torch.Tensor{
				"ddpm":        ddpm,
				"ddim η=0 T":  s.Run(xT, model, SamplerOpts{Steps: s.T()}, nil),
				"ddim η=0 50": s.Run(xT, model, SamplerOpts{Steps: 50}, nil),
			} {
				got := math.Sqrt(x.Square().MeanAll().Item())
				if math.Abs(got-std) > 0.03 {
					t.Errorf("%s: sample std %.3f, want %.2f", name, got, std)
				}
			}
			// DDIM's deterministic path converges to the T-step path as
			// the step count grows (first-order discretisation error).
			ref := s.Run(xT, model, SamplerOpts{Steps: s.T()}, nil)
			d50 := s.Run(xT, model, SamplerOpts{Steps: 50}, nil).Sub(ref).Abs().MeanAll().Item()
			d250 := s.Run(xT, model, SamplerOpts{Steps: 250}, nil).Sub(ref).Abs().MeanAll().Item()
			if d50 > 0.05 || d250 > d50/2 {
				t.Errorf("DDIM vs %d steps: mean |Δ| %g at 50 steps, %g at 250; want < 0.05 and shrinking", s.T(), d50, d250)
			}
		})
	})
}

func TestScheduleAndTimesteps(t *testing.T) {
	c, _ := Preset("tiny")
	for _, kind := range []string{"linear", "scaled_linear"} {
		c.Schedule = kind
		s, err := NewSchedule(c)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(s.Betas[0]-c.BetaStart) > 1e-12 || math.Abs(s.Betas[len(s.Betas)-1]-c.BetaEnd) > 1e-12 {
			t.Errorf("%s: β runs %g…%g", kind, s.Betas[0], s.Betas[len(s.Betas)-1])
		}
	}
	s, _ := NewSchedule(c)
	ts := s.DDIMTimesteps(20)
	if ts[0] != 999 || ts[19] != 49 || len(ts) != 20 {
		t.Errorf("20 DDIM steps: %v", ts)
	}
	// v-prediction: Split inverts Target.
	c.Prediction = "v_prediction"
	sv, _ := NewSchedule(c)
	torch.NoGrad(func() {
		torch.Scoped(func() {
			g := torch.NewGenerator(1)
			x0 := torch.Randn(g, []int64{1, 4, 3, 3}, torch.Float32, torch.CPU)
			eps := torch.Randn(g, x0.Shape(), torch.Float32, torch.CPU)
			tt := torch.FromInt64([]int64{400}, 1)
			xt := sv.AddNoise(x0, eps, tt)
			gx0, geps := sv.Split(xt, sv.Target(x0, eps, tt), 400)
			if d := gx0.Sub(x0).Abs().MaxAll().Item() + geps.Sub(eps).Abs().MaxAll().Item(); d > 1e-4 {
				t.Errorf("v round trip off by %g", d)
			}
		})
	})
}

// TestConcurrentBranchesMatch: running the ControlNet branches beside the
// U-Net's encoder (Model.Concurrent) gives the taps of the sequential pass.
func TestConcurrentBranchesMatch(t *testing.T) {
	m := newTiny(t, kinds.Mask, kinds.Scribble)
	g := torch.NewGenerator(8)
	torch.NoGrad(func() {
		for _, k := range m.Kinds() {
			for _, name := range m.Controls[k].Store.Names() {
				p := m.Controls[k].Store.Get(name)
				torch.Scoped(func() { p.CopyIn(torch.Randn(g, p.Shape(), torch.Float32, torch.CPU).MulScalar(0.05)) })
			}
		}
	})
	torch.NoGrad(func() {
		torch.Scoped(func() {
			zt, ts, ctx, cond := inputs(m.Config, 2, 5, 5)
			seq := m.Taps(zt, ts, ctx, cond)
			m.Concurrent = true
			defer func() { m.Concurrent = false }()
			con := m.Taps(zt, ts, ctx, cond)
			if d := con.Eps.Sub(seq.Eps).Abs().MaxAll().Item(); d > 1e-5 {
				t.Errorf("concurrent output differs by %g", d)
			}
			if d := con.H.Sub(seq.H).Abs().MaxAll().Item(); d > 1e-5 || seq.Eps.Sub(m.Predict(zt, ts, ctx, Conditions{})).Abs().MaxAll().Item() == 0 {
				t.Errorf("concurrent h_t differs by %g, or the branches had no effect", d)
			}
		})
	})
}

// TestHostileConfigsAreRefused: a weights file's config is input; values
// that would allocate without bound or divide by zero are errors before
// any tensor exists.
func TestHostileConfigsAreRefused(t *testing.T) {
	base, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(c *Config){
		"norm_groups 0":       func(c *Config) { c.NormGroups = 0 },
		"channels 1e6":        func(c *Config) { c.Channels = []int64{1_000_000, 1_000_000} },
		"layers 1e6":          func(c *Config) { c.LayersPerBlock = 1_000_000 },
		"depth 1e6":           func(c *Config) { c.TransformerDepth = 1_000_000 },
		"latent 1e6":          func(c *Config) { c.LatentSize = 1_000_000 },
		"heads 0":             func(c *Config) { c.Heads = 0 },
		"context 0":           func(c *Config) { c.ContextDim = 0 },
		"train_steps 1e9":     func(c *Config) { c.TrainSteps = 1_000_000_000 },
		"64 levels":           func(c *Config) { c.Channels = make([]int64, 64); c.Attention = make([]bool, 64) },
		"negative cond embed": func(c *Config) { c.CondEmbedChannels = []int64{-4} },
	} {
		c := base
		c.Channels = append([]int64(nil), base.Channels...)
		c.Attention = append([]bool(nil), base.Attention...)
		edit(&c)
		if _, err := New(c, torch.CPU, 1); err == nil {
			t.Errorf("%s: built a model", name)
		}
	}
}
