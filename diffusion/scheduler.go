package diffusion

import (
	"fmt"
	"math"

	"ddgi/torch"
)

// Schedule is the forward noising process of DDPM (Ho et al. 2020) with
// the samplers that reverse it: DDPM ancestral sampling and DDIM (Song et
// al. 2021). Timesteps are 0 … T−1 as in diffusers.
type Schedule struct {
	Betas      []float64
	AlphaBar   []float64 // ᾱ_t = Π_{s≤t} (1 − β_s)
	Prediction string    // "epsilon" or "v_prediction"
	// Spacing is DDIMTimesteps' grid (set with SetSpacing): "" or
	// "trailing" (ddgi's: T−1 down in steps of T/S, so sampling starts from
	// pure noise), "leading" (LDM's DDIM and SD1.5's diffusers config:
	// 0, T//S, … reversed, plus StepsOffset) or "linspace"
	// (round(linspace(0, T−1, S))).
	Spacing string
	// StepsOffset is added to "leading" timesteps (SD1.5: 1, so the last
	// step is t = 1, as LDM's make_ddim_timesteps does).
	StepsOffset int
	// FinalAlphaBar0 makes the last DDIM step land on ᾱ_0 instead of 1:
	// LDM's sampler (alphas_prev starts at ᾱ_0) and diffusers'
	// set_alpha_to_one false, as SD1.5 samples. SetSpacing turns it on
	// with "leading".
	FinalAlphaBar0 bool
	sqrtAB         *torch.Tensor
	sqrt1mAB       *torch.Tensor
}

// NewSchedule builds the β schedule of c: "linear" (DDPM: β from
// BetaStart to BetaEnd) or "scaled_linear" (Stable Diffusion: √β linear),
// with c's DDIM spacing.
func NewSchedule(c Config) (*Schedule, error) {
	n := c.TrainSteps
	if n < 2 {
		return nil, fmt.Errorf("diffusion: %d training steps, want ≥ 2", n)
	}
	if c.Prediction != "epsilon" && c.Prediction != "v_prediction" {
		return nil, fmt.Errorf("diffusion: prediction %q (epsilon, v_prediction)", c.Prediction)
	}
	s := &Schedule{Betas: make([]float64, n), AlphaBar: make([]float64, n), Prediction: c.Prediction}
	for i := range s.Betas {
		f := float64(i) / float64(n-1)
		switch c.Schedule {
		case "linear":
			s.Betas[i] = c.BetaStart + f*(c.BetaEnd-c.BetaStart)
		case "scaled_linear":
			b := math.Sqrt(c.BetaStart) + f*(math.Sqrt(c.BetaEnd)-math.Sqrt(c.BetaStart))
			s.Betas[i] = b * b
		default:
			return nil, fmt.Errorf("diffusion: β schedule %q (linear, scaled_linear)", c.Schedule)
		}
	}
	ab := 1.0
	for i, b := range s.Betas {
		ab *= 1 - b
		s.AlphaBar[i] = ab
	}
	sq, sq1 := make([]float32, n), make([]float32, n)
	for i, a := range s.AlphaBar {
		sq[i], sq1[i] = float32(math.Sqrt(a)), float32(math.Sqrt(1-a))
	}
	if err := s.SetSpacing(c.Spacing, c.StepsOffset); err != nil {
		return nil, err
	}
	s.sqrtAB, s.sqrt1mAB = torch.FromFloat32(sq, int64(n)), torch.FromFloat32(sq1, int64(n))
	torch.Persist(s.sqrtAB, s.sqrt1mAB)
	return s, nil
}

// T is the number of training timesteps.
func (s *Schedule) T() int { return len(s.Betas) }

// alphaBar is ᾱ_t, with ᾱ_{−1} = 1 (the final DDIM step lands on x_0).
func (s *Schedule) alphaBar(t int) float64 {
	if t < 0 {
		return 1
	}
	return s.AlphaBar[t]
}

