// Package diffusion is ddgi's latent diffusion model: Stable Diffusion 1.5's
// conditional U-Net at small width, ControlNet branches for semantic masks
// and scribbles, DDPM/DDIM schedulers with classifier-free guidance, and the
// feature taps (h_t, f_t, a_t) that the paper's encoder E hands to the
// inversion networks (paper Sec. 3, Fig. 2).
//
// Tensor names follow diffusers' UNet2DConditionModel and ControlNetModel
// ("down_blocks.0.resnets.1.conv1.weight", "mid_block.attentions.0…",
// "controlnet_down_blocks.3.weight"); see docs/diffusion.md. One difference:
// attention output projections are "to_out.weight", not "to_out.0.weight".
package diffusion

import (
	"fmt"
	"math"

	"ddgi/nn"
	"ddgi/torch"
)

// Config describes the U-Net and its ControlNet branches. It travels in the
// weights' metadata.
type Config struct {
	Name string `json:"name"`
	// Latent tensor the U-Net denoises: [B, LatentChannels, LatentSize, LatentSize].
	LatentChannels int64 `json:"latent_channels"`
	LatentSize     int64 `json:"latent_size"`
	// Channels per resolution level (diffusers' block_out_channels); level
	// i runs at LatentSize/2^i.
	Channels []int64 `json:"channels"`
	// Attention[i]: level i has spatial transformers (CrossAttn*Block2D).
	Attention      []bool `json:"attention"`
	LayersPerBlock int    `json:"layers_per_block"`
	Heads          int64  `json:"heads"`
	// TransformerDepth is the number of BasicTransformerBlocks per
	// spatial transformer.
	TransformerDepth int   `json:"transformer_depth"`
	ContextDim       int64 `json:"context_dim"`
	NormGroups       int64 `json:"norm_groups"`
	// ControlNet condition embedding: channels of its conv stages; each
	// stage after the first halves the resolution, so the condition image
	// is LatentSize·2^(len−1) pixels on a side.
	CondEmbedChannels []int64 `json:"cond_embed_channels"`
	// HintChannels is the width of every ControlNet branch's condition
	// image. 0 keeps ddgi's per-kind inputs (19-class one-hot mask,
	// 1-channel scribble, see CondChannels); lllyasviel's public
	// ControlNets take a 3-channel RGB hint in [0,1] (a colour-coded
	// segmentation map, a white-on-black scribble), so their converted
	// configs say 3.
	HintChannels int64 `json:"hint_channels,omitempty"`
	// HintPalette colours a one-hot mask (class k → HintPalette[k]) when a
	// 3-channel branch is given ddgi's masks; nil is CelebAMaskHQPalette.
	// A segmentation ControlNet trained on another colour list (ADE20K's
	// for lllyasviel's seg models) needs that list here.
	HintPalette [][3]uint8 `json:"hint_palette,omitempty"`
	// Noise schedule and parameterisation (see Schedule).
	Schedule   string  `json:"schedule"` // "linear" or "scaled_linear"
	BetaStart  float64 `json:"beta_start"`
	BetaEnd    float64 `json:"beta_end"`
	TrainSteps int     `json:"train_steps"`
	Prediction string  `json:"prediction"` // "epsilon" or "v_prediction"
	// Spacing and StepsOffset choose the DDIM timestep grid sampling uses
	// (Schedule.SetSpacing). The zero value is ddgi's "trailing" grid, as
	// its own models were trained and shipped; converted SD1.x models say
	// "leading" with offset 1, as their reference samplers step.
	Spacing     string `json:"spacing,omitempty"`
	StepsOffset int    `json:"steps_offset,omitempty"`
	// Latent names the space the U-Net denoises: "vae" (the KL
	// autoencoder's scaled latents) or "patch" (pixel blocks folded into
	// channels, see Patch: the fallback while no autoencoder is trained).
	Latent string `json:"latent"`
}

