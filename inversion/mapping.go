// Package inversion is the paper's method (Sec. 3): the mapping network M
// turns the diffusion encoder's middle-block features h_t into a GAN latent
// code w^m_t (Eq. 2); the attention-based style modulation network T
// (AbSMNet) turns decoder features f_t and cross-attention a_t into scale and
// shift codes w^γ_t, w^β_t (Eq. 3) that modulate w^m_t (Eq. 4); the GAN G
// renders the result (Eq. 5). Training is two-staged (Eqs. 6, 7) across
// denoising steps t.
package inversion

import (
	"fmt"

	"ddgi/nn"
	"ddgi/torch"
)

// Map2Style reduces a feature map to L style vectors: stride-2 3×3 convs with
// LeakyReLU down to 1×1, then one linear layer (pSp's map2style block).
type Map2Style struct {
	Convs  []*nn.Conv2d
	Linear *nn.Linear
	Styles int64
	Dim    int64
}

// Map2StyleOpts configure the final linear layer's start: ZeroInit with
// Bias b makes every output start at b (T's scale head starts at 1).
type Map2StyleOpts struct {
	ZeroInit bool
	Bias     float64
}

// NewMap2Style builds a head for [B,in,size,size] inputs with hidden width
// mid, producing [B,styles,dim].
func NewMap2Style(p nn.Path, in, mid, size, styles, dim int64, o Map2StyleOpts) *Map2Style {
	m := &Map2Style{Styles: styles, Dim: dim}
	c := in
	for i := 0; size > 1; i++ {
		m.Convs = append(m.Convs, nn.NewConv2d(p.Subf("convs.%d", i), c, mid, 3, nn.Conv2dOpts{Stride: 2, Padding: 1}))
		c = mid
		size = (size + 1) / 2
	}
	m.Linear = nn.NewLinear(p.Sub("linear"), c, styles*dim, nn.LinearOpts{ZeroInit: o.ZeroInit, BiasInit: o.Bias})
	return m
}

// Forward maps [B,C,h,w] to [B,styles,dim].
func (m *Map2Style) Forward(x *torch.Tensor) *torch.Tensor {
	for _, c := range m.Convs {
		x = c.Forward(x).LeakyRelu(0.2)
	}
	x = torch.AdaptiveAvgPool2d(x, 1, 1).Flatten(1, 3)
	return m.Linear.Forward(x).Reshape(-1, m.Styles, m.Dim)
}

// MappingNetwork is M: h_t ↦ w^m_t.
type MappingNetwork struct {
	Head *Map2Style
	// WAvg is the GAN's mean latent w̄ [dim]; M predicts an offset from it,
	// so training starts from the average face (as pSp does).
	WAvg *torch.Tensor
	// Text is the text path (nil in the paper's M; see TextOffset).
	Text *TextPath
}

// TextPath maps the pooled prompt embedding to a W+ offset: a two-layer
// MLP whose output layer starts at zero, so adding it to a trained M
// changes nothing until it trains.
type TextPath struct {
	Hidden, Out *nn.Linear
	Styles, Dim int64
}

// TextOffset is ddgi's addition to Eq. 2: Δw = P(pooled text), which M
// adds to M(h_t). One pass on z_T gives h_t mostly from noise, in which the
// prompt's words are faint; the pooled embedding carries them whole.
func (t *TextPath) TextOffset(pooled *torch.Tensor) *torch.Tensor {
	return t.Out.Forward(t.Hidden.Forward(pooled).LeakyRelu(0.2)).Reshape(-1, t.Styles, t.Dim)
}

// NewMappingNetwork builds M for middle-block features [B,hChannels,hSize,hSize].
func NewMappingNetwork(p nn.Path, c Config) *MappingNetwork {
	m := &MappingNetwork{
		Head: NewMap2Style(p.Sub("map2style"), c.HChannels, c.Width, c.HSize, c.Styles, c.StyleDim, Map2StyleOpts{}),
		WAvg: p.Buffer("w_avg", []int64{c.StyleDim}, nn.Constant(0)),
	}
	if c.TextDim > 0 {
		tp := p.Sub("text")
		m.Text = &TextPath{
			Hidden: nn.NewLinear(tp.Sub("0"), c.TextDim, c.Width, nn.LinearOpts{}),
			Out:    nn.NewLinear(tp.Sub("1"), c.Width, c.Styles*c.StyleDim, nn.LinearOpts{ZeroInit: true}),
			Styles: c.Styles, Dim: c.StyleDim,
		}
	}
	return m
}

// MappedCode is Eq. 2: w^m_t = M(h_t), returned as [B,L,dim].
func (m *MappingNetwork) MappedCode(h *torch.Tensor) *torch.Tensor {
	return m.Head.Forward(h).Add(m.WAvg)
}

// Code is w^m_t: Eq. 2, plus the text path's offset when M has one.
func (m *MappingNetwork) Code(h *torch.Tensor, f Features) *torch.Tensor {
	return m.GuidedCode(h, f, 1)
}

// GuidedCode is Code with the text path's offset pushed further along the
// prompt's direction: Δw = P(e) + (s−1)·(P(e) − P(e_∅)), e the prompt's
// pooled embedding and e_∅ the empty prompt's — classifier-free guidance
// (Ho & Salimans 2022) applied to ddgi's text offset instead of to the
// noise prediction. s = 1 is Code; s > 1 needs f.PooledEmpty.
func (m *MappingNetwork) GuidedCode(h *torch.Tensor, f Features, s float64) *torch.Tensor {
	wm := m.MappedCode(h)
	if m.Text == nil {
		return wm
	}
	if f.Pooled == nil {
		panic(&torch.Error{Op: "mapping", Msg: "M has a text path but the encoder gave no pooled text embedding"})
	}
	dw := m.Text.TextOffset(f.Pooled)
	if s != 1 {
		if f.PooledEmpty == nil {
			panic(&torch.Error{Op: "mapping", Msg: "a prompt strength other than 1 needs the empty prompt's pooled embedding"})
		}
		dw = dw.Add(dw.Sub(m.Text.TextOffset(f.PooledEmpty)).MulScalar(s - 1))
	}
	return wm.Add(dw)
}

// SetMeanLatent copies the GAN's w̄ into M.
func (m *MappingNetwork) SetMeanLatent(wavg *torch.Tensor) error {
	if got := wavg.Numel(); got != m.WAvg.Numel() {
		return fmt.Errorf("mean latent has %d values, M expects %d", got, m.WAvg.Numel())
	}
	return torch.Try(func() {
		torch.NoGrad(func() { torch.Scoped(func() { m.WAvg.CopyIn(wavg.Reshape(-1).To(torch.Float32)) }) })
	})
}
