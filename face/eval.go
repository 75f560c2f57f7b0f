package face

import (
	"fmt"

	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/eval"
	"ddgi/gan/eg3d"
	"ddgi/imagebatch"
	"ddgi/inversion"
	"ddgi/torch"
)

// EvalWeights is the weights folder the registered eval methods load from
// (`ddgi eval --weights` sets it).
var EvalWeights = "weights"

// EvalDevice is where they run.
var EvalDevice = torch.CPU

// EvalStep is the inference step t of the ddgi methods (-1: T−1; see
// Options.Step; `ddgi eval --step` sets it).
var EvalStep = -1

// method runs the full pipeline (or an ablation's weights) on bench batches.
type method struct {
	name, gan string
	variant   inversion.Ablation
	art       bool // the style-transfer models (Options.Art)
	pipes     map[eval.Cond]*Pipeline
}

func (m *method) Name() string { return m.name }

func (m *method) pipeline(c eval.Cond) (*Pipeline, error) {
	if p, ok := m.pipes[c]; ok {
		return p, nil
	}
	p, err := Load(Options{Weights: EvalWeights, GAN: m.gan, Cond: string(c), Device: EvalDevice, Step: EvalStep, Variant: string(m.variant), Art: m.art})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	m.pipes[c] = p
	return p, nil
}

// Generate inverts each sample's prompt and condition; a 3D GAN renders
// from the ground-truth sample's camera (the pose is an input there).
func (m *method) Generate(b *eval.Batch) (*torch.Tensor, error) {
	p, err := m.pipeline(b.Cond)
	if err != nil {
		return nil, err
	}
	if b.Size != p.Size() {
		return nil, fmt.Errorf("%s reads %d² conditions, the bench batch is %d²", m.name, p.Size(), b.Size)
	}
	reqs, err := requests(b)
	if err != nil {
		return nil, err
	}
	w, err := p.Codes(reqs)
	if err != nil {
		return nil, err
	}
	defer w.Free()
	var cams *torch.Tensor
	if p.G.Is3D() {
		if cams, err = benchCameras(b); err != nil {
			return nil, err
		}
		defer cams.Free()
	}
	return p.Render(w, cams)
}

// benchCameras are the ground-truth cameras of a bench batch [N,25] on
// EvalDevice, outside any scope (the caller frees them).
func benchCameras(b *eval.Batch) (cams *torch.Tensor, err error) {
	flat := make([]float32, 0, eg3d.CameraDim*len(b.Samples))
	for _, s := range b.Samples {
		flat = append(flat, s.Camera[:]...)
	}
	err = torch.Try(func() {
		cams = torch.FromFloat32(flat, int64(len(b.Samples)), eg3d.CameraDim).ToDevice(EvalDevice)
		torch.Persist(cams)
	})
	return cams, err
}

// requests turns a bench batch into generation requests (seed: bench index).
func requests(b *eval.Batch) ([]Request, error) {
	reqs := make([]Request, len(b.Prompts))
	err := torch.Try(func() {
		n := int64(b.Size * b.Size)
		var masks []int64
		var strokes []float32
		if b.Cond == eval.CondMask {
			masks = b.Mask.Int64s()
		} else {
			strokes = b.Scribble.Float32s()
		}
		for i := range reqs {
			reqs[i] = Request{Text: b.Prompts[i], Seed: int64(b.Index[i])}
			if masks != nil {
				m := make([]uint8, n)
				for j := range m {
					m[j] = uint8(masks[int64(i)*n+int64(j)])
				}
				reqs[i].Mask = m
			} else {
				s := make([]uint8, n)
				for j := range s {
					if strokes[int64(i)*n+int64(j)] > 0.5 {
						s[j] = 255
					}
				}
				reqs[i].Scribble = s
			}
		}
	})
	return reqs, err
}

// baseline is the ControlNet baseline of Table 1: the diffusion model's own
// 20-step DDIM sample (I^d_0).
type baseline struct {
	name     string
	art      bool // the U-Net fine-tuned on artworks
	encoders map[eval.Cond]*encoder.E
	steps    int
}

// EvalCache, when set, is a folder where the baseline keeps its samples
// (content-addressed like the I^d_0 cache: weights, sampler settings,
// prompt, condition, seed), so a rerun with other metric nets or more
// methods samples only pairs it has not seen. Cached images are 8-bit.
var EvalCache string

func (b *baseline) Name() string { return b.name }

func (b *baseline) Generate(batch *eval.Batch) (*torch.Tensor, error) {
	e, ok := b.encoders[batch.Cond]
	if !ok {
		enc, err := LoadEncoder(Options{Weights: EvalWeights, Cond: string(batch.Cond), Device: EvalDevice, Art: b.art})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		e = enc
		b.encoders[batch.Cond] = e
	}
	keys := make([]string, len(batch.Index))
	var cache *inversion.D0Cache
	if EvalCache != "" {
		cache = &inversion.D0Cache{Dir: EvalCache}
		for i, ix := range batch.Index {
			s := batch.Samples[i]
			condBytes := s.Mask
			if batch.Cond == eval.CondScribble {
				condBytes = s.Scribble
			}
			keys[i] = inversion.Key(fmt.Sprintf("%s|baseline%d", e.ID(), b.steps), string(batch.Cond), batch.Prompts[i], condBytes, b.steps, SampleGuidance.Text, int64(ix), batch.Size)
		}
	}
	imgs, err := cache.Fill(keys, batch.Size, baselineBatch, EvalDevice, func(idx []int) (*torch.Tensor, error) {
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
		prompts[j], seeds[j], sel[j] = batch.Prompts[i], uint64(batch.Index[i]), int64(i)
	}
	var cond diffusion.Conditions
	err := torch.Try(func() {
		at := torch.FromInt64(sel, int64(len(sel))).ToDevice(batch.Mask.Device())
		if batch.Cond == eval.CondMask {
			cond.Mask = imagebatch.OneHot(batch.Mask.IndexSelect(0, at))
		} else {
			cond.Scribble = batch.Scribble.IndexSelect(0, at)
		}
	})
	if err != nil {
		return nil, err
	}
	return e.SampleEach(prompts, cond, b.steps, SampleGuidance, seeds)
}

// baselineBatch bounds the pairs sampled together by the baseline.
const baselineBatch = 16

func init() {
	for _, g := range []struct{ name, gan string }{{"ddgi-2d", "stylegan2"}, {"ddgi-3d", "eg3d"}} {
		g := g
		eval.Register(g.name, func() (eval.Method, error) {
			return &method{name: g.name, gan: g.gan, pipes: map[eval.Cond]*Pipeline{}}, nil
		})
		for _, a := range []inversion.Ablation{inversion.MOnly, inversion.NoAttn, inversion.GTOnly, inversion.D0Only} {
			a := a
			name := g.name + ":" + string(a)
			eval.Register(name, func() (eval.Method, error) {
				return &method{name: name, gan: g.gan, variant: a, pipes: map[eval.Cond]*Pipeline{}}, nil
			})
		}
		art := g.name + ":art"
		eval.Register(art, func() (eval.Method, error) {
			return &method{name: art, gan: g.gan, art: true, pipes: map[eval.Cond]*Pipeline{}}, nil
		})
	}
	for _, art := range []bool{false, true} {
		name := map[bool]string{false: "controlnet", true: "controlnet:art"}[art]
		eval.Register(name, func() (eval.Method, error) {
			return &baseline{name: name, art: art, encoders: map[eval.Cond]*encoder.E{}, steps: 20}, nil
		})
	}
}