// Preset returns a named configuration: "tiny" (tests), "small64" (the
// shipped model on 16×16×4 latents of 64² images) or "sd15" (Stable
// Diffusion 1.5's shape, for shape tests only).
func Preset(name string) (Config, error) {
	c := Config{
		Name: name, LatentChannels: 4, LayersPerBlock: 2, TransformerDepth: 1, NormGroups: 32,
		Latent: "vae", Schedule: "scaled_linear", BetaStart: 0.00085, BetaEnd: 0.012, TrainSteps: 1000, Prediction: "epsilon",
	}
	switch name {
	case "tiny":
		c.LatentSize, c.Channels, c.Attention = 8, []int64{16, 32}, []bool{true, true}
		c.LayersPerBlock, c.Heads, c.ContextDim, c.NormGroups = 1, 2, 32, 8
		c.CondEmbedChannels = []int64{8, 16}
	case "small64":
		c.LatentSize, c.Channels, c.Attention = 16, []int64{64, 128, 128}, []bool{true, true, true}
		c.LayersPerBlock, c.Heads, c.ContextDim = 1, 4, 128 // text.EncoderPreset("small64") width
		c.CondEmbedChannels = []int64{16, 32, 64}
	case "sd15":
		c.LatentSize, c.Channels, c.Attention = 64, []int64{320, 640, 1280, 1280}, []bool{true, true, true, false}
		c.Heads, c.ContextDim = 8, 768
		c.CondEmbedChannels = []int64{16, 32, 96, 256}
	default:
		return Config{}, fmt.Errorf("diffusion: unknown preset %q (tiny, small64, sd15)", name)
	}
	return c, nil
}

// ImageSize is the side of the condition image a ControlNet branch reads.
func (c Config) ImageSize() int64 { return c.LatentSize << (len(c.CondEmbedChannels) - 1) }

// TimeEmbedDim is the width of the timestep embedding (4× the first level).
func (c Config) TimeEmbedDim() int64 { return 4 * c.Channels[0] }

// Bounds on a U-Net config, checked before anything is allocated: a
// weights file's metadata is input, and SD1.5 (the largest public U-Net
// ddgi reads) is far inside them.
const (
	maxLevels   = 8
	maxChannels = 8192
	maxLatent   = 1024
	maxBlocks   = 32
	maxHeads    = 256
	maxSteps    = 100_000
)

func (c Config) validate() error {
	inRange := func(v, lo, hi int64) bool { return v >= lo && v <= hi }
	switch {
	case len(c.Channels) > maxLevels || len(c.CondEmbedChannels) > maxLevels:
		return fmt.Errorf("diffusion config %q: %d channel levels, %d condition stages; at most %d", c.Name, len(c.Channels), len(c.CondEmbedChannels), maxLevels)
	case !inRange(c.LatentChannels, 1, 256) || !inRange(c.LatentSize, 1, maxLatent) || !inRange(c.ContextDim, 1, maxChannels) ||
		!inRange(c.NormGroups, 1, maxChannels) || !inRange(c.Heads, 1, maxHeads) || !inRange(c.HintChannels, 0, 256) ||
		!inRange(int64(c.LayersPerBlock), 1, maxBlocks) || !inRange(int64(c.TransformerDepth), 1, maxBlocks) || !inRange(int64(c.TrainSteps), 1, maxSteps):
		return fmt.Errorf("diffusion config %q out of bounds: latent %d×%d² (1…256, 1…%d), context %d, groups %d, heads %d (1…%d), hint %d, layers %d, depth %d (1…%d), train_steps %d (1…%d)",
			c.Name, c.LatentChannels, c.LatentSize, maxLatent, c.ContextDim, c.NormGroups, c.Heads, maxHeads, c.HintChannels, c.LayersPerBlock, c.TransformerDepth, maxBlocks, c.TrainSteps, maxSteps)
	case len(c.HintPalette) > 1024:
		return fmt.Errorf("diffusion config %q: %d palette colours", c.Name, len(c.HintPalette))
	}
	for _, ch := range append(append([]int64(nil), c.Channels...), c.CondEmbedChannels...) {
		if !inRange(ch, 1, maxChannels) {
			return fmt.Errorf("diffusion config %q: %d channels, want 1…%d", c.Name, ch, maxChannels)
		}
	}
	switch {
	case len(c.Channels) == 0 || len(c.Attention) != len(c.Channels):
		return fmt.Errorf("diffusion config %q: %d channel levels, %d attention flags", c.Name, len(c.Channels), len(c.Attention))
	case c.LayersPerBlock < 1 || c.TransformerDepth < 1 || c.Heads < 1:
		return fmt.Errorf("diffusion config %q: layers, depth and heads must be ≥ 1", c.Name)
	case len(c.CondEmbedChannels) == 0:
		return fmt.Errorf("diffusion config %q: no condition embedding channels", c.Name)
	case c.HintChannels < 0:
		return fmt.Errorf("diffusion config %q: hint_channels %d is negative", c.Name, c.HintChannels)
	}
	for _, ch := range c.Channels {
		if ch%c.NormGroups != 0 || ch%c.Heads != 0 {
			return fmt.Errorf("diffusion config %q: %d channels not divisible by %d groups and %d heads", c.Name, ch, c.NormGroups, c.Heads)
		}
	}
	return nil
}

