package encoder

import (
	"fmt"

	"ddgi/diffusion"
	"ddgi/imagebatch"
	"ddgi/inversion"
	"ddgi/kinds"
	"ddgi/text"
	"ddgi/torch"
)

// E is the diffusion-based encoder as the inversion sees it
// (inversion.Encoder): one U-Net(+ControlNet) pass gives h_t, f_t and a_t;
// the full sampler gives I^d_0.
type E struct {
	Pipeline *diffusion.Pipeline
	Text     TextEncoder
	// Steps and Guidance are the sampler settings for I^d_0.
	Steps    int
	Guidance diffusion.Guidance
	// WeightsID fingerprints the weight files (see inversion.FileID).
	WeightsID string
	// EmptyPooled makes Features also return the empty prompt's pooled
	// embedding (a prompt strength other than 1 needs it).
	EmptyPooled bool
}

var _ inversion.Encoder = (*E)(nil)

func (e *E) model() *diffusion.Model { return e.Pipeline.Model }

// Timesteps is the schedule length.
func (e *E) Timesteps() int { return e.model().Schedule.T() }

// ID names the weights and sampler settings for the I^d_0 cache: a bf16
// U-Net's samples are not the fp32 one's (fp32 IDs are as they were
// before the choice existed).
func (e *E) ID() string {
	id := fmt.Sprintf("%s|%d|%g|%g|%s", e.WeightsID, e.Steps, e.Guidance.Text, e.Guidance.Cond, e.Pipeline.Sampler.Sampler)
	if e.model().Store.BF16 {
		id += "|bf16"
	}
	return id
}

// Latents encodes images to clean latents (the posterior mean).
func (e *E) Latents(x *torch.Tensor) *torch.Tensor { return e.Pipeline.AE.ToLatent(x, nil) }

// AddNoise forms z_t ~ q(z_t | z_0) from standard normal noise eps.
func (e *E) AddNoise(z0, eps, t *torch.Tensor) *torch.Tensor {
	return e.model().Schedule.AddNoise(z0, eps, t)
}

// Prior draws z_T.
func (e *E) Prior(b int64, g *torch.Generator) *torch.Tensor {
	c := e.model().Config
	return torch.Randn(g, []int64{b, c.LatentChannels, c.LatentSize, c.LatentSize}, torch.Float32, e.model().Store.Device)
}

// conditions converts the inversion's condition to the branches' inputs.
func conditions(c inversion.Condition) diffusion.Conditions {
	var dc diffusion.Conditions
	switch c.Kind {
	case kinds.Mask:
		dc.Mask = imagebatch.OneHot(c.Mask)
	case kinds.Scribble:
		dc.Scribble = c.Scribble
	}
	return dc
}

// WordMask marks word tokens (not BOS, EOS or padding) of ids framed by a
// tokenizer with specials sp: [B,L] float. See text.WordMask.
func WordMask(ids *torch.Tensor, sp text.Specials) *torch.Tensor {
	return text.WordMask(ids, sp)
}

// Features runs one pass and returns h_t and AbSMNet's inputs.
func (e *E) Features(zt, t *torch.Tensor, texts []string, cond inversion.Condition) (*torch.Tensor, inversion.Features) {
	ids, err := e.Text.IDs(texts)
	if err != nil {
		panic(&torch.Error{Op: "encode text", Msg: err.Error()})
	}
	ctx := e.Text.Enc.Forward(ids) // ids are on the text encoder's device (IDs)
	tp := e.model().Taps(zt, t, ctx, conditions(cond))
	f := inversion.Features{F: tp.F, AttOut: tp.AOut, AttP: tp.A, Words: WordMask(ids, e.Text.Tok.Specials()), Pooled: e.Text.Enc.Pooled(ids, ctx)}
	if e.EmptyPooled {
		empty, err := e.Text.IDs([]string{""})
		if err != nil {
			panic(&torch.Error{Op: "encode text", Msg: err.Error()})
		}
		f.PooledEmpty = e.Text.Enc.Pooled(empty, e.Text.Enc.Forward(empty))
	}
	return tp.H, f
}

// DenoiseTo runs E's sampler (its steps and guidance, η = 0) from z_T to
// step t and returns z_t, so that a single tap at t < T−1 sees a latent
// like those of training rather than pure noise.
func (e *E) DenoiseTo(zT *torch.Tensor, texts []string, cond inversion.Condition, t int) *torch.Tensor {
	z, err := e.Pipeline.DenoiseTo(zT, texts, conditions(cond), e.Steps, e.Guidance, t)
	if err != nil {
		panic(&torch.Error{Op: "denoise to t", Msg: err.Error()})
	}
	return z
}

// Sample runs the full sampler: I^d_0.
func (e *E) Sample(texts []string, cond inversion.Condition, seeds []int64) *torch.Tensor {
	us := make([]uint64, len(seeds))
	for i, s := range seeds {
		us[i] = uint64(s)
	}
	img, err := e.Pipeline.SampleEach(texts, conditions(cond), e.Steps, e.Guidance, us)
	if err != nil {
		panic(&torch.Error{Op: "sample I^d_0", Msg: err.Error()})
	}
	return img
}

// InversionConfig sizes M and T for this encoder's taps and a GAN's W+
// space, by running one pass on a dummy input.
func (e *E) InversionConfig(styles, styleDim, width int64, kind kinds.Cond) (inversion.Config, error) {
	var c inversion.Config
	err := torch.Try(func() {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				m := e.model()
				s := m.Config.ImageSize()
				cond := inversion.Condition{Kind: kind,
					Mask:     torch.Zeros([]int64{1, s, s}, torch.Int64, m.Store.Device),
					Scribble: torch.Zeros([]int64{1, 1, s, s}, torch.Float32, m.Store.Device)}
				h, f := e.Features(e.Prior(1, torch.NewGenerator(0)), torch.FromInt64([]int64{int64(e.Timesteps() - 1)}, 1).ToDevice(m.Store.Device), []string{"a face"}, cond)
				c = inversion.Config{Styles: styles, StyleDim: styleDim, HChannels: h.Size(1), HSize: h.Size(2),
					Width: width, AlphaBuckets: 10, Timesteps: e.Timesteps(), UseAttention: true}
				for _, fn := range f.F {
					c.FChannels = append(c.FChannels, fn.Size(1))
					c.Size = max(c.Size, fn.Size(2))
				}
			})
		})
	})
	return c, err
}
