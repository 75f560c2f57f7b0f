package methods

import (
	"fmt"

	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/eval"
	"ddgi/face"
	"ddgi/imagebatch"
	"ddgi/inversion"
	"ddgi/kinds"
	"ddgi/torch"
)

// baseline is the ControlNet baseline of Table 1: the diffusion model's own
// 20-step DDIM sample (I^d_0).
type baseline struct {
	name     string
	art      bool // the U-Net fine-tuned on artworks
	cfg      Config
	encoders map[kinds.Cond]*encoder.E
	steps    int
}

func (b *baseline) Name() string { return b.name }

func (b *baseline) Generate(batch *eval.Batch) (*torch.Tensor, error) {
	e, ok := b.encoders[batch.Cond]
	if !ok {
		enc, err := face.LoadEncoder(face.Options{Weights: b.cfg.Weights, Cond: batch.Cond, Device: b.cfg.Device, Art: b.art, Guidance: b.cfg.Guidance, Precision: b.cfg.Precision})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		e = enc
		b.encoders[batch.Cond] = e
	}
	keys := make([]string, len(batch.Index))
	var cache *inversion.D0Cache
	if b.cfg.Cache != "" {
		cache = &inversion.D0Cache{Dir: b.cfg.Cache}
		for i := range batch.Index {
			s := batch.Samples[i]
			condBytes := s.Mask
			if batch.Cond == kinds.Scribble {
				condBytes = s.Scribble
			}
			keys[i] = inversion.Key(fmt.Sprintf("%s|baseline%d", e.ID(), b.steps), batch.Cond, batch.Prompts[i], condBytes, b.steps, b.cfg.Guidance.Text, batch.Seed(i), batch.Size)
		}
	}
	imgs, err := cache.Fill(keys, batch.Size, baselineBatch, b.cfg.Device, func(idx []int) (*torch.Tensor, error) {
		return b.sample(e.Pipeline, batch, idx)
	})
	if err != nil {
		return nil, err
	}
	var out *torch.Tensor
	err = torch.Try(func() { out = torch.Cat(imgs, 0) })
	return out, err
}

// sample draws the pairs idx of a batch, each from its own seed (the bench
// index), in one batched call.
func (b *baseline) sample(e *diffusion.Pipeline, batch *eval.Batch, idx []int) (*torch.Tensor, error) {
	prompts := make([]string, len(idx))
	seeds := make([]uint64, len(idx))
	sel := make([]int64, len(idx))
	for j, i := range idx {
		prompts[j], seeds[j], sel[j] = batch.Prompts[i], uint64(batch.Seed(i)), int64(i)
	}
	var cond diffusion.Conditions
	err := torch.Try(func() {
		at := torch.FromInt64(sel, int64(len(sel))).ToDevice(batch.Mask.Device())
		if batch.Cond == kinds.Mask {
			cond.Mask = imagebatch.OneHot(batch.Mask.IndexSelect(0, at))
		} else {
			cond.Scribble = batch.Scribble.IndexSelect(0, at)
		}
	})
	if err != nil {
		return nil, err
	}
	return e.SampleEach(prompts, cond, b.steps, b.cfg.Guidance, seeds)
}

// baselineBatch bounds the pairs sampled together by the baseline.
const baselineBatch = 16