// timestepEmbedding is the sinusoidal embedding of DDPM (Ho et al. 2020,
// Sec. 4 / Transformer positional encoding) in diffusers' layout with
// flip_sin_to_cos: [cos | sin] of t·10000^(−i/half). t: [B] float.
func timestepEmbedding(t *torch.Tensor, dim int64) *torch.Tensor {
	half := dim / 2
	freqs := torch.Arange(0, float64(half), 1, torch.Float32, t.Device()).MulScalar(-math.Log(10000) / float64(half)).Exp()
	args := t.To(torch.Float32).Unsqueeze(1).Mul(freqs.Unsqueeze(0)) // B,half
	return torch.Cat([]*torch.Tensor{args.Cos(), args.Sin()}, 1)
}

// TimestepMLP is diffusers' TimestepEmbedding: linear_1, SiLU, linear_2.
type TimestepMLP struct {
	In  int64
	L1  *nn.Linear
	L2  *nn.Linear
	Dim int64
}

func newTimestepMLP(p nn.Path, in, dim int64) *TimestepMLP {
	return &TimestepMLP{In: in, Dim: dim, L1: nn.NewLinear(p.Sub("linear_1"), in, dim, nn.LinearOpts{}), L2: nn.NewLinear(p.Sub("linear_2"), dim, dim, nn.LinearOpts{})}
}

// Forward embeds integer timesteps t [B].
func (m *TimestepMLP) Forward(t *torch.Tensor) *torch.Tensor {
	emb := timestepEmbedding(t, m.In)
	if dt := m.L1.Weight.DType(); dt == torch.BFloat16 { // a bf16 model (nn.BF16)
		emb = emb.To(dt)
	}
	return m.L2.Forward(m.L1.Forward(emb).Silu())
}

// ResBlock is diffusers' ResnetBlock2D: GroupNorm, SiLU, conv, + projected
// timestep embedding, GroupNorm, SiLU, conv, plus a (1×1 when the width
// changes) shortcut.
type ResBlock struct {
	Norm1, Norm2 *nn.GroupNorm
	Conv1, Conv2 *nn.Conv2d
	TimeProj     *nn.Linear
	Shortcut     *nn.Conv2d // nil when in == out
}

func newResBlock(p nn.Path, c Config, in, out int64) *ResBlock {
	r := &ResBlock{
		Norm1:    nn.NewGroupNorm(p.Sub("norm1"), c.NormGroups, in),
		Conv1:    nn.NewConv2d(p.Sub("conv1"), in, out, 3, nn.Conv2dOpts{Padding: 1}),
		TimeProj: nn.NewLinear(p.Sub("time_emb_proj"), c.TimeEmbedDim(), out, nn.LinearOpts{}),
		Norm2:    nn.NewGroupNorm(p.Sub("norm2"), c.NormGroups, out),
		Conv2:    nn.NewConv2d(p.Sub("conv2"), out, out, 3, nn.Conv2dOpts{Padding: 1}),
	}
	if in != out {
		r.Shortcut = nn.NewConv2d(p.Sub("conv_shortcut"), in, out, 1, nn.Conv2dOpts{})
	}
	return r
}

// Forward applies the block to x [B,in,h,w] with embedding temb [B,T].
func (r *ResBlock) Forward(x, temb *torch.Tensor) *torch.Tensor {
	h := r.Conv1.Forward(r.Norm1.Forward(x).Silu())
	h = h.Add(r.TimeProj.Forward(temb.Silu()).Unsqueeze(2).Unsqueeze(3))
	h = r.Conv2.Forward(r.Norm2.Forward(h).Silu())
	if r.Shortcut != nil {
		x = r.Shortcut.Forward(x)
	}
	return x.Add(h)
}

// TransformerBlock is diffusers' BasicTransformerBlock: self-attention,
// cross-attention to the text tokens, GEGLU feed-forward, each pre-norm
// with a residual.
type TransformerBlock struct {
	Norm1, Norm2, Norm3 *nn.LayerNorm
	SelfAttn, CrossAttn *nn.MultiHeadAttention
	FFIn, FFOut         *nn.Linear // ff.net.0.proj (GEGLU, 2×inner), ff.net.2
}

