package diffusion

import (
	"fmt"

	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/torch"
)

// MaskClasses is the number of semantic classes (CelebAMask-HQ order).
const MaskClasses = 19

// CondChannels is the number of input channels of a condition type: the
// mask is one-hot over 19 classes, the scribble a single 0/1 plane.
func CondChannels(kind kinds.Cond) (int64, error) {
	switch kind {
	case kinds.Mask:
		return MaskClasses, nil
	case kinds.Scribble:
		return 1, nil
	}
	return 0, fmt.Errorf("diffusion: unknown condition %q (mask, scribble)", kind)
}

// CondEmbedding is ControlNet's ControlNetConditioningEmbedding: a small
// conv net from the condition image at pixel resolution down to the latent
// size, ending in a zero-initialised conv (Zhang et al. 2023, Sec. 3.2).
// With CondEmbedChannels 16,32,96,256 it is cldm's input_hint_block layer
// for layer: conv to 16, then per width a same-width conv and a stride-2
// conv to the next, SiLU after each, and the zero conv to Channels[0].
type CondEmbedding struct {
	ConvIn  *nn.Conv2d
	Blocks  []*nn.Conv2d // pairs: 3×3 same width, 3×3 stride 2 to the next width
	ConvOut *nn.Conv2d
}

func newCondEmbedding(p nn.Path, c Config, in int64) *CondEmbedding {
	ch := c.CondEmbedChannels
	e := &CondEmbedding{ConvIn: nn.NewConv2d(p.Sub("conv_in"), in, ch[0], 3, nn.Conv2dOpts{Padding: 1})}
	for i := 0; i+1 < len(ch); i++ {
		e.Blocks = append(e.Blocks,
			nn.NewConv2d(p.Subf("blocks.%d", 2*i), ch[i], ch[i], 3, nn.Conv2dOpts{Padding: 1}),
			nn.NewConv2d(p.Subf("blocks.%d", 2*i+1), ch[i], ch[i+1], 3, nn.Conv2dOpts{Padding: 1, Stride: 2}))
	}
	e.ConvOut = nn.NewConv2d(p.Sub("conv_out"), ch[len(ch)-1], c.Channels[0], 3, nn.Conv2dOpts{Padding: 1, ZeroInit: true})
	return e
}

// Forward embeds a condition image [B,in,S,S] to [B,Channels[0],h,w].
func (e *CondEmbedding) Forward(x *torch.Tensor) *torch.Tensor {
	h := e.ConvIn.Forward(x).Silu()
	for _, b := range e.Blocks {
		h = b.Forward(h).Silu()
	}
	return e.ConvOut.Forward(h)
}

// ControlNet is one condition branch: a trainable copy of the U-Net's
// Encoder fed with the embedded condition, whose skips and middle output
// leave through zero-initialised 1×1 convs. Tensor names follow diffusers'
// ControlNetModel, so the copied encoder keeps the U-Net's names.
type ControlNet struct {
	Kind     kinds.Cond
	Store    *nn.Store
	Enc      *Encoder
	CondEmb  *CondEmbedding
	ZeroDown []*nn.Conv2d // controlnet_down_blocks.i
	ZeroMid  *nn.Conv2d   // controlnet_mid_block
}

// NewControlNet builds a branch for kind in its own store; it reads
// Config.HintChannels channels when set, else CondChannels(kind). Its encoder
// starts random; call InitFrom to copy the base U-Net's encoder as
// ControlNet does.
func NewControlNet(c Config, kind kinds.Cond, dev torch.Device, seed uint64) (*ControlNet, error) {
	return NewControlNetIn(nn.NewStore(dev, seed), c, kind)
}

// NewControlNetIn builds a branch for kind in store s (converters pass one
// with SkipInit, about to be overwritten by a checkpoint).
func NewControlNetIn(s *nn.Store, c Config, kind kinds.Cond) (*ControlNet, error) {
	in, err := CondChannels(kind)
	if err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.HintChannels > 0 {
		in = c.HintChannels
	}
	p := s.Root()
	n := &ControlNet{Kind: kind, Store: s, Enc: newEncoder(p, c), CondEmb: newCondEmbedding(p.Sub("controlnet_cond_embedding"), c, in)}
	for i, ch := range n.Enc.SkipChannels {
		n.ZeroDown = append(n.ZeroDown, nn.NewZeroConv(p.Subf("controlnet_down_blocks.%d", i), ch, ch))
	}
	last := c.Channels[len(c.Channels)-1]
	n.ZeroMid = nn.NewZeroConv(p.Sub("controlnet_mid_block"), last, last)
	return n, nil
}

