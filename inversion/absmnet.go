package inversion

import (
	"fmt"
	"math"

	"ddgi/nn"
	"ddgi/torch"
)

// Features is what T reads from the diffusion encoder at step t: the
// outputs f_t of N decoder blocks and, per block, its K cross-attention
// layers' outputs and probabilities.
type Features struct {
	F      []*torch.Tensor   // F[n]: [B,C_n,h_n,w_n]
	AttOut [][]*torch.Tensor // AttOut[n][k]: cross-attention output [B,h_n·w_n,C_n]
	AttP   [][]*torch.Tensor // AttP[n][k]: attention probabilities [B,heads,h_n·w_n,L_tok]
	// Words is [B,L_tok], 1 for the prompt's word tokens and 0 for
	// begin/end/padding tokens, so Ā averages over words only.
	Words *torch.Tensor
	// Pooled is the prompt's pooled text embedding [B,TextDim], read by M's
	// text path when the config has one.
	Pooled *torch.Tensor
	// PooledEmpty is the empty prompt's [1,TextDim], for a prompt strength
	// other than 1 (Model.PromptStrength); nil otherwise.
	PooledEmpty *torch.Tensor
}

// tensors lists every tensor of f (nil ones included).
func (f Features) tensors() []*torch.Tensor {
	ts := append([]*torch.Tensor{f.Words, f.Pooled, f.PooledEmpty}, f.F...)
	for _, a := range f.AttOut {
		ts = append(ts, a...)
	}
	for _, a := range f.AttP {
		ts = append(ts, a...)
	}
	return ts
}

// AbSMNet is T (Sec. 3.3, Fig. 4).
type AbSMNet struct {
	cfg                      Config
	LocalScale, LocalShift   *convNet
	GlobalScale, GlobalShift *convNet
	AlphaScale, AlphaShift   *torch.Tensor // [AlphaBuckets] α^γ_t, α^β_t
	ScaleHead, ShiftHead     *Map2Style
	// Concurrent computes w^γ and w^β side by side (inference: the two
	// paths share only the refined features).
	Concurrent bool
}

type convNet struct{ a, b *nn.Conv2d }

func newConvNet(p nn.Path, in, width int64) *convNet {
	return &convNet{
		a: nn.NewConv2d(p.Sub("0"), in, width, 3, nn.Conv2dOpts{Padding: 1}),
		b: nn.NewConv2d(p.Sub("1"), width, width, 3, nn.Conv2dOpts{Padding: 1}),
	}
}

func (c *convNet) forward(x *torch.Tensor) *torch.Tensor {
	return c.b.Forward(c.a.Forward(x).LeakyRelu(0.2)).LeakyRelu(0.2)
}

// NewAbSMNet builds T. The scale head starts at w^γ = 1 and the shift head
// at w^β = 0, so T starts as the identity on w^m (Eq. 4).
func NewAbSMNet(p nn.Path, c Config) *AbSMNet {
	var sumC int64
	for _, ch := range c.FChannels {
		sumC += ch
	}
	return &AbSMNet{
		cfg:         c,
		LocalScale:  newConvNet(p.Sub("local_scale"), sumC, c.Width),
		LocalShift:  newConvNet(p.Sub("local_shift"), sumC, c.Width),
		GlobalScale: newConvNet(p.Sub("global_scale"), 1, c.Width),
		GlobalShift: newConvNet(p.Sub("global_shift"), 1, c.Width),
		AlphaScale:  p.Param("alpha_scale", []int64{int64(c.AlphaBuckets)}, nn.Constant(0.5)),
		AlphaShift:  p.Param("alpha_shift", []int64{int64(c.AlphaBuckets)}, nn.Constant(0.5)),
		ScaleHead:   NewMap2Style(p.Sub("scale_map2style"), c.Width, c.Width, c.Size, c.Styles, c.StyleDim, Map2StyleOpts{ZeroInit: true, Bias: 1}),
		ShiftHead:   NewMap2Style(p.Sub("shift_map2style"), c.Width, c.Width, c.Size, c.Styles, c.StyleDim, Map2StyleOpts{ZeroInit: true}),
	}
}

func (t *AbSMNet) upsample(x *torch.Tensor) *torch.Tensor {
	s := t.cfg.Size
	if x.Size(2) == s && x.Size(3) == s {
		return x
	}
	return torch.Interpolate(x, s, s, torch.Bilinear, false)
}

// side is the h of a square map flattened to n = h·w tokens; the attention
// layers of a decoder block run before its upsampler, so their maps are
// smaller than the block's output f_t^n.
func side(n int64) int64 { return int64(math.Round(math.Sqrt(float64(n)))) }

// tokensToMap turns [B,h·w,C] into [B,C,h,w] for a square map.
func tokensToMap(x *torch.Tensor) *torch.Tensor {
	h := side(x.Size(1))
	return x.Transpose(1, 2).Reshape(x.Size(0), x.Size(2), h, h)
}

// maxOver stacks same-shape tensors and max-pools across them.
func maxOver(ts []*torch.Tensor) *torch.Tensor {
	if len(ts) == 1 {
		return ts[0]
	}
	return torch.Stack(ts, 0).Amax([]int64{0}, false)
}

