package stylegan2

import (
	"encoding/json"
	"fmt"

	"ddgi/data"
	"ddgi/internal/imageio"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

// Pair is a trainable StyleGAN2: G, its EMA copy and D, each in its own
// store (it implements gan.Model).
type Pair struct {
	Cfg              Config
	G, GEMA          *Generator
	D                *Discriminator
	GS, GEMAS, DS    *nn.Store
	previewNoiseSeed uint64
}

// NewPair builds G, G_ema (a copy of G) and D from seed.
func NewPair(c Config, seed uint64) (*Pair, error) {
	p := &Pair{Cfg: c, GS: nn.NewStore(torch.CPU, seed), GEMAS: nn.NewStore(torch.CPU, seed), DS: nn.NewStore(torch.CPU, seed+1)}
	var err error
	if p.G, err = NewGenerator(p.GS.Root(), c); err != nil {
		return nil, err
	}
	if p.GEMA, err = NewGenerator(p.GEMAS.Root(), c); err != nil {
		return nil, err
	}
	if err := p.GEMAS.CopyFrom(p.GS, nil); err != nil {
		return nil, err
	}
	p.GEMAS.Freeze("")
	if p.D, err = NewDiscriminator(p.DS.Root(), c, DOpts{InChannels: c.ImgChannels}); err != nil {
		return nil, err
	}
	return p, nil
}

// Stores returns G, D and G_ema's stores.
func (p *Pair) Stores() (g, d, gEMA *nn.Store) { return p.GS, p.DS, p.GEMAS }

// Config is the saved config.
func (p *Pair) Config() any { return p.Cfg }

// ZDim is the latent width.
func (p *Pair) ZDim() int { return p.Cfg.ZDim }

// NumWS is L.
func (p *Pair) NumWS() int { return p.Cfg.NumWS() }

// Map is G's untruncated mapping.
func (p *Pair) Map(z, c *torch.Tensor) *torch.Tensor { return p.G.Map.Forward(z, c) }

// Fake renders w+ with G and random noise.
func (p *Pair) Fake(wplus, _ *torch.Tensor) []*torch.Tensor {
	return []*torch.Tensor{p.G.Synthesis(wplus, NoiseRandom)}
}

// Score is D's logit.
func (p *Pair) Score(imgs []*torch.Tensor, _ *torch.Tensor) *torch.Tensor {
	return p.D.Forward(imgs[0], nil)
}

// Real converts samples to a [B,3,res,res] batch in [-1,1].
func (p *Pair) Real(batch []*data.Sample) ([]*torch.Tensor, *torch.Tensor) {
	return []*torch.Tensor{RealImages(batch)}, nil
}

// RealImages stacks sample images into [B,3,S,S] in [-1,1].
func RealImages(batch []*data.Sample) *torch.Tensor {
	ts := make([]*torch.Tensor, len(batch))
	for i, s := range batch {
		ts[i] = imageio.ToTensor(s.Image, s.Size, s.Size, torch.CPU)
	}
	return torch.Cat(ts, 0)
}

// RealCameras stacks the samples' EG3D cameras into [B,25].
func RealCameras(batch []*data.Sample) *torch.Tensor {
	cams := make([][25]float32, len(batch))
	for i, s := range batch {
		cams[i] = s.Camera
	}
	return Cameras(cams)
}

// Cameras stacks EG3D cameras into [B,25].
func Cameras(cams [][25]float32) *torch.Tensor {
	v := make([]float32, 0, 25*len(cams))
	for _, c := range cams {
		v = append(v, c[:]...)
	}
	return torch.FromFloat32(v, int64(len(cams)), 25)
}

// Preview is G_ema with constant noise, no truncation.
func (p *Pair) Preview(z *torch.Tensor) *torch.Tensor {
	return p.GEMA.Forward(z, nil, 1, NoiseConst)
}

// SetRows makes G's noise maps one data-parallel rank's rows of the
// whole batch's (gan.RowSharded; nil: one process).
func (p *Pair) SetRows(r *Rows) { p.G.Rows = r }

// MbstdGroup is D's minibatch-stddev group size (a data-parallel split
// must keep its groups whole).
func (p *Pair) MbstdGroup() int { return p.D.Cfg.MbstdGroup }

// TrackWAvg switches G's running w̄.
func (p *Pair) TrackWAvg(on bool) { p.G.Map.Update = on }

// RNGs are G's own random sources (gan.Model): its noise maps.
func (p *Pair) RNGs() map[string]*torch.Generator {
	return map[string]*torch.Generator{"g_noise": p.G.NoiseRNG()}
}

// Finalize recomputes G_ema's w̄ from MeanLatentN mapping samples.
func (p *Pair) Finalize() { p.GEMA.ComputeMeanLatent(max(p.Cfg.MeanLatentN, 10000), 12345, nil) }

// Save writes a generator (its config in the metadata); half stores fp16.
func (g *Generator) Save(path string, half bool) error {
	return g.Store.Save(path, nn.SaveOptions{Config: g.Cfg, Half: half, Metadata: map[string]string{"arch": "stylegan2"}})
}

// ReadConfig reads the "config" metadata of a ddgi GAN safetensors file
// into v.
func ReadConfig(path string, v any) (*safetensors.File, error) {
	f, err := safetensors.Load(path)
	if err != nil {
		return nil, err
	}
	raw, ok := f.Metadata["config"]
	if !ok {
		return nil, fmt.Errorf("%s: no config in metadata", path)
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return nil, fmt.Errorf("%s: config: %w", path, err)
	}
	return f, nil
}

// Load builds a generator from a file written by Save (or a run's
// G_ema.safetensors) on dev, parameters frozen.
func Load(path string, dev torch.Device) (*Generator, error) {
	return nn.LoadConfigured(path, dev, NewGenerator)
}
