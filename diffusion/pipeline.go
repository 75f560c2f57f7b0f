package diffusion

import (
	"fmt"

	"ddgi/torch"
)

// TextEncoder maps prompts to token features [B,L,ContextDim]; an empty
// string is the empty prompt (the unconditional input of guidance).
type TextEncoder interface {
	Encode(texts []string) (*torch.Tensor, error)
}

// Autoencoder maps images [B,3,S,S] in [-1,1] to the latents the U-Net
// denoises and back (Stable Diffusion's scaled VAE latents).
type Autoencoder interface {
	ToLatent(x *torch.Tensor, g *torch.Generator) *torch.Tensor
	// ToLatentRows is ToLatent for rows lo… of a batch of total images
	// (a data-parallel rank's share): any noise is drawn for the whole
	// batch and the rows kept, as one process draws it.
	ToLatentRows(x *torch.Tensor, g *torch.Generator, total, lo int64) *torch.Tensor
	FromLatent(z *torch.Tensor) *torch.Tensor
}

// Patch is the autoencoder-free latent space: each Factor×Factor pixel
// block folded into channels ([B,3,S,S] ↔ [B,3·F²,S/F,S/F]), lossless and
// parameter-free. Config.Latent "patch" selects it, with F the condition
// embedding's factor ImageSize/LatentSize.
type Patch struct{ Factor int64 }

// ToLatent folds pixel blocks into channels.
func (p Patch) ToLatent(x *torch.Tensor, _ *torch.Generator) *torch.Tensor {
	b, c, h, w, f := x.Size(0), x.Size(1), x.Size(2), x.Size(3), p.Factor
	return x.Reshape(b, c, h/f, f, w/f, f).Permute(0, 1, 3, 5, 2, 4).Reshape(b, c*f*f, h/f, w/f)
}

// ToLatentRows folds pixel blocks; the fold draws nothing.
func (p Patch) ToLatentRows(x *torch.Tensor, g *torch.Generator, _, _ int64) *torch.Tensor {
	return p.ToLatent(x, g)
}

// FromLatent unfolds channels back into pixel blocks.
func (p Patch) FromLatent(z *torch.Tensor) *torch.Tensor {
	b, cf, h, w, f := z.Size(0), z.Size(1), z.Size(2), z.Size(3), p.Factor
	c := cf / (f * f)
	return z.Reshape(b, c, f, f, h, w).Permute(0, 1, 4, 2, 5, 3).Reshape(b, c, h*f, w*f)
}

// PatchConfig turns a latent-space preset into its "patch" variant: the
// same U-Net on 3·F² channels, F = ImageSize/LatentSize (small64: 48).
func PatchConfig(c Config) Config {
	f := c.ImageSize() / c.LatentSize
	c.Latent = "patch"
	c.LatentChannels = 3 * f * f
	return c
}

// NewAutoencoder returns the parameter-free latent space of c ("patch");
// a "vae" config needs the trained KL autoencoder, which the caller loads.
func NewAutoencoder(c Config) (Autoencoder, error) {
	if c.Latent == "patch" {
		return Patch{Factor: c.ImageSize() / c.LatentSize}, nil
	}
	return nil, fmt.Errorf("diffusion: latent space %q needs a trained autoencoder", c.Latent)
}

// Pipeline is text + conditions → image: tokenize and encode the prompt,
// run the sampler in latent space with the U-Net and its ControlNet
// branches, decode (the paper's I^d_0 and the ControlNet baseline).
type Pipeline struct {
	Model   *Model
	Text    TextEncoder
	AE      Autoencoder
	Sampler SamplerOpts // Sampler and Eta; Steps comes from Sample's argument
	// OnStep, when set, is called after each sampler step with the steps
	// done and the steps one sample takes (StepsPerSample).
	OnStep func(done, steps int)
}

// Sample generates one image per text in [-1,1], [B,3,S,S]. conds holds
// the visual inputs at Config.ImageSize() (nil fields: none); seed fixes
// the initial noise and any sampler noise.
func (p *Pipeline) Sample(texts []string, conds Conditions, steps int, g Guidance, seed uint64) (*torch.Tensor, error) {
	img, _, err := p.SampleTaps(texts, conds, steps, g, seed, nil)
	return img, err
}

