package diffusion

import (
	"fmt"
	"testing"
	"time"

	"ddgi/kinds"
	"ddgi/torch"
)

// fakeText embeds a prompt as a fixed random sequence chosen by its length
// (the empty prompt is all zeros), standing in for ddgi/text.
type fakeText struct {
	l, d int64
}

func (f fakeText) Encode(texts []string) (*torch.Tensor, error) {
	rows := make([]*torch.Tensor, len(texts))
	for i, s := range texts {
		if s == "" {
			rows[i] = torch.Zeros([]int64{1, f.l, f.d}, torch.Float32, torch.CPU)
		} else {
			rows[i] = torch.Randn(torch.NewGenerator(uint64(len(s))), []int64{1, f.l, f.d}, torch.Float32, torch.CPU)
		}
	}
	return torch.Cat(rows, 0), nil
}

func newPatchModel(t testing.TB, preset string) (*Model, *Pipeline) {
	t.Helper()
	c, err := Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	c = PatchConfig(c)
	m, err := New(c, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddControl(kinds.Mask, 2); err != nil {
		t.Fatal(err)
	}
	ae, err := NewAutoencoder(c)
	if err != nil {
		t.Fatal(err)
	}
	return m, &Pipeline{Model: m, Text: fakeText{l: 8, d: c.ContextDim}, AE: ae}
}

func TestPatchRoundTrip(t *testing.T) {
	torch.Scoped(func() {
		x := torch.Randn(torch.NewGenerator(1), []int64{2, 3, 16, 16}, torch.Float32, torch.CPU)
		p := Patch{Factor: 4}
		z := p.ToLatent(x, nil)
		if s := z.Shape(); s[1] != 48 || s[2] != 4 {
			t.Fatalf("latent %v", s)
		}
		if d := p.FromLatent(z).Sub(x).Abs().MaxAll().Item(); d != 0 {
			t.Errorf("patch round trip off by %g", d)
		}
		// Channel k·16+i·4+j of latent pixel (y,x) is image pixel (4y+i, 4x+j) of channel k.
		at := func(t *torch.Tensor, i ...int64) float64 {
			for _, k := range i {
				t = t.Select(0, k)
			}
			return t.Item()
		}
		if a, b := at(z, 0, 1*16+2*4+3, 2, 1), at(x, 0, 1, 4*2+2, 4*1+3); a != b {
			t.Errorf("patch layout: %g vs %g", a, b)
		}
	})
}

func TestPipelineSampleAndTaps(t *testing.T) {
	m, p := newPatchModel(t, "tiny")
	c := m.Config
	s := c.ImageSize()
	cond := Conditions{Mask: torch.Zeros([]int64{2, MaskClasses, s, s}, torch.Float32, torch.CPU)}
	texts := []string{"a smiling woman", "a man with a beard"}
	a, taps, err := p.SampleTaps(texts, cond, 4, Guidance{Text: 2, Cond: 1.5}, 5, func(i, _ int) bool { return i%2 == 1 })
	if err != nil {
		t.Fatal(err)
	}
	defer a.Free()
	if sh := a.Shape(); sh[0] != 2 || sh[1] != 3 || sh[2] != s || sh[3] != s {
		t.Errorf("images %v", sh)
	}
	if len(taps) != 2 {
		t.Errorf("kept taps at %d steps, want 2", len(taps))
	}
	for _, tp := range taps {
		checkTaps(t, c, tp, 2, 8)
		tp.Free()
	}
	b, err := p.Sample(texts, cond, 4, Guidance{Text: 2, Cond: 1.5}, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	if d := a.Sub(b).Abs().MaxAll().Item(); d != 0 {
		t.Errorf("same seed gives different images (%g)", d)
	}
	if _, err := p.Sample(nil, cond, 4, NoGuidance, 5); err == nil {
		t.Error("no prompts accepted")
	}
}

// BenchmarkTapsPass is what ddgi's inference needs from the diffusion
// model: one U-Net + mask ControlNet pass with taps, batch 1, small64.
func BenchmarkTapsPass(b *testing.B) {
	m, p := newPatchModel(b, "small64")
	c := m.Config
	s := c.ImageSize()
	torch.NoGrad(func() {
		zt := torch.Randn(torch.NewGenerator(1), []int64{1, c.LatentChannels, c.LatentSize, c.LatentSize}, torch.Float32, torch.CPU)
		ctx, _ := p.Text.Encode([]string{"a smiling woman"})
		cond := Conditions{Mask: torch.Zeros([]int64{1, MaskClasses, s, s}, torch.Float32, torch.CPU)}
		tt := torch.FromInt64([]int64{500}, 1)
		start := time.Now()
		for i := 0; i < b.N; i++ {
			torch.Scoped(func() { m.Taps(zt, tt, ctx, cond) })
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/pass")
	})
}

// BenchmarkSample20 is the ControlNet baseline's cost: a 20-step DDIM
// sample with text guidance (two passes per step), batch 1, small64.
func BenchmarkSample20(b *testing.B) {
	m, p := newPatchModel(b, "small64")
	s := m.Config.ImageSize()
	cond := Conditions{Mask: torch.Zeros([]int64{1, MaskClasses, s, s}, torch.Float32, torch.CPU)}
	start := time.Now()
	for i := 0; i < b.N; i++ {
		img, err := p.Sample([]string{"a smiling woman"}, cond, 20, Guidance{Text: 3, Cond: 1}, uint64(i))
		if err != nil {
			b.Fatal(err)
		}
		img.Free()
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/sample")
}

// TestDenoiseToFollowsTheSampler: denoising to the sampler's last grid
// point and taking its final step reproduces Sample exactly, and t ≥ T−1
// leaves z_T alone.
func TestDenoiseToFollowsTheSampler(t *testing.T) {
	m, p := newPatchModel(t, "tiny")
	c := m.Config
	s := c.ImageSize()
	cond := Conditions{Mask: torch.Zeros([]int64{1, MaskClasses, s, s}, torch.Float32, torch.CPU)}
	texts := []string{"a smiling woman"}
	g := Guidance{Text: 2, Cond: 1}
	want, err := p.Sample(texts, cond, 4, g, 7)
	if err != nil {
		t.Fatal(err)
	}
	torch.NoGrad(func() {
		zT := torch.Randn(torch.NewGenerator(7), []int64{1, c.LatentChannels, c.LatentSize, c.LatentSize}, torch.Float32, torch.CPU)
		same, err := p.DenoiseTo(zT, texts, cond, 4, g, m.Schedule.T()-1)
		if err != nil || same != zT {
			t.Fatalf("t = T−1 changed z_T (err %v)", err)
		}
		ts := m.Schedule.DDIMTimesteps(4)
		last := ts[len(ts)-1]
		z, err := p.DenoiseTo(zT, texts, cond, 4, g, last)
		if err != nil {
			t.Fatal(err)
		}
		ctx, _ := p.Text.Encode(texts)
		empty, _ := p.Text.Encode([]string{""})
		eps := m.Guided(z, torch.FromInt64([]int64{int64(last)}, 1), ctx, empty, cond, g)
		got := p.AE.FromLatent(m.Schedule.DDIMStep(z, eps, last, -1, 0, nil)).Clamp(-1, 1)
		if d := got.Sub(want).Abs().MaxAll().Item(); d > 1e-5 {
			t.Errorf("DenoiseTo + last step differs from Sample by %g", d)
		}
		between := (ts[1] + ts[2]) / 2
		zb, err := p.DenoiseTo(zT, texts, cond, 4, g, between)
		if err != nil || zb.Sub(z).Abs().MaxAll().Item() == 0 {
			t.Errorf("a step between grid points gave the grid result (err %v)", err)
		}
		if _, err := p.DenoiseTo(zT, texts, cond, 4, g, -2); err == nil {
			t.Error("negative step accepted")
		}
	})
}

// TestSampleEachMatchesOneByOne: a batch with per-item seeds gives each
// item's single-call image, for the batched DDIM path and the per-item
// stochastic fallback.
func TestSampleEachMatchesOneByOne(t *testing.T) {
	m, p := newPatchModel(t, "tiny")
	s := m.Config.ImageSize()
	mask := torch.Rand(torch.NewGenerator(3), []int64{3, MaskClasses, s, s}, torch.Float32, torch.CPU)
	torch.Persist(mask)
	cond := Conditions{Mask: mask}
	texts := []string{"a smiling woman", "a man", "glasses"}
	seeds := []uint64{11, 5, 11}
	g := Guidance{Text: 2, Cond: 1}
	for _, sampler := range []SamplerOpts{{Sampler: "ddim"}, {Sampler: "ddim", Eta: 1}} {
		p.Sampler = sampler
		all, err := p.SampleEach(texts, cond, 3, g, seeds)
		if err != nil {
			t.Fatal(err)
		}
		for i := range texts {
			one, err := p.Sample(texts[i:i+1], cond.Slice(i), 3, g, seeds[i])
			if err != nil {
				t.Fatal(err)
			}
			torch.Scoped(func() {
				if d := all.Narrow(0, int64(i), 1).Sub(one).Abs().MaxAll().Item(); d > 1e-4 {
					t.Errorf("%+v item %d differs from its single call by %g", sampler, i, d)
				}
			})
		}
	}
	if _, err := p.SampleEach(texts, cond, 3, g, seeds[:2]); err == nil {
		t.Error("mismatched seeds accepted")
	}
}

// TestDenoiseToFreesEachStep: the tensors DenoiseTo leaves in the caller's
// scope do not grow with the number of steps it runs (each guided pass's
// activations are freed before the next; they once filled 22 GB).
func TestDenoiseToFreesEachStep(t *testing.T) {
	m, p := newPatchModel(t, "tiny")
	c := m.Config
	s := c.ImageSize()
	cond := Conditions{Mask: torch.Zeros([]int64{1, MaskClasses, s, s}, torch.Float32, torch.CPU)}
	g := Guidance{Text: 2, Cond: 2}
	left := func(steps int) int64 {
		var n int64
		torch.NoGrad(func() {
			torch.Scoped(func() {
				zT := torch.Randn(torch.NewGenerator(7), []int64{1, c.LatentChannels, c.LatentSize, c.LatentSize}, torch.Float32, torch.CPU)
				n = torch.LiveDelta(func() {
					if _, err := p.DenoiseTo(zT, []string{"a man"}, cond, steps, g, 0); err != nil {
						t.Fatal(err)
					}
				})
			})
		})
		return n
	}
	few, many := left(2), left(20)
	if many > few+2*18 {
		t.Fatalf("DenoiseTo left %d tensors after 2 steps and %d after 20: per-step activations are kept", few, many)
	}
}

// TestOnStepCountsEverySamplerStep: the progress hook sees each step once,
// in order, with the per-sample total (DDIM: the steps asked for; DDPM:
// every timestep).
func TestOnStepCountsEverySamplerStep(t *testing.T) {
	_, p := newPatchModel(t, "tiny")
	var got []int
	p.OnStep = func(done, steps int) {
		if steps != 3 {
			t.Errorf("OnStep total %d, want 3", steps)
		}
		got = append(got, done)
	}
	img, err := p.Sample([]string{"a smiling woman"}, Conditions{}, 3, Guidance{Text: 1, Cond: 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	img.Free()
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("OnStep saw %v, want [1 2 3]", got)
	}
	p.Sampler.Sampler = "ddpm"
	if n, want := p.StepsPerSample(3), p.Model.Schedule.T(); n != want {
		t.Errorf("DDPM steps per sample %d, want %d", n, want)
	}
}
