package methods

import (
	"fmt"
	"path/filepath"

	"ddgi/auxnets"
	"ddgi/eval"
	"ddgi/face"
	"ddgi/imagebatch"
	"ddgi/inversion"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
)

// projection is a reference row for Table 1, not a method: it optimises a
// W+ code of the GAN per bench pair to reproduce the ground-truth image
// with M's loss (Eq. 6: L2, LPIPS with F, identity with R, ‖w − w̄‖),
// starting from w̄; 3D renders the ground truth's camera. It reads I^gt, so its scores are the
// best this GAN shows of the bench faces: the ceiling of any encoder into
// it, ddgi included (mIoU, ID, LPIPS).
type projection struct {
	name string
	gan  kinds.GANArch
	cfg  Config
	g    face.GAN
	f    *auxnets.Perceptual
	r    *auxnets.Identity
}

func (p *projection) Name() string { return p.name }
func (p *projection) Sanity() bool { return true }

func (p *projection) load() error {
	if p.g != nil {
		return nil
	}
	o := face.Options{Weights: p.cfg.Weights, GAN: p.gan}
	g, err := face.LoadGAN(p.gan, o.Files()["gan"], p.cfg.Device)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	f, err := auxnets.LoadPerceptual(filepath.Join(p.cfg.Weights, "aux_perceptual.safetensors"), p.cfg.Device)
	if err != nil {
		return fmt.Errorf("%s: perceptual net F: %w", p.name, err)
	}
	r, err := auxnets.LoadIdentity(filepath.Join(p.cfg.Weights, "aux_identity.safetensors"), p.cfg.Device)
	if err != nil {
		return fmt.Errorf("%s: identity net R: %w", p.name, err)
	}
	p.g, p.f, p.r = g, f, r
	return nil
}

func (p *projection) Generate(b *eval.Batch) (*torch.Tensor, error) {
	if err := p.load(); err != nil {
		return nil, err
	}
	if int64(b.Size) != p.g.Resolution() {
		return nil, fmt.Errorf("%s renders %d², the bench batch is %d²", p.name, p.g.Resolution(), b.Size)
	}
	var cams *torch.Tensor
	if p.g.Is3D() {
		var err error
		if cams, err = benchCameras(b, p.cfg.Device); err != nil {
			return nil, err
		}
		defer cams.Free()
	}
	var out *torch.Tensor
	err := torch.Try(func() { out = p.project(imagebatch.SampleImages(b.Samples).ToDevice(p.cfg.Device), cams) })
	return out, err
}

// project fits w+ [N,L,D] to target [N,3,S,S] and renders it.
func (p *projection) project(target, cams *torch.Tensor) *torch.Tensor {
	n, l, d := target.Size(0), p.g.Styles(), p.g.StyleDim()
	wavg := p.g.MeanLatent().Reshape(1, 1, d)
	w := wavg.Expand(n, l, d).Clone().Detach().SetRequiresGrad(true)
	opt := optim.NewAdam(optim.DefaultAdam(0.02))
	defer opt.Free()
	for i := 0; i < p.cfg.ProjectSteps; i++ {
		torch.Scoped(func() {
			out := p.g.Synthesize(w, cams)
			inversion.MappingLoss(inversion.DefaultWeights(), target, out, w, wavg, p.f, p.r).Total.Backward()
			opt.Update([]nn.Named{{Name: "w", T: w}})
		})
	}
	var out *torch.Tensor
	torch.NoGrad(func() { out = p.g.Synthesize(w, cams) })
	return out
}
