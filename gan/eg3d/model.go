package eg3d

import (
	"ddgi/camera"
	"ddgi/data"
	"ddgi/gan/stylegan2"
	"ddgi/nn"
	"ddgi/torch"
)

// Pair is a trainable EG3D-style GAN (it implements gan.Model): G, G_ema
// and the dual, camera-conditioned discriminator.
type Pair struct {
	Cfg           Config
	G, GEMA       *Generator
	D             *stylegan2.Discriminator
	GS, GEMAS, DS *nn.Store
	// Opacity weighs OpacityPenalty in G's loss (0 = off).
	Opacity float64
	// transparency is the penalty of the last Fake call (nil when off).
	transparency *torch.Tensor
}

// NewPair builds G, G_ema (a copy) and D from seed; orbit is the training
// data's camera prior (previews, w̄).
func NewPair(c Config, orbit camera.Orbit, seed uint64) (*Pair, error) {
	p := &Pair{Cfg: c, GS: nn.NewStore(torch.CPU, seed), GEMAS: nn.NewStore(torch.CPU, seed), DS: nn.NewStore(torch.CPU, seed+1)}
	var err error
	if p.G, err = NewGenerator(p.GS.Root(), c); err != nil {
		return nil, err
	}
	p.G.Rng = torch.NewGenerator(seed + 2)
	if p.GEMA, err = NewGenerator(p.GEMAS.Root(), c); err != nil {
		return nil, err
	}
	if err := p.GEMAS.CopyFrom(p.GS, nil); err != nil {
		return nil, err
	}
	p.GEMAS.Freeze("")
	p.G.Orbit, p.GEMA.Orbit = orbit, orbit
	if p.D, err = stylegan2.NewDiscriminator(p.DS.Root(), c.DConfig(), stylegan2.DOpts{InChannels: 6, CDim: CameraDim}); err != nil {
		return nil, err
	}
	return p, nil
}

// Stores returns G, D and G_ema's stores.
func (p *Pair) Stores() (g, d, gEMA *nn.Store) { return p.GS, p.DS, p.GEMAS }

// Config is the saved config.
func (p *Pair) Config() any { return p.Cfg }

// ZDim is the latent width.
func (p *Pair) ZDim() int { return p.Cfg.Backbone.ZDim }

// NumWS is L.
func (p *Pair) NumWS() int { return p.Cfg.NumWS() }

// Map is G's untruncated mapping conditioned on the camera.
func (p *Pair) Map(z, c *torch.Tensor) *torch.Tensor { return p.G.Backbone.Map.Forward(z, c) }

// Fake renders w+ from cameras c: the image and the raw neural rendering.
func (p *Pair) Fake(wplus, c *torch.Tensor) []*torch.Tensor {
	o := p.G.Synthesis(wplus, c, stylegan2.NoiseRandom)
	p.transparency = nil
	if p.Opacity > 0 {
		p.transparency = OpacityPenalty(o.Weight)
	}
	return []*torch.Tensor{o.Image, o.ImageRaw}
}

// OpacityPenalty is the mean transparency 1 − Σw of rendered rays.
// SynthFace has no see-through pixel (its backdrop is opaque too), but the
// renderer composites over black, so without this G draws dark hair as
// holes in the head, which open up when the camera turns.
func OpacityPenalty(weight *torch.Tensor) *torch.Tensor {
	return weight.RSubScalar(1).Clamp(0, 1).MeanAll()
}

// GPenalty is Opacity × the last Fake's OpacityPenalty (gan.Penalized).
func (p *Pair) GPenalty() (*torch.Tensor, string) {
	if p.transparency == nil {
		return nil, ""
	}
	return p.transparency.MulScalar(p.Opacity), "transparency"
}

// DualInput is EG3D's dual discrimination input: the image and the raw
// rendering upsampled to its size, concatenated to 6 channels.
func DualInput(img, raw *torch.Tensor) *torch.Tensor {
	up := torch.Interpolate(raw, img.Size(2), img.Size(3), torch.Bilinear, false)
	return torch.Cat([]*torch.Tensor{img, up}, 1)
}

// Score is D's logit for (image, raw) pairs and cameras.
func (p *Pair) Score(imgs []*torch.Tensor, c *torch.Tensor) *torch.Tensor {
	return p.D.Forward(DualInput(imgs[0], imgs[1]), c)
}

// Real returns real images, their downsampled "raw" copies and cameras.
func (p *Pair) Real(batch []*data.Sample) ([]*torch.Tensor, *torch.Tensor) {
	img := stylegan2.RealImages(batch)
	n := int64(p.Cfg.NeuralRes)
	raw := torch.Interpolate(img, n, n, torch.Area, false)
	return []*torch.Tensor{img, raw}, stylegan2.RealCameras(batch)
}

// Preview renders G_ema's images for latents z from the frontal camera.
func (p *Pair) Preview(z *torch.Tensor) *torch.Tensor {
	c := p.GEMA.Camera(0, 0).Repeat(z.Size(0), 1)
	return p.GEMA.Forward(z, c, 1, stylegan2.NoiseConst).Image
}

// SetRows makes G's noise maps and ray jitter one data-parallel rank's
// rows of the whole batch's (gan.RowSharded; nil: one process).
func (p *Pair) SetRows(r *stylegan2.Rows) { p.G.Rows, p.G.Backbone.Rows = r, r }

// MbstdGroup is D's minibatch-stddev group size (a data-parallel split
// must keep its groups whole).
func (p *Pair) MbstdGroup() int { return p.D.Cfg.MbstdGroup }

// TrackWAvg switches G's running w̄.
func (p *Pair) TrackWAvg(on bool) { p.G.Backbone.Map.Update = on }

// RNGs are G's own random sources (gan.Model): noise maps and ray jitter.
func (p *Pair) RNGs() map[string]*torch.Generator {
	return map[string]*torch.Generator{"g_noise": p.G.Backbone.NoiseRNG(), "g_rays": p.G.Rng}
}

// Finalize recomputes G_ema's w̄ from 10k mapping samples.
func (p *Pair) Finalize() { p.GEMA.ComputeMeanLatent(max(p.Cfg.Backbone.MeanLatentN, 10000), 12345) }

// Save writes the generator with its config; half stores fp16.
func (g *Generator) Save(path string, half bool) error {
	return g.Store.Save(path, nn.SaveOptions{Config: g.Cfg, Half: half, Metadata: map[string]string{"arch": "eg3d"}})
}

// Load builds a generator from a file written by Save (or a run's
// G_ema.safetensors), parameters frozen; orbit is the camera prior of the
// data it learnt from (synthface.DefaultOrbit for ddgi's models).
func Load(path string, dev torch.Device, orbit camera.Orbit) (*Generator, error) {
	g, err := nn.LoadConfigured(path, dev, NewGenerator)
	if err != nil {
		return nil, err
	}
	g.Orbit = orbit
	return g, nil
}