// AttentionMaps computes A_t (per block, [B,C_n,H,W]: cross-attention
// outputs max-pooled over the block's layers, upsampled) and Ā_t ([B,1,H,W]:
// attention probabilities max-pooled over layers and heads, averaged over the
// prompt's words and over blocks, upsampled, scaled to [0,1] per image).
func (t *AbSMNet) AttentionMaps(f Features) (A []*torch.Tensor, Abar *torch.Tensor) {
	var bars []*torch.Tensor
	for n, fn := range f.F {
		if len(f.AttOut[n]) == 0 { // a level without attention (SD1.5's lowest)
			A = append(A, torch.Ones([]int64{1, fn.Size(1), 1, 1}, torch.Float32, fn.Device()))
			continue
		}
		A = append(A, t.upsample(tokensToMap(maxOver(f.AttOut[n]))))
		var ps []*torch.Tensor
		for _, p := range f.AttP[n] {
			ps = append(ps, p.Amax([]int64{1}, false)) // over heads: [B,hw,L]
		}
		p := maxOver(ps)
		words := f.Words.Unsqueeze(1)                                                            // [B,1,L]
		avg := p.Mul(words).Sum([]int64{2}, false).Div(words.Sum([]int64{2}, false).ClampMin(1)) // [B,hw]
		h := side(avg.Size(1))
		bars = append(bars, t.upsample(avg.Reshape(avg.Size(0), 1, h, h)))
	}
	Abar = torch.Stack(bars, 0).Mean([]int64{0}, false)
	peak := Abar.Amax([]int64{1, 2, 3}, true).ClampMin(1e-8)
	return A, Abar.Div(peak)
}

// RefinedFeatures computes F̂_t = F_t ⊙ A_t (concatenated over blocks) and
// F̄̂_t = Ā_t ⊙ F̄_t, where F̄_t averages the upsampled F_t over blocks and
// channels (Sec. 3.3). Without attention (the no-attn ablation) A = Ā = 1.
func (t *AbSMNet) RefinedFeatures(f Features) (local, global *torch.Tensor) {
	var A []*torch.Tensor
	var Abar *torch.Tensor
	if t.cfg.UseAttention {
		A, Abar = t.AttentionMaps(f)
	}
	var hats, means []*torch.Tensor
	for n, fn := range f.F {
		Fn := t.upsample(fn)
		means = append(means, Fn.Mean([]int64{1}, true))
		if A != nil {
			Fn = Fn.Mul(A[n])
		}
		hats = append(hats, Fn)
	}
	local = torch.Cat(hats, 1)
	global = torch.Stack(means, 0).Mean([]int64{0}, false)
	if Abar != nil {
		global = global.Mul(Abar)
	}
	return local, global
}

// alphaAt picks α for each sample's step t from the per-bucket table,
// clamped to [0,1]: [B,1,1,1].
func (t *AbSMNet) alphaAt(alpha, steps *torch.Tensor) *torch.Tensor {
	buckets := steps.To(torch.Int64).MulScalar(float64(t.cfg.AlphaBuckets)).DivScalar(float64(t.cfg.Timesteps)).Floor().Clamp(0, float64(t.cfg.AlphaBuckets-1)).To(torch.Int64)
	return alpha.Clamp(0, 1).IndexSelect(0, buckets).Reshape(-1, 1, 1, 1)
}

// MixLocalGlobal is Eq. 3: F̂^γ = α^γ F̂^{γl} + (1 − α^γ) F̂^{γg} (and the
// same for β with its own α^β).
func MixLocalGlobal(alpha, local, global *torch.Tensor) *torch.Tensor {
	return local.Mul(alpha).Add(global.Mul(alpha.RSubScalar(1)))
}

// ModulationCodes returns w^γ_t and w^β_t ([B,L,dim]) for denoising steps
// steps [B].
func (t *AbSMNet) ModulationCodes(f Features, steps *torch.Tensor) (wGamma, wBeta *torch.Tensor) {
	if len(f.F) != len(t.cfg.FChannels) {
		panic(&torch.Error{Op: "absmnet", Msg: fmt.Sprintf("%d decoder feature maps, config has %d", len(f.F), len(t.cfg.FChannels))})
	}
	local, global := t.RefinedFeatures(f)
	scale := func() {
		fGamma := MixLocalGlobal(t.alphaAt(t.AlphaScale, steps), t.LocalScale.forward(local), t.GlobalScale.forward(global))
		wGamma = t.ScaleHead.Forward(fGamma)
	}
	shift := func() {
		fBeta := MixLocalGlobal(t.alphaAt(t.AlphaShift, steps), t.LocalShift.forward(local), t.GlobalShift.forward(global))
		wBeta = t.ShiftHead.Forward(fBeta)
	}
	if t.Concurrent {
		torch.Concurrently(scale, shift)
	} else {
		scale()
		shift()
	}
	return wGamma, wBeta
}

// ModulateCode is Eq. 4: w_t = w^m_t ⊙ w^γ_t ⊕ w^β_t.
func ModulateCode(wm, wGamma, wBeta *torch.Tensor) *torch.Tensor {
	return wm.Mul(wGamma).Add(wBeta)
}