func newTransformerBlock(p nn.Path, dim, ctx, heads int64) *TransformerBlock {
	inner := 4 * dim
	return &TransformerBlock{
		Norm1:     nn.NewLayerNorm(p.Sub("norm1"), dim),
		SelfAttn:  nn.NewMultiHeadAttention(p.Sub("attn1"), dim, dim, dim, heads),
		Norm2:     nn.NewLayerNorm(p.Sub("norm2"), dim),
		CrossAttn: nn.NewMultiHeadAttention(p.Sub("attn2"), dim, ctx, dim, heads),
		Norm3:     nn.NewLayerNorm(p.Sub("norm3"), dim),
		FFIn:      nn.NewLinear(p.Sub("ff.net.0.proj"), dim, 2*inner, nn.LinearOpts{}),
		FFOut:     nn.NewLinear(p.Sub("ff.net.2"), inner, dim, nn.LinearOpts{}),
	}
}

// geglu is the GEGLU feed-forward gate (Shazeer 2020, Eq. 6): x·GELU(g)
// for the two halves [x | g] of the projection.
func geglu(h *torch.Tensor) *torch.Tensor {
	xg := h.Chunk(2, -1)
	g := xg[1].Gelu()
	out := xg[0].Mul(g)
	for _, t := range []*torch.Tensor{g, xg[0], xg[1]} {
		t.Free() // the halves are views: h's memory goes with its last handle
	}
	return out
}

// CrossTap is one cross-attention layer seen by the taps: its
// probabilities [B,heads,N,L] and its output [B,N,dim] (AbSMNet's A_t
// max-pools the outputs; Ā_t averages the probabilities over words).
type CrossTap struct {
	Probs, Out *torch.Tensor
}

// Forward updates tokens x [B,N,dim] attending to ctx [B,L,ctx]; the
// cross-attention tap is filled when wantProbs.
// Intermediates are freed as soon as they are used (autograd keeps what it
// saved), so a 64²-latent pass does not hold every block's maps to the end.
func (b *TransformerBlock) Forward(x, ctx *torch.Tensor, wantProbs bool) (*torch.Tensor, CrossTap) {
	n1 := b.Norm1.Forward(x)
	a, _ := b.SelfAttn.Forward(n1, nil, nil, false)
	n1.Free()
	x1 := x.Add(a)
	a.Free()
	var tap CrossTap
	n2 := b.Norm2.Forward(x1)
	a, tap.Probs = b.CrossAttn.Forward(n2, ctx, nil, wantProbs)
	n2.Free()
	x2 := x1.Add(a)
	x1.Free()
	if wantProbs {
		tap.Out = a
	} else {
		a.Free()
	}
	ff := torch.Chain(x2, b.Norm3.Forward, b.FFIn.Forward, geglu, b.FFOut.Forward)
	out := x2.Add(ff)
	x2.Free()
	ff.Free()
	return out, tap
}

// SpatialTransformer is diffusers' Transformer2DModel (SD1.5: conv
// projections): GroupNorm, proj_in 1×1, transformer blocks over the h·w
// tokens, proj_out 1×1, residual.
type SpatialTransformer struct {
	Norm    *nn.GroupNorm
	ProjIn  *nn.Conv2d
	Blocks  []*TransformerBlock
	ProjOut *nn.Conv2d
}

func newSpatialTransformer(p nn.Path, c Config, dim int64) *SpatialTransformer {
	s := &SpatialTransformer{
		Norm:    nn.NewGroupNorm(p.Sub("norm"), c.NormGroups, dim),
		ProjIn:  nn.NewConv2d(p.Sub("proj_in"), dim, dim, 1, nn.Conv2dOpts{}),
		ProjOut: nn.NewConv2d(p.Sub("proj_out"), dim, dim, 1, nn.Conv2dOpts{}),
	}
	s.Norm.Eps = 1e-6
	for i := 0; i < c.TransformerDepth; i++ {
		s.Blocks = append(s.Blocks, newTransformerBlock(p.Subf("transformer_blocks.%d", i), dim, c.ContextDim, c.Heads))
	}
	return s
}