// ddimPrevAlphaBar is ᾱ of the timestep a DDIM step lands on: alphaBar,
// except that the final step (prev < 0) lands on ᾱ_0 under FinalAlphaBar0.
func (s *Schedule) ddimPrevAlphaBar(prev int) float64 {
	if prev < 0 && s.FinalAlphaBar0 {
		return s.AlphaBar[0]
	}
	return s.alphaBar(prev)
}

// coef gathers a per-timestep coefficient for t [B] as [B,1,1,1].
func coef(table, t *torch.Tensor) *torch.Tensor {
	return table.ToDevice(t.Device()).IndexSelect(0, t).Reshape(t.Size(0), 1, 1, 1)
}

// AddNoise samples x_t ~ q(x_t | x_0) = √ᾱ_t x_0 + √(1−ᾱ_t) ε for
// timesteps t [B] int64 (DDPM Eq. 4).
func (s *Schedule) AddNoise(x0, eps, t *torch.Tensor) *torch.Tensor {
	return x0.Mul(coef(s.sqrtAB, t)).Add(eps.Mul(coef(s.sqrt1mAB, t)))
}

// Target is what the network regresses: ε (DDPM Eq. 14, L_simple) or
// v = √ᾱ_t ε − √(1−ᾱ_t) x_0 (Salimans & Ho 2022, Eq. 31 / Appendix D).
func (s *Schedule) Target(x0, eps, t *torch.Tensor) *torch.Tensor {
	if s.Prediction == "epsilon" {
		return eps
	}
	return eps.Mul(coef(s.sqrtAB, t)).Sub(x0.Mul(coef(s.sqrt1mAB, t)))
}

// Loss is the simplified diffusion objective ‖target − output‖² averaged
// over elements (DDPM Eq. 14).
func (s *Schedule) Loss(out, x0, eps, t *torch.Tensor) *torch.Tensor {
	return torch.MSELoss(out, s.Target(x0, eps, t), torch.ReduceMean)
}

// Split converts a model output at timestep t into the predicted x_0 and
// ε: x̂_0 = (x_t − √(1−ᾱ)ε)/√ᾱ (DDPM Eq. 15), or from v:
// x̂_0 = √ᾱ x_t − √(1−ᾱ) v, ε = √(1−ᾱ) x_t + √ᾱ v (Salimans & Ho 2022).
func (s *Schedule) Split(xt, out *torch.Tensor, t int) (x0, eps *torch.Tensor) {
	a := s.AlphaBar[t]
	sa, s1 := math.Sqrt(a), math.Sqrt(1-a)
	if s.Prediction == "epsilon" {
		return xt.Sub(out.MulScalar(s1)).DivScalar(sa), out
	}
	return xt.MulScalar(sa).Sub(out.MulScalar(s1)), xt.MulScalar(s1).Add(out.MulScalar(sa))
}

// SetSpacing chooses the DDIM timestep grid (see Spacing); "leading" also
// takes offset and lands the last step on ᾱ_0 as LDM's sampler does.
func (s *Schedule) SetSpacing(spacing string, offset int) error {
	switch spacing {
	case "", "trailing", "linspace":
		if offset != 0 {
			return fmt.Errorf("diffusion: steps offset %d applies to leading spacing only", offset)
		}
	case "leading":
		if offset < 0 || offset >= s.T() {
			return fmt.Errorf("diffusion: steps offset %d outside 0…%d", offset, s.T()-1)
		}
	default:
		return fmt.Errorf("diffusion: timestep spacing %q (trailing, leading, linspace)", spacing)
	}
	s.Spacing, s.StepsOffset, s.FinalAlphaBar0 = spacing, offset, spacing == "leading"
	return nil
}

// DDIMTimesteps returns steps timesteps, descending, on the Spacing grid
// (by default "trailing": evenly spaced from T−1 down).
func (s *Schedule) DDIMTimesteps(steps int) []int {
	n := s.T()
	steps = max(1, min(steps, n))
	ts := make([]int, steps)
	for i := range ts {
		switch s.Spacing {
		case "leading": // clamped: an offset can push the top step past T−1 (diffusers would index out of range)
			ts[i] = min((steps-1-i)*(n/steps)+s.StepsOffset, n-1)
		case "linspace":
			if steps == 1 {
				break // linspace(0, T−1, 1) is [0]
			}
			ts[i] = int(math.RoundToEven(float64(steps-1-i) * (float64(n-1) / float64(steps-1)))) // numpy: i·step
		default:
			ts[i] = int(math.Round(float64(n)-float64(i)*float64(n)/float64(steps))) - 1
		}
	}
	return ts
}

