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
	var out *torch.Tensor
	err := p.fitted(b, func(w, cams *torch.Tensor) {
		torch.NoGrad(func() { out = p.g.Synthesize(w, cams) })
		torch.Persist(out)
	})
	return out, err
}

// Turns: project-3d's codes can be drawn from other cameras (eval.Turner):
// the views a perfectly inverted code of this GAN shows, a ceiling for
// ddgi-3d's view consistency.
func (p *projection) Turns() bool { return p.gan == kinds.EG3D }

// Turn renders each pair's fitted code from every camera (eval.Turner).
func (p *projection) Turn(b *eval.Batch, cams [][25]float32) ([]*torch.Tensor, error) {
	if !p.Turns() {
		return nil, fmt.Errorf("%s draws 2-D faces", p.name)
	}
	var outs []*torch.Tensor
	err := p.fitted(b, func(w, _ *torch.Tensor) {
		for _, cam := range cams {
			c, err := sameCamera(cam, len(b.Index), p.cfg.Device)
			if err != nil {
				panic(err) // a *torch.Error: fitted's Try returns it
			}
			var out *torch.Tensor
			torch.NoGrad(func() { out = p.g.Synthesize(w, c) })
			torch.Persist(out)
			c.Free()
			outs = append(outs, out)
		}
	})
	return outs, err
}

// fitted fits each pair's code to its ground truth (3D: at the ground
// truth's camera) and hands it, with those cameras, to use.
func (p *projection) fitted(b *eval.Batch, use func(w, cams *torch.Tensor)) error {
	if err := p.load(); err != nil {
		return err
	}
	if int64(b.Size) != p.g.Resolution() {
		return fmt.Errorf("%s renders %d², the bench batch is %d²", p.name, p.g.Resolution(), b.Size)
	}
	var cams *torch.Tensor
	if p.g.Is3D() {
		var err error
		if cams, err = benchCameras(b, p.cfg.Device); err != nil {
			return err
		}
		defer cams.Free()
	}
	return torch.Try(func() {
		torch.Scoped(func() { use(p.project(imagebatch.SampleImages(b.Samples).ToDevice(p.cfg.Device), cams), cams) })
	})
}

// project fits w+ [N,L,D] to target [N,3,S,S] at cams (nil: 2D).
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
	return w.Detach()
}