// SampleTaps is Sample that also returns the taps of the conditional
// U-Net pass at every sampler step i for which keep(i, t) holds, keyed by
// the timestep t. The images and tap tensors outlive the call (they are
// persistent: Free the taps when done).
func (p *Pipeline) SampleTaps(texts []string, conds Conditions, steps int, g Guidance, seed uint64, keep func(i, t int) bool) (*torch.Tensor, map[int]Taps, error) {
	return p.sample(texts, conds, steps, g, seeded(seed, p.Model.Store.Device), keep, true)
}

// seeded draws z_T from seed's generator, which then gives the sampler noise.
func seeded(seed uint64, dev torch.Device) func(shape []int64) (*torch.Tensor, *torch.Generator) {
	return func(shape []int64) (*torch.Tensor, *torch.Generator) {
		gen := torch.NewGenerator(seed)
		return torch.Randn(gen, shape, torch.Float32, dev), gen
	}
}

// SampleFrom is Sample with diffusers' latents= and output_type="latent":
// zT, when not nil, is the initial noise [B,C,L,L] (B = len(texts)) instead
// of seed's draw, and decode false returns the final latents z_0 (the
// U-Net's latent space; Decode turns them into Sample's image). Sampler
// noise (η > 0, DDPM) comes from seed's generator either way; with a given
// zT that generator has not drawn z_T first, so only DDIM at η = 0 gives
// the seed's image from the seed's own noise.
func (p *Pipeline) SampleFrom(texts []string, conds Conditions, steps int, g Guidance, seed uint64, zT *torch.Tensor, decode bool) (*torch.Tensor, error) {
	prior := seeded(seed, p.Model.Store.Device)
	if zT != nil {
		c := p.Model.Config
		want := []int64{int64(len(texts)), c.LatentChannels, c.LatentSize, c.LatentSize}
		if got := zT.Shape(); fmt.Sprint(got) != fmt.Sprint(want) {
			return nil, fmt.Errorf("sample: initial latents are %v; this U-Net needs %v", got, want)
		}
		prior = func([]int64) (*torch.Tensor, *torch.Generator) {
			return zT.To(torch.Float32).ToDevice(p.Model.Store.Device), torch.NewGenerator(seed)
		}
	}
	z, _, err := p.sample(texts, conds, steps, g, prior, nil, decode)
	return z, err
}

// StepsPerSample is the number of U-Net steps a sample asked for with
// steps takes: steps, except for DDPM, which runs every timestep.
func (p *Pipeline) StepsPerSample(steps int) int {
	if p.Sampler.Sampler == "ddpm" {
		return p.Model.Schedule.T()
	}
	return steps
}

// Decode maps final latents z_0 to images in [-1,1], as Sample ends.
func (p *Pipeline) Decode(z *torch.Tensor) *torch.Tensor { return p.AE.FromLatent(z).Clamp(-1, 1) }

// SampleEach is Sample for a batch whose items have their own seeds: item
// i is what Sample(texts[i:i+1], conds.Slice(i), steps, g, seeds[i]) gives
// (up to float rounding of batched kernels). With the deterministic DDIM
// sampler (η = 0) the items run as one batch, ≈ 28% faster per image at
// batch 16 on 2 CPU cores; stochastic samplers run one call per item.
func (p *Pipeline) SampleEach(texts []string, conds Conditions, steps int, g Guidance, seeds []uint64) (*torch.Tensor, error) {
	if len(seeds) != len(texts) {
		return nil, fmt.Errorf("sample: %d seeds for %d prompts", len(seeds), len(texts))
	}
	if p.Sampler.Sampler == "ddpm" || p.Sampler.Eta > 0 {
		var imgs []*torch.Tensor
		for i := range texts {
			var one Conditions
			if err := torch.Try(func() { one = conds.Slice(i) }); err != nil {
				return nil, err
			}
			img, err := p.Sample(texts[i:i+1], one, steps, g, seeds[i])
			if err != nil {
				return nil, err
			}
			imgs = append(imgs, img)
		}
		var out *torch.Tensor
		err := torch.Try(func() { out = torch.Cat(imgs, 0); torch.Persist(out) })
		for _, im := range imgs {
			im.Free()
		}
		return out, err
	}
	img, _, err := p.sample(texts, conds, steps, g, func(shape []int64) (*torch.Tensor, *torch.Generator) {
		one := append([]int64{1}, shape[1:]...)
		zs := make([]*torch.Tensor, len(seeds))
		for i, sd := range seeds {
			zs[i] = torch.Randn(torch.NewGenerator(sd), one, torch.Float32, p.Model.Store.Device)
		}
		return torch.Cat(zs, 0), nil
	}, nil, true)
	return img, err
}