// ddimSigma is σ_t(η) = η √((1−ᾱ_prev)/(1−ᾱ_t)) √(1−ᾱ_t/ᾱ_prev) (DDIM
// Eq. 16); η = 1 is DDPM's posterior standard deviation √β̃_t.
func ddimSigma(abT, abPrev, eta float64) float64 {
	return eta * math.Sqrt((1-abPrev)/(1-abT)) * math.Sqrt(1-abT/abPrev)
}

// DDIMStep moves x_t to x_prev given the model output (DDIM Eq. 12):
// x_prev = √ᾱ_prev x̂_0 + √(1−ᾱ_prev−σ²) ε̂ + σ z. noise may be nil when
// eta = 0.
func (s *Schedule) DDIMStep(xt, out *torch.Tensor, t, prev int, eta float64, noise *torch.Tensor) *torch.Tensor {
	x0, eps := s.Split(xt, out, t)
	abT, abP := s.AlphaBar[t], s.ddimPrevAlphaBar(prev)
	sigma := ddimSigma(abT, abP, eta)
	x := x0.MulScalar(math.Sqrt(abP)).Add(eps.MulScalar(math.Sqrt(math.Max(1-abP-sigma*sigma, 0))))
	if sigma > 0 {
		x = x.Add(noise.MulScalar(sigma))
	}
	return x
}

// posteriorMean is μ̃_t(x_t, x_0) = √ᾱ_{t−1}β_t/(1−ᾱ_t)·x_0 +
// √α_t(1−ᾱ_{t−1})/(1−ᾱ_t)·x_t (DDPM Eq. 7).
func (s *Schedule) posteriorMean(xt, x0 *torch.Tensor, t int) *torch.Tensor {
	abT, abP, b := s.AlphaBar[t], s.alphaBar(t-1), s.Betas[t]
	return x0.MulScalar(math.Sqrt(abP) * b / (1 - abT)).Add(xt.MulScalar(math.Sqrt(1-b) * (1 - abP) / (1 - abT)))
}

// posteriorVariance is β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t)·β_t (DDPM Eq. 7).
func (s *Schedule) posteriorVariance(t int) float64 {
	return (1 - s.alphaBar(t-1)) / (1 - s.AlphaBar[t]) * s.Betas[t]
}

// DDPMStep is one ancestral step x_{t−1} ~ N(μ̃_t(x_t, x̂_0), β̃_t I)
// (DDPM Algorithm 2 with σ_t² = β̃_t); no noise is added at t = 0.
func (s *Schedule) DDPMStep(xt, out *torch.Tensor, t int, noise *torch.Tensor) *torch.Tensor {
	x0, _ := s.Split(xt, out, t)
	x := s.posteriorMean(xt, x0, t)
	if t > 0 {
		x = x.Add(noise.MulScalar(math.Sqrt(s.posteriorVariance(t))))
	}
	return x
}

// Denoiser returns the model output (ε or v) for x_t at timestep t.
type Denoiser func(xt *torch.Tensor, t int) *torch.Tensor

// SamplerOpts choose the reverse process.
type SamplerOpts struct {
	Sampler string  // "ddim" (default) or "ddpm"
	Steps   int     // DDIM steps (DDPM always takes T)
	Eta     float64 // DDIM stochasticity: 0 deterministic, 1 DDPM-like
}

