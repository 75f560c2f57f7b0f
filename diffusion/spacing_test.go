package diffusion

import (
	"fmt"
	"path/filepath"
	"testing"

	"ddgi/internal/golden"
	"ddgi/torch"
)

func sdSchedule(t *testing.T) *Schedule {
	t.Helper()
	s, err := NewSchedule(Config{Schedule: "scaled_linear", BetaStart: 0.00085, BetaEnd: 0.012, TrainSteps: 1000, Prediction: "epsilon"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDDIMSpacings checks the three timestep grids against diffusers'
// DDIMScheduler.set_timesteps at T = 1000 (values worked out from its
// formulas) and that bad settings are refused.
func TestDDIMSpacings(t *testing.T) {
	s := sdSchedule(t)
	for _, tc := range []struct {
		spacing string
		offset  int
		steps   int
		want    []int
	}{
		{"", 0, 4, []int{999, 749, 499, 249}},
		{"trailing", 0, 3, []int{999, 666, 332}},
		{"leading", 1, 4, []int{751, 501, 251, 1}},
		{"leading", 0, 3, []int{666, 333, 0}},
		{"linspace", 0, 4, []int{999, 666, 333, 0}},
		{"linspace", 0, 6, []int{999, 799, 599, 400, 200, 0}},
	} {
		if err := s.SetSpacing(tc.spacing, tc.offset); err != nil {
			t.Fatal(err)
		}
		got := s.DDIMTimesteps(tc.steps)
		if len(got) != len(tc.want) {
			t.Fatalf("%s+%d, %d steps: %v, want %v", tc.spacing, tc.offset, tc.steps, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%s+%d, %d steps: %v, want %v", tc.spacing, tc.offset, tc.steps, got, tc.want)
			}
		}
	}
	for _, bad := range []struct {
		spacing string
		offset  int
	}{{"quad", 0}, {"trailing", 1}, {"leading", -1}, {"leading", 1000}} {
		if s.SetSpacing(bad.spacing, bad.offset) == nil {
			t.Errorf("spacing %q offset %d accepted", bad.spacing, bad.offset)
		}
	}
}

// TestLDMDDIMParity reproduces CompVis' DDIMSampler (S = 20, η = 0, SD's
// schedule) from its own fixture: the timestep list (leading, +1) and the
// first, second and last steps for a given x_t and ε, the last landing on
// ᾱ_0 rather than 1.
func TestLDMDDIMParity(t *testing.T) {
	io := golden.Load(t, filepath.Join("testdata", "ldm_ddim.safetensors"))
	s := sdSchedule(t)
	if err := s.SetSpacing("leading", 1); err != nil {
		t.Fatal(err)
	}
	ts := s.DDIMTimesteps(20)
	ref := io["timesteps"].Float32s()
	if len(ref) != len(ts) {
		t.Fatalf("timesteps %v, reference %v", ts, ref)
	}
	for i := range ts {
		if float32(ts[i]) != ref[i] {
			t.Fatalf("timesteps %v, reference %v", ts, ref)
		}
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			for _, i := range []int{0, 1, 19} {
				prev := -1
				if i+1 < len(ts) {
					prev = ts[i+1]
				}
				got := s.DDIMStep(io["x_t"], io["eps"], ts[i], prev, 0, nil)
				want := io[fmt.Sprintf("x_prev_%d", i)]
				d := got.Sub(want).Abs().MaxAll().Item()
				t.Logf("step %d (t=%d → %d): max |Δ| = %.3g", i, ts[i], prev, d)
				if d > 1e-4 {
					t.Errorf("step %d: max |Δ| = %.3g", i, d)
				}
			}
		})
	})
}

// TestDDPMIgnoresSpacing: the DDPM sampler visits every timestep once
// whatever grid DDIM uses (leading+1 at S = T would repeat T−1).
func TestDDPMIgnoresSpacing(t *testing.T) {
	s, err := NewSchedule(Config{Schedule: "scaled_linear", BetaStart: 0.00085, BetaEnd: 0.012, TrainSteps: 10, Prediction: "epsilon"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetSpacing("leading", 1); err != nil {
		t.Fatal(err)
	}
	var seen []int
	torch.NoGrad(func() {
		torch.Scoped(func() {
			x := torch.Zeros([]int64{1, 1, 2, 2}, torch.Float32, torch.CPU)
			s.Run(x, func(xt *torch.Tensor, t int) *torch.Tensor { seen = append(seen, t); return xt.MulScalar(0) }, SamplerOpts{Sampler: "ddpm"}, torch.NewGenerator(1))
		})
	})
	for i, ts := range seen {
		if ts != 9-i || len(seen) != 10 {
			t.Fatalf("DDPM visited %v", seen)
		}
	}
}

// TestConfigSpacing: the DDIM grid is part of a model's config, so a saved
// model samples on it after loading; the zero value keeps ddgi's trailing
// grid; a bad grid is refused when the model is built; a branch attaches
// whatever grid its own file records (the U-Net's rules).
func TestConfigSpacing(t *testing.T) {
	c, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := New(c, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.Schedule.DDIMTimesteps(4); fmt.Sprint(got) != "[999 749 499 249]" {
		t.Fatalf("zero spacing: %v, want ddgi's trailing grid", got)
	}
	c.Spacing, c.StepsOffset = "leading", 1
	m, err := New(c, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "unet.safetensors")
	if err := m.Save(path, false); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Schedule.DDIMTimesteps(4); fmt.Sprint(got) != "[751 501 251 1]" || !back.Schedule.FinalAlphaBar0 {
		t.Fatalf("loaded leading+1 model: %v (final ᾱ_0 %v)", got, back.Schedule.FinalAlphaBar0)
	}
	bad := c
	bad.StepsOffset = -1
	if _, err := New(bad, torch.CPU, 1); err == nil {
		t.Error("offset −1 accepted")
	}
	branch := c
	branch.Spacing, branch.StepsOffset = "", 0
	if err := CheckBranchConfig(c, branch); err != nil {
		t.Errorf("a branch differing only in its grid: %v", err)
	}
	branch.Heads++
	if err := CheckBranchConfig(c, branch); err == nil {
		t.Error("a branch with other heads fits")
	}
}
