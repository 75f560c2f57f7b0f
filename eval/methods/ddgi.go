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
		Variant: string(m.variant), Art: m.art, Guidance: m.cfg.Guidance, PromptStrength: m.cfg.PromptStrength, Spread: m.cfg.Spread})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	m.pipes[c] = p
	return p, nil
}

// Generate inverts each sample's prompt and condition (seed: the bench
// index); a 3D GAN renders from the ground-truth sample's camera (the pose
// is an input there).
func (m *ddgi) Generate(b *eval.Batch) (*torch.Tensor, error) {
	p, err := m.pipeline(b.Cond)
	if err != nil {
		return nil, err
	}
	if b.Size != p.Size() {
		return nil, fmt.Errorf("%s reads %d² conditions, the bench batch is %d²", m.name, p.Size(), b.Size)
	}
	in := face.Batch{Texts: b.Prompts, Seeds: make([]int64, len(b.Index)), Mask: b.Mask, Scribble: b.Scribble}
	for i, ix := range b.Index {
		in.Seeds[i] = int64(ix)
	}
	w, err := p.BatchCodes(in)
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
