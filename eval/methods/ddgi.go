package methods

import (
	"fmt"

	"ddgi/eval"
	"ddgi/face"
	"ddgi/inversion"
	"ddgi/kinds"
	"ddgi/torch"
)

// ddgi runs the full pipeline (or an ablation's weights) on bench batches.
type ddgi struct {
	name    string
	gan     kinds.GANArch
	variant inversion.Ablation
	art     bool // the style-transfer models (face.Options.Art)
	cfg     Config
	pipes   map[kinds.Cond]*face.Pipeline
}

func (m *ddgi) Name() string { return m.name }

func (m *ddgi) pipeline(c kinds.Cond) (*face.Pipeline, error) {
	if p, ok := m.pipes[c]; ok {
		return p, nil
	}
	p, err := face.Load(face.Options{Weights: m.cfg.Weights, GAN: m.gan, Cond: c, Device: m.cfg.Device, Step: m.cfg.Step,
		Variant: string(m.variant), Art: m.art, Guidance: m.cfg.Guidance, PromptStrength: m.cfg.PromptStrength, Spread: m.cfg.Spread,
		Variation: m.cfg.Variation, VariationFrom: m.cfg.VariationFrom, Precision: m.cfg.Precision})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	m.pipes[c] = p
	return p, nil
}

// codes inverts each sample's prompt and condition (seed: the bench
// index) with the condition's pipeline.
func (m *ddgi) codes(b *eval.Batch) (*face.Pipeline, *torch.Tensor, error) {
	p, err := m.pipeline(b.Cond)
	if err != nil {
		return nil, nil, err
	}
	if b.Size != p.Size() {
		return nil, nil, fmt.Errorf("%s reads %d² conditions, the bench batch is %d²", m.name, p.Size(), b.Size)
	}
	in := face.Batch{Texts: b.Prompts, Seeds: make([]int64, len(b.Index)), Mask: b.Mask, Scribble: b.Scribble}
	for i := range b.Index {
		in.Seeds[i] = b.Seed(i)
	}
	w, err := p.BatchCodes(in)
	return p, w, err
}

// Generate renders each pair's code; a 3D GAN renders from the
// ground-truth sample's camera (the pose is an input there).
func (m *ddgi) Generate(b *eval.Batch) (*torch.Tensor, error) {
	p, w, err := m.codes(b)
	if err != nil {
		return nil, err
	}
	defer w.Free()
	var cams *torch.Tensor
	if p.G.Is3D() {
		if cams, err = benchCameras(b, m.cfg.Device); err != nil {
			return nil, err
		}
		defer cams.Free()
	}
	return p.Render(w, cams)
}

// Turns: ddgi-3d's faces can be drawn from other cameras (eval.Turner).
func (m *ddgi) Turns() bool { return m.gan == kinds.EG3D }

// Turn renders each pair's one code from every camera (eval.Turner).
func (m *ddgi) Turn(b *eval.Batch, cams [][25]float32) ([]*torch.Tensor, error) {
	if !m.Turns() {
		return nil, fmt.Errorf("%s draws 2-D faces", m.name)
	}
	p, w, err := m.codes(b)
	if err != nil {
		return nil, err
	}
	defer w.Free()
	outs := make([]*torch.Tensor, 0, len(cams))
	for _, cam := range cams {
		c, rerr := sameCamera(cam, len(b.Index), m.cfg.Device)
		var img *torch.Tensor
		if rerr == nil {
			img, rerr = p.Render(w, c)
			c.Free()
		}
		if rerr != nil {
			for _, o := range outs {
				o.Free()
			}
			return nil, rerr
		}
		outs = append(outs, img)
	}
	return outs, nil
}
