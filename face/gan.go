// Package face is ddgi's product API: it loads the trained networks (the
// diffusion encoder E, the mapping network M and AbSMNet T, a 2D or 3D GAN
// G) and turns a prompt plus a mask or scribble into face images.
package face

import (
	"fmt"

	"ddgi/gan/eg3d"
	"ddgi/gan/stylegan2"
	"ddgi/inversion"
	"ddgi/kinds"
	"ddgi/synthface"
	"ddgi/torch"
)

// GAN is a pre-trained generator G as the inversion uses it.
type GAN interface {
	inversion.Generator
	// Styles is L and StyleDim the width of its W+ space.
	Styles() int64
	StyleDim() int64
	// Is3D says whether Synthesize honours the camera.
	Is3D() bool
	// Resolution of the rendered images.
	Resolution() int64
	// Camera is the [1,25] label of the model's orbit camera at (yaw,
	// pitch) degrees (a 2D GAN ignores cameras; it returns the frontal one).
	Camera(yaw, pitch float64) *torch.Tensor
	// SeedCodes maps seeds to w+ [B,L,dim] on dev without truncation: the
	// codes of the faces `ddgi sample gan --seeds … --trunc 1` draws.
	SeedCodes(seeds []int64, dev torch.Device) *torch.Tensor
}

// seedNoise is z [B,zdim] on dev, one generator per seed as `ddgi sample
// gan` draws it.
func seedNoise(seeds []int64, zdim int, dev torch.Device) *torch.Tensor {
	zs := make([]*torch.Tensor, len(seeds))
	for i, s := range seeds {
		zs[i] = torch.Randn(torch.NewGenerator(uint64(s)), []int64{1, int64(zdim)}, torch.Float32, torch.CPU)
	}
	return torch.Cat(zs, 0).ToDevice(dev)
}

// StyleGAN2 adapts the 2D generator.
type StyleGAN2 struct{ G *stylegan2.Generator }

// Synthesize renders w+ without noise inputs: deterministic, and cleaner
// than with noise for the shipped small64 model (its noise strengths are
// still high; see docs/gan.md grids).
func (s StyleGAN2) Synthesize(w, _ *torch.Tensor) *torch.Tensor {
	return s.G.Synthesis(w, stylegan2.NoiseNone)
}
func (s StyleGAN2) MeanLatent() *torch.Tensor { return s.G.WAvg() }
func (s StyleGAN2) Styles() int64             { return int64(s.G.NumWS()) }
func (s StyleGAN2) StyleDim() int64           { return int64(s.G.Cfg.WDim) }
func (s StyleGAN2) Is3D() bool                { return false }
func (s StyleGAN2) Resolution() int64         { return int64(s.G.Cfg.Resolution) }
func (s StyleGAN2) SeedCodes(seeds []int64, dev torch.Device) *torch.Tensor {
	return s.G.Mapping(seedNoise(seeds, s.G.Cfg.ZDim, dev), nil, 1)
}
func (s StyleGAN2) Camera(_, _ float64) *torch.Tensor {
	return eg3d.Camera(synthface.DefaultOrbit, 0, 0)
}

// EG3D adapts the 3D-aware generator; a nil camera is the frontal view.
type EG3D struct{ G *eg3d.Generator }

// Synthesize renders w+ from cameras [B,25] (or frontal).
func (e EG3D) Synthesize(w, cam *torch.Tensor) *torch.Tensor {
	if cam == nil {
		cam = e.G.Camera(0, 0).ToDevice(w.Device()).Expand(w.Size(0), eg3d.CameraDim)
	}
	return e.G.Synthesis(w, cam, stylegan2.NoiseNone).Image
}
func (e EG3D) MeanLatent() *torch.Tensor               { return e.G.WAvg() }
func (e EG3D) Styles() int64                           { return int64(e.G.NumWS()) }
func (e EG3D) StyleDim() int64                         { return int64(e.G.Cfg.Backbone.WDim) }
func (e EG3D) Is3D() bool                              { return true }
func (e EG3D) Resolution() int64                       { return int64(e.G.Cfg.ImgRes) }
func (e EG3D) Camera(yaw, pitch float64) *torch.Tensor { return e.G.Camera(yaw, pitch) }

// SeedCodes maps the seeds conditioned on the frontal camera, as w̄ is.
func (e EG3D) SeedCodes(seeds []int64, dev torch.Device) *torch.Tensor {
	cam := e.G.Camera(0, 0).ToDevice(dev).Expand(int64(len(seeds)), eg3d.CameraDim)
	return e.G.Mapping(seedNoise(seeds, e.G.Cfg.Backbone.ZDim, dev), cam, 1)
}

// GeneratorArch reads a generator file's architecture from its "arch"
// metadata (a run's checkpoints lack it and are
// told apart by their config).
func GeneratorArch(path string) (kinds.GANArch, error) {
	var probe struct {
		PlaneRes int `json:"plane_res"`
	}
	f, err := stylegan2.ReadConfig(path, &probe)
	if err != nil {
		return "", err
	}
	if a, ok := f.Metadata["arch"]; ok {
		return kinds.GANArch(a), nil
	}
	if probe.PlaneRes > 0 {
		return kinds.EG3D, nil
	}
	return kinds.StyleGAN2, nil
}

// LoadGAN loads shipped generator weights of architecture arch, frozen.
func LoadGAN(arch kinds.GANArch, path string, dev torch.Device) (GAN, error) {
	switch arch {
	case kinds.StyleGAN2:
		g, err := stylegan2.Load(path, dev)
		if err != nil {
			return nil, err
		}
		g.Store.Freeze("")
		return StyleGAN2{G: g}, nil
	case kinds.EG3D:
		g, err := eg3d.Load(path, dev, synthface.DefaultOrbit)
		if err != nil {
			return nil, err
		}
		g.Store.Freeze("")
		return EG3D{G: g}, nil
	}
	return nil, fmt.Errorf("unknown GAN %q (want stylegan2 or eg3d)", arch)
}

// LoadRenderer loads only the generator o selects (the model set's, or
// o.Generator): a Pipeline whose Render, View and Views draw saved W+
// codes; Codes needs Load's encoder and inversion.
func LoadRenderer(o Options) (*Pipeline, error) {
	if _, err := ReadManifest(o.Weights); err != nil {
		return nil, err
	}
	g, err := LoadGAN(o.GAN, o.Files()["gan"], o.Device)
	if err != nil {
		return nil, err
	}
	return &Pipeline{Opts: o, G: g}, nil
}