// Forward returns the updated x [B,C,h,w] and, when wantProbs, one
// cross-attention tap per transformer block.
func (s *SpatialTransformer) Forward(x, ctx *torch.Tensor, wantProbs bool) (*torch.Tensor, []CrossTap) {
	b, ch, h, w := x.Size(0), x.Size(1), x.Size(2), x.Size(3)
	t := s.ProjIn.Forward(s.Norm.Forward(x)).Flatten(2, 3).Transpose(1, 2) // B,hw,C
	var maps []CrossTap
	for _, blk := range s.Blocks {
		var p CrossTap
		t, p = blk.Forward(t, ctx, wantProbs)
		if wantProbs {
			maps = append(maps, p)
		}
	}
	t = t.Transpose(1, 2).Reshape(b, ch, h, w)
	return x.Add(s.ProjOut.Forward(t)), maps
}

// level is one resolution step of the encoder (down block) or decoder (up
// block): resnets each optionally followed by a spatial transformer, then
// an optional resampler.
type level struct {
	Resnets    []*ResBlock
	Attentions []*SpatialTransformer // empty or one per resnet
	Resample   *nn.Conv2d            // downsamplers.0.conv / upsamplers.0.conv; nil at the end
}

// Encoder is the half of the U-Net that a ControlNet branch copies:
// conv_in, the timestep embedding, the down blocks and the middle block.
type Encoder struct {
	Config  Config
	ConvIn  *nn.Conv2d
	TimeMLP *TimestepMLP
	Down    []*level
	Mid     *level // resnets.0, attentions.0, resnets.1
	// SkipChannels lists the width of every skip connection in push order
	// (conv_in, then each resnet/attention, then each downsampler).
	SkipChannels []int64
}

func newEncoder(p nn.Path, c Config) *Encoder {
	e := &Encoder{Config: c}
	e.ConvIn = nn.NewConv2d(p.Sub("conv_in"), c.LatentChannels, c.Channels[0], 3, nn.Conv2dOpts{Padding: 1})
	e.TimeMLP = newTimestepMLP(p.Sub("time_embedding"), c.Channels[0], c.TimeEmbedDim())
	e.SkipChannels = []int64{c.Channels[0]}
	in := c.Channels[0]
	for i, out := range c.Channels {
		bp := p.Subf("down_blocks.%d", i)
		l := &level{}
		for j := 0; j < c.LayersPerBlock; j++ {
			l.Resnets = append(l.Resnets, newResBlock(bp.Subf("resnets.%d", j), c, in, out))
			if c.Attention[i] {
				l.Attentions = append(l.Attentions, newSpatialTransformer(bp.Subf("attentions.%d", j), c, out))
			}
			in = out
			e.SkipChannels = append(e.SkipChannels, out)
		}
		if i < len(c.Channels)-1 {
			l.Resample = nn.NewConv2d(bp.Sub("downsamplers.0.conv"), out, out, 3, nn.Conv2dOpts{Stride: 2, Padding: 1})
			e.SkipChannels = append(e.SkipChannels, out)
		}
		e.Down = append(e.Down, l)
	}
	mp := p.Sub("mid_block")
	e.Mid = &level{
		Resnets:    []*ResBlock{newResBlock(mp.Sub("resnets.0"), c, in, in), newResBlock(mp.Sub("resnets.1"), c, in, in)},
		Attentions: []*SpatialTransformer{newSpatialTransformer(mp.Sub("attentions.0"), c, in)},
	}
	return e
}

// encoded is the encoder's output: skips in push order, the middle block
// output, the timestep embedding.
type encoded struct {
	Skips []*torch.Tensor
	Mid   *torch.Tensor
	Temb  *torch.Tensor
}

// forward runs the encoder; stem (nil for the base U-Net) is added after
// conv_in (ControlNet's embedded condition).
func (e *Encoder) forward(zt, t, ctx, stem *torch.Tensor) encoded {
	temb := e.TimeMLP.Forward(t)
	h := e.ConvIn.Forward(zt)
	if stem != nil {
		h = h.Add(stem)
	}
	skips := []*torch.Tensor{h}
	for _, l := range e.Down {
		for j, r := range l.Resnets {
			h = r.Forward(h, temb)
			if len(l.Attentions) > 0 {
				h, _ = l.Attentions[j].Forward(h, ctx, false)
			}
			skips = append(skips, h)
		}
		if l.Resample != nil {
			h = l.Resample.Forward(h)
			skips = append(skips, h)
		}
	}
	h = e.Mid.Resnets[0].Forward(h, temb)
	h, _ = e.Mid.Attentions[0].Forward(h, ctx, false)
	h = e.Mid.Resnets[1].Forward(h, temb)
	return encoded{Skips: skips, Mid: h, Temb: temb}
}