// Run denoises xT with model and returns x_0. Noise for stochastic steps
// comes from g, drawn once per step in order, so DDIM with eta = 1 and T
// steps follows the DDPM sampler's path exactly. Call it under NoGrad.
func (s *Schedule) Run(xT *torch.Tensor, model Denoiser, o SamplerOpts, g *torch.Generator) *torch.Tensor {
	ts := s.DDIMTimesteps(o.Steps)
	if o.Sampler == "ddpm" { // every timestep, whatever the DDIM spacing
		ts = make([]int, s.T())
		for i := range ts {
			ts[i] = s.T() - 1 - i
		}
	}
	x := xT
	for i, t := range ts {
		prev := -1
		if i+1 < len(ts) {
			prev = ts[i+1]
		}
		sc := torch.NewScope()
		out := model(x, t)
		var noise *torch.Tensor
		if o.Sampler == "ddpm" || o.Eta > 0 {
			noise = torch.Randn(g, x.Shape(), torch.Float32, x.Device())
		}
		if o.Sampler == "ddpm" {
			x = s.DDPMStep(x, out, t, noise)
		} else {
			x = s.DDIMStep(x, out, t, prev, o.Eta, noise)
		}
		sc.Keep(x)
		sc.Close()
	}
	return x
}

// Guidance scales classifier-free guidance; 1 turns a term off (no extra
// U-Net pass), 0 drops that input entirely.
type Guidance struct {
	Text float64 // weight of the prompt over the empty prompt
	Cond float64 // weight of the visual condition over zeros
}

// NoGuidance is the plain conditional prediction.
var NoGuidance = Guidance{Text: 1, Cond: 1}

// guide combines predictions by classifier-free guidance (Ho & Salimans
// 2022, Eq. 6, ε̃ = ε(∅) + s·(ε(c) − ε(∅))), composed over two inputs as
// in InstructPix2Pix (Brooks et al. 2023, Eq. 3):
// ε̃ = ε(∅,∅) + s_x·(ε(∅,x) − ε(∅,∅)) + s_c·(ε(c,x) − ε(∅,x)).
// full = ε(c,x); noText = ε(∅,x) (nil when s_c = s_x = 1); none = ε(∅,∅)
// (nil when s_x = 1).
func guide(full, noText, none *torch.Tensor, g Guidance) *torch.Tensor {
	switch {
	case noText == nil:
		return full
	case none == nil:
		return noText.Add(full.Sub(noText).MulScalar(g.Text))
	}
	return none.Add(noText.Sub(none).MulScalar(g.Cond)).Add(full.Sub(noText).MulScalar(g.Text))
}

// Guided predicts with classifier-free guidance: ctx are the prompt's
// tokens, empty the empty prompt's (same shape), cond the visual inputs.
// With NoGuidance it is exactly Predict(zt, t, ctx, cond).
func (m *Model) Guided(zt, t, ctx, empty *torch.Tensor, cond Conditions, g Guidance) *torch.Tensor {
	eps, _ := m.guided(zt, t, ctx, empty, cond, g, false)
	return eps
}

// keptPass runs f in a scope of its own and keeps only the tensors it
// returns (to the caller's scope).
func keptPass(f func() []*torch.Tensor) {
	s := torch.NewScope()
	defer s.Close()
	s.Keep(f()...)
}

// guided is Guided that also returns the taps of the conditional pass.
func (m *Model) guided(zt, t, ctx, empty *torch.Tensor, cond Conditions, g Guidance, wantTaps bool) (*torch.Tensor, Taps) {
	t = timesteps(t, zt.Size(0))
	// Each pass in a scope of its own that keeps only its output: a
	// 64²-latent pass holds gigabytes of activations until its scope
	// closes, and three of them would otherwise pile up.
	var full Taps
	keptPass(func() []*torch.Tensor {
		full = m.forward(zt, t, ctx, cond, wantTaps)
		return full.tensors()
	})
	var noText, none *torch.Tensor
	predict := func(ctx *torch.Tensor, cond Conditions) (eps *torch.Tensor) {
		keptPass(func() []*torch.Tensor { eps = m.Predict(zt, t, ctx, cond); return []*torch.Tensor{eps} })
		return eps
	}
	if g.Text != 1 || g.Cond != 1 {
		noText = predict(empty, cond)
	}
	if g.Cond != 1 {
		none = predict(empty, cond.Dropped())
	}
	return guide(full.Eps, noText, none, g), full
}