// sample runs the sampler from the z_T (and sampler-noise generator) that
// prior draws for the batch's latent shape; it returns the decoded image,
// or z_0 itself when decode is false.
func (p *Pipeline) sample(texts []string, conds Conditions, steps int, g Guidance, prior func(shape []int64) (*torch.Tensor, *torch.Generator), keep func(i, t int) bool, decode bool) (*torch.Tensor, map[int]Taps, error) {
	if len(texts) == 0 {
		return nil, nil, fmt.Errorf("sample: no prompts")
	}
	var img *torch.Tensor
	kept := map[int]Taps{}
	err := torch.Try(func() {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				c := p.Model.Config
				b := int64(len(texts))
				ctx, empty := p.prompts("sample", texts)
				dev := p.Model.Store.Device
				zT, gen := prior([]int64{b, c.LatentChannels, c.LatentSize, c.LatentSize})
				step := 0
				o := p.Sampler
				o.Steps = steps
				z := p.Model.Schedule.Run(zT, func(zt *torch.Tensor, t int) *torch.Tensor {
					want := keep != nil && keep(step, t)
					step++
					tt := torch.FromInt64([]int64{int64(t)}, 1).ToDevice(dev)
					eps, tp := p.Model.guided(zt, tt, ctx, empty, conds, g, want)
					if want {
						torch.Persist(tp.tensors()...)
						kept[t] = tp
					}
					if p.OnStep != nil {
						p.OnStep(step, p.StepsPerSample(steps))
					}
					return eps
				}, o, gen)
				img = z
				if decode {
					img = p.Decode(z)
				}
				torch.Persist(img)
			})
		})
	})
	if err != nil {
		for _, tp := range kept {
			tp.Free()
		}
		return nil, nil, err
	}
	return img, kept, nil
}

// tensors lists every tensor of the taps.
func (tp Taps) tensors() []*torch.Tensor {
	ts := append([]*torch.Tensor{tp.H, tp.Eps}, tp.F...)
	for _, a := range tp.A {
		ts = append(ts, a...)
	}
	for _, a := range tp.AOut {
		ts = append(ts, a...)
	}
	return ts
}

// Free releases persistent taps (from SampleTaps).
func (tp Taps) Free() {
	for _, t := range tp.tensors() {
		t.Free()
	}
}

// DenoiseTo runs the DDIM sampler (its steps-step grid, guidance g) from
// z_T down to timestep t and returns z_t: a partly denoised latent that
// looks like the noised images the U-Net was trained on, for taps at t < T−1.
// The last move lands exactly on t even between grid points. t ≥ T−1
// returns zT unchanged. Call under NoGrad; the result is scope-owned.
func (p *Pipeline) DenoiseTo(zT *torch.Tensor, texts []string, conds Conditions, steps int, g Guidance, t int) (*torch.Tensor, error) {
	s := p.Model.Schedule
	if t >= s.T()-1 {
		return zT, nil
	}
	if t < 0 {
		return nil, fmt.Errorf("denoise: step %d is negative", t)
	}
	var z *torch.Tensor
	err := torch.Try(func() {
		ctx, empty := p.prompts("denoise", texts)
		dev := p.Model.Store.Device
		z = zT
		ts := s.DDIMTimesteps(steps)
		for i, cur := range ts {
			if cur <= t {
				break
			}
			prev := t
			if i+1 < len(ts) && ts[i+1] > t {
				prev = ts[i+1]
			}
			// One scope a step: a guided pass's activations (attention maps
			// of three batches) would otherwise pile up until the caller's
			// scope ends (22 GB at batch 50 and t = 500).
			sc := torch.NewScope()
			tt := torch.FromInt64([]int64{int64(cur)}, 1).ToDevice(dev)
			eps, _ := p.Model.guided(z, tt, ctx, empty, conds, g, false)
			z = s.DDIMStep(z, eps, cur, prev, 0, nil)
			sc.Keep(z)
			sc.Close()
		}
	})
	return z, err
}

// prompts encodes the texts and as many empty prompts (guidance's
// unconditional input), panicking with *torch.Error under op.
func (p *Pipeline) prompts(op string, texts []string) (ctx, empty *torch.Tensor) {
	ctx, err := p.Text.Encode(texts)
	if err == nil {
		empty, err = p.Text.Encode(make([]string, len(texts)))
	}
	if err != nil {
		panic(&torch.Error{Op: op, Msg: err.Error()})
	}
	return ctx, empty
}
