package text

import (
	"math"

	"ddgi/nn"
	"ddgi/torch"
)

// ImageEncoder is the small conv tower the text encoder is trained against:
// stride-2 conv + residual conv per level (GroupNorm, SiLU), mean pool.
type ImageEncoder struct {
	down, res   []*nn.Conv2d
	nDown, nRes []*nn.GroupNorm
}

// NewImageEncoder builds levels of the given widths; each halves the side.
func NewImageEncoder(p nn.Path, widths []int64) *ImageEncoder {
	e := &ImageEncoder{}
	in := int64(3)
	for i, w := range widths {
		l := p.Subf("%d", i)
		g := min(w/4, 8)
		e.down = append(e.down, nn.NewConv2d(l.Sub("down"), in, w, 3, nn.Conv2dOpts{Stride: 2, Padding: 1}))
		e.nDown = append(e.nDown, nn.NewGroupNorm(l.Sub("norm1"), g, w))
		e.res = append(e.res, nn.NewConv2d(l.Sub("conv"), w, w, 3, nn.Conv2dOpts{Padding: 1}))
		e.nRes = append(e.nRes, nn.NewGroupNorm(l.Sub("norm2"), g, w))
		in = w
	}
	return e
}

// Forward maps images [B,3,H,W] in [-1,1] to features [B,widths[-1]].
func (e *ImageEncoder) Forward(x *torch.Tensor) *torch.Tensor {
	for i := range e.down {
		x = e.nDown[i].Forward(e.down[i].Forward(x)).Silu()
		x = x.Add(e.nRes[i].Forward(e.res[i].Forward(x)).Silu())
	}
	return x.Mean([]int64{2, 3}, false)
}

// CLIP pairs the text encoder with the image tower through linear
// projections into a shared space and a learnable temperature.
// Keys: text.*, image.*, text_projection.weight, visual_projection.weight,
// logit_scale.
type CLIP struct {
	Text             *Encoder
	Image            *ImageEncoder
	TextProj, ImProj *nn.Linear
	LogitScale       *torch.Tensor // log of the inverse temperature
}

// CLIPConfig is what a contrastive training run builds.
type CLIPConfig struct {
	Encoder     EncoderConfig `json:"encoder"`
	ImageWidths []int64       `json:"image_widths"`
	Embed       int64         `json:"embed"`
}

// NewCLIP builds both towers under p.
func NewCLIP(p nn.Path, c CLIPConfig) *CLIP {
	last := c.ImageWidths[len(c.ImageWidths)-1]
	return &CLIP{
		Text:       NewEncoder(p.Sub("text"), c.Encoder),
		Image:      NewImageEncoder(p.Sub("image"), c.ImageWidths),
		TextProj:   nn.NewLinear(p.Sub("text_projection"), c.Encoder.Dim, c.Embed, nn.LinearOpts{NoBias: true}),
		ImProj:     nn.NewLinear(p.Sub("visual_projection"), last, c.Embed, nn.LinearOpts{NoBias: true}),
		LogitScale: p.Param("logit_scale", nil, nn.Constant(math.Log(1/0.07))),
	}
}

// Embed returns unit-norm text [B,E] and image [B,E] embeddings.
func (m *CLIP) Embed(ids, images *torch.Tensor) (txt, img *torch.Tensor) {
	return m.EmbedText(ids), m.EmbedImage(images)
}

// EmbedText is the projected, normalised pooled text embedding.
func (m *CLIP) EmbedText(ids *torch.Tensor) *torch.Tensor {
	ids = TrimPadding(ids, m.Text.EOS)
	h := m.Text.Forward(ids)
	return unit(m.TextProj.Forward(m.Text.Pooled(ids, h)))
}

// EmbedImage is the projected, normalised image embedding.
func (m *CLIP) EmbedImage(images *torch.Tensor) *torch.Tensor {
	return unit(m.ImProj.Forward(m.Image.Forward(images)))
}

func unit(x *torch.Tensor) *torch.Tensor {
	return x.Div(x.Norm(2, []int64{-1}, true).ClampMin(1e-6))
}

// ContrastiveLoss is CLIP's symmetric InfoNCE over a batch of matching pairs:
// logits = exp(s)·txt·imgᵀ, cross-entropy toward the diagonal both ways. The
// scale is clamped at 100 as in CLIP.
func ContrastiveLoss(txt, img, logScale *torch.Tensor) *torch.Tensor {
	n := txt.Size(0)
	logits := txt.Matmul(img.Transpose(0, 1)).Mul(logScale.Clamp(0, math.Log(100)).Exp())
	target := torch.Arange(0, float64(n), 1, torch.Int64, txt.Device())
	a := torch.CrossEntropy(logits, target, nil, -100, 0, torch.ReduceMean)
	b := torch.CrossEntropy(logits.Transpose(0, 1), target, nil, -100, 0, torch.ReduceMean)
	return a.Add(b).MulScalar(0.5)
}

// TrimPadding drops the columns after the latest of the rows' first eos:
// under the causal mask no earlier position sees them, so the kept outputs
// (and the pooled one) are unchanged and training skips the padding's cost.
// A row without eos keeps every column.
func TrimPadding(ids *torch.Tensor, eos int64) *torch.Tensor {
	v := ids.Int64s()
	l := int(ids.Size(1))
	used := 1
	for r := 0; r < len(v)/l; r++ {
		end := l
		for i, id := range v[r*l : (r+1)*l] {
			if id == eos {
				end = i + 1
				break
			}
		}
		used = max(used, end)
	}
	if used == l {
		return ids
	}
	return ids.Narrow(1, 0, int64(used))
}