// UNet is SD1.5's UNet2DConditionModel: the Encoder, then up blocks that
// consume the skips in reverse, then GroupNorm, SiLU, conv_out.
type UNet struct {
	Config  Config
	Enc     *Encoder
	Up      []*level
	NormOut *nn.GroupNorm
	ConvOut *nn.Conv2d
}

// NewUNet registers a U-Net under p.
func NewUNet(p nn.Path, c Config) (*UNet, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	u := &UNet{Config: c, Enc: newEncoder(p, c)}
	skips := append([]int64(nil), u.Enc.SkipChannels...)
	n := len(c.Channels)
	cur := c.Channels[n-1]
	for i := 0; i < n; i++ {
		lvl := n - 1 - i
		out := c.Channels[lvl]
		bp := p.Subf("up_blocks.%d", i)
		l := &level{}
		for j := 0; j <= c.LayersPerBlock; j++ {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			l.Resnets = append(l.Resnets, newResBlock(bp.Subf("resnets.%d", j), c, cur+skip, out))
			if c.Attention[lvl] {
				l.Attentions = append(l.Attentions, newSpatialTransformer(bp.Subf("attentions.%d", j), c, out))
			}
			cur = out
		}
		if lvl > 0 {
			l.Resample = nn.NewConv2d(bp.Sub("upsamplers.0.conv"), out, out, 3, nn.Conv2dOpts{Padding: 1})
		}
		u.Up = append(u.Up, l)
	}
	u.NormOut = nn.NewGroupNorm(p.Sub("conv_norm_out"), c.NormGroups, c.Channels[0])
	u.ConvOut = nn.NewConv2d(p.Sub("conv_out"), c.Channels[0], c.LatentChannels, 3, nn.Conv2dOpts{Padding: 1})
	return u, nil
}

// Residuals are what ControlNet branches add to the U-Net: one tensor per
// skip connection (Encoder.SkipChannels order) and one for the middle block.
type Residuals struct {
	Down []*torch.Tensor
	Mid  *torch.Tensor
}

// forward runs the whole U-Net, adding res (may be nil) to the skips and
// the middle block output, and fills taps when wantTaps.
func (u *UNet) forward(zt, t, ctx *torch.Tensor, res *Residuals, wantTaps bool) Taps {
	return u.decode(u.Enc.forward(zt, t, ctx, nil), ctx, res, wantTaps)
}

// decode runs the middle-block residual and the decoder on the encoder's
// output e.
func (u *UNet) decode(e encoded, ctx *torch.Tensor, res *Residuals, wantTaps bool) Taps {
	skips, h := e.Skips, e.Mid
	if res != nil {
		skips = make([]*torch.Tensor, len(e.Skips))
		for i, s := range e.Skips {
			skips[i] = s.Add(res.Down[i])
		}
		h = h.Add(res.Mid)
	}
	var taps Taps
	if wantTaps {
		taps.H = h
	}
	for _, l := range u.Up {
		var maps, outs []*torch.Tensor
		for j, r := range l.Resnets {
			s := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			h = r.Forward(torch.Cat([]*torch.Tensor{h, s}, 1), e.Temb)
			if len(l.Attentions) > 0 {
				var m []CrossTap
				h, m = l.Attentions[j].Forward(h, ctx, wantTaps)
				for _, c := range m {
					maps = append(maps, c.Probs)
					outs = append(outs, c.Out)
				}
			}
		}
		if l.Resample != nil {
			h = l.Resample.Forward(torch.Interpolate(h, 2*h.Size(2), 2*h.Size(3), torch.Nearest, false))
		}
		if wantTaps {
			taps.F = append(taps.F, h)
			taps.A = append(taps.A, maps)
			taps.AOut = append(taps.AOut, outs)
		}
	}
	taps.Eps = u.ConvOut.Forward(u.NormOut.Forward(h).Silu())
	return taps
}

// Forward predicts the model output (ε or v, see Config.Prediction) for
// latents zt [B,C,h,w] at integer timesteps t [B] under text tokens ctx
// [B,L,ContextDim]; res are ControlNet residuals or nil.
func (u *UNet) Forward(zt, t, ctx *torch.Tensor, res *Residuals) *torch.Tensor {
	return u.forward(zt, t, ctx, res, false).Eps
}