// InitFrom copies the base U-Net's encoder weights (conv_in,
// time_embedding, down_blocks, mid_block: same names in both stores) into
// the branch; the condition embedding and zero convs keep their init.
func (n *ControlNet) InitFrom(base *nn.Store) error {
	return n.Store.CopyFrom(base, func(name string) string { return name })
}

// Forward returns the branch's residuals for latents zt, timesteps t,
// text ctx and condition image cond [B,in,S,S], scaled by scale.
func (n *ControlNet) Forward(zt, t, ctx, cond *torch.Tensor, scale float64) *Residuals {
	if h := n.Enc.Config.HintChannels; h == 3 && cond.Size(1) != 3 {
		cond = HintImage(cond, n.Enc.Config.HintPalette)
	}
	e := n.Enc.forward(zt, t, ctx, n.CondEmb.Forward(cond))
	r := &Residuals{Mid: n.ZeroMid.Forward(e.Mid)}
	for i, s := range e.Skips {
		r.Down = append(r.Down, n.ZeroDown[i].Forward(s))
	}
	if scale != 1 {
		for i := range r.Down {
			r.Down[i] = r.Down[i].MulScalar(scale)
		}
		r.Mid = r.Mid.MulScalar(scale)
	}
	return r
}

// CelebAMaskHQPalette is the colour list CelebAMask-HQ's tools and most
// face-parsing code draw the 19 classes in (background black, skin
// (204,0,0), nose (76,153,0), …, cloth (0,204,0)): how a public
// segmentation ControlNet trained on CelebAMask-HQ maps sees masks.
var CelebAMaskHQPalette = [][3]uint8{
	{0, 0, 0}, {204, 0, 0}, {76, 153, 0}, {204, 204, 0}, {51, 51, 255}, {204, 0, 204}, {0, 255, 255},
	{255, 204, 204}, {102, 51, 0}, {255, 0, 0}, {102, 204, 0}, {255, 255, 0}, {0, 0, 153}, {0, 0, 204},
	{255, 51, 153}, {0, 204, 204}, {0, 51, 0}, {255, 153, 51}, {0, 204, 0},
}

// HintImage turns ddgi's conditions into the RGB hints (in [0,1]) that
// lllyasviel's ControlNets read: a one-hot mask [B,K,H,W] becomes each
// pixel's class colour in palette (CelebAMaskHQPalette when nil); a
// 1-channel scribble (white strokes on black) is repeated to 3 channels.
func HintImage(cond *torch.Tensor, palette [][3]uint8) *torch.Tensor {
	k := cond.Size(1)
	if k == 1 {
		return cond.Repeat(1, 3, 1, 1)
	}
	if palette == nil {
		palette = CelebAMaskHQPalette
	}
	if int64(len(palette)) < k {
		panic(&torch.Error{Op: "hint image", Msg: fmt.Sprintf("a %d-class mask needs %d palette colours, the config has %d", k, k, len(palette))})
	}
	v := make([]float32, 0, 3*k)
	for _, c := range palette[:k] {
		v = append(v, float32(c[0])/255, float32(c[1])/255, float32(c[2])/255)
	}
	p := torch.FromFloat32(v, k, 3).ToDevice(cond.Device()).To(cond.DType())
	return cond.Permute(0, 2, 3, 1).Matmul(p).Permute(0, 3, 1, 2).Contiguous()
}

// add sums residuals of several branches (diffusers' MultiControlNetModel).
func (r *Residuals) add(o *Residuals) *Residuals {
	if r == nil {
		return o
	}
	s := &Residuals{Mid: r.Mid.Add(o.Mid)}
	for i := range r.Down {
		s.Down = append(s.Down, r.Down[i].Add(o.Down[i]))
	}
	return s
}
