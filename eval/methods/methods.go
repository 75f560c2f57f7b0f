// Package methods holds the eval methods that load trained networks: ddgi
// (2D and 3D) and its ablations, the ControlNet baseline of Table 1, and
// the projection reference. It sits between face (the product API) and
// eval (the bench and its scores) so that neither imports the other's
// evaluation-only code.
package methods

import (
	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/eval"
	"ddgi/face"
	"ddgi/gan/stylegan2"
	"ddgi/inversion"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/torch"
)

// Config is what every method here loads from and runs with (the flags of
// `ddgi eval`).
type Config struct {
	// Weights is the model-set folder.
	Weights string
	Device  torch.Device
	// Step is the ddgi methods' inference step t (-1: T−1; see
	// face.Options.Step).
	Step int
	// Cache, when set, is a folder where the baseline keeps its samples
	// (content-addressed like the I^d_0 cache: weights, sampler settings,
	// prompt, condition, seed), so a rerun with other metric nets or more
	// methods samples only pairs it has not seen. Cached images are 8-bit.
	Cache string
	// Guidance is the classifier-free guidance of the baseline's samples
	// and of ddgi's denoising before Step < T−1.
	Guidance diffusion.Guidance
	// ProjectSteps is the number of Adam steps of the projection reference.
	ProjectSteps int
	// PromptStrength is the ddgi methods' face.Options.PromptStrength
	// (0 or 1: as trained).
	PromptStrength float64
	// Spread is the ddgi methods' face.Options.Spread (0 or 1: as trained).
	Spread float64
	// Variation and VariationFrom are the ddgi methods'
	// face.Options.Variation and VariationFrom (0: none, the default layers).
	Variation     float64
	VariationFrom int
	// Precision is what the diffusion U-Net computes in for the ddgi and
	// controlnet methods (face.Options.Precision; "": fp32).
	Precision nn.Precision
}

// DefaultConfig is the shipped model set on the CPU at the paper's
// settings.
func DefaultConfig() Config {
	return Config{Weights: "weights", Device: torch.CPU, Step: -1, Guidance: face.SampleGuidance, ProjectSteps: 200}
}

// Register adds every method of this package to r; each loads its
// networks with c when it is first used.
func Register(r *eval.Registry, c Config) {
	for _, g := range []struct {
		name string
		gan  kinds.GANArch
	}{{"ddgi-2d", kinds.StyleGAN2}, {"ddgi-3d", kinds.EG3D}} {
		r.Register(g.name, func() (eval.Method, error) {
			return &ddgi{name: g.name, gan: g.gan, cfg: c, pipes: map[kinds.Cond]*face.Pipeline{}}, nil
		})
		for _, a := range []inversion.Ablation{inversion.MOnly, inversion.NoAttn, inversion.GTOnly, inversion.D0Only} {
			name := g.name + ":" + string(a)
			r.Register(name, func() (eval.Method, error) {
				return &ddgi{name: name, gan: g.gan, variant: a, cfg: c, pipes: map[kinds.Cond]*face.Pipeline{}}, nil
			})
		}
		art := g.name + ":art"
		r.Register(art, func() (eval.Method, error) {
			return &ddgi{name: art, gan: g.gan, art: true, cfg: c, pipes: map[kinds.Cond]*face.Pipeline{}}, nil
		})
	}
	for _, art := range []bool{false, true} {
		name := map[bool]string{false: "controlnet", true: "controlnet:art"}[art]
		r.Register(name, func() (eval.Method, error) {
			return &baseline{name: name, art: art, cfg: c, encoders: map[kinds.Cond]*encoder.E{}, steps: 20}, nil
		})
	}
	for _, g := range []struct {
		name string
		gan  kinds.GANArch
	}{{"project-2d", kinds.StyleGAN2}, {"project-3d", kinds.EG3D}} {
		r.Register(g.name, func() (eval.Method, error) { return &projection{name: g.name, gan: g.gan, cfg: c}, nil })
	}
}

// benchCameras are the ground-truth cameras of a bench batch [N,25] on
// dev, outside any scope (the caller frees them).
func benchCameras(b *eval.Batch, dev torch.Device) (*torch.Tensor, error) {
	cams := make([][25]float32, len(b.Samples))
	for i, s := range b.Samples {
		cams[i] = s.Camera
	}
	return camerasOn(cams, dev)
}

// sameCamera is cam for each of n pairs, [n,25] on dev, outside any scope
// (the caller frees it): one view of every face of a batch.
func sameCamera(cam [25]float32, n int, dev torch.Device) (*torch.Tensor, error) {
	cams := make([][25]float32, n)
	for i := range cams {
		cams[i] = cam
	}
	return camerasOn(cams, dev)
}

// camerasOn stacks EG3D cameras into [N,25] on dev, outside any scope.
func camerasOn(cams [][25]float32, dev torch.Device) (t *torch.Tensor, err error) {
	err = torch.Try(func() {
		torch.Scoped(func() {
			t = stylegan2.Cameras(cams).ToDevice(dev)
			torch.Persist(t)
		})
	})
	return t, err
}
