package stylegan2

import (
	"fmt"
	"math"

	"ddgi/nn"
	"ddgi/torch"
)

// Discriminator checkpoint keys:
//
//	fromrgb.{weight,bias}                        1×1 conv from the input channels
//	blocks.{r}.{conv1,conv2,skip}.weight/bias    residual block at resolution r
//	final_conv.{weight,bias}, fc.{weight,bias}, out.{weight,bias}
//	cmap.fc{i}.{weight,bias}                     condition embedding (CDim > 0)

// ConvLayer is an equalized-LR conv with optional blur + stride-2
// downsampling, bias and leaky ReLU.
type ConvLayer struct {
	Conv       *nn.Conv2d
	Bias       *torch.Tensor
	Down, Act  bool
	blur0, b1  int64
	kernelSize int64
}

// NewConvLayer registers a k×k conv layer under p.
func NewConvLayer(p nn.Path, in, out, k int64, down, bias, act bool) *ConvLayer {
	pad := k / 2
	stride := int64(1)
	l := &ConvLayer{Down: down, Act: act, kernelSize: k}
	if down {
		// StyleGAN2 blurs before a stride-2 conv: pad so the output halves.
		pp := (4 - 2) + (k - 1)
		l.blur0, l.b1 = (pp+1)/2, pp/2
		pad, stride = 0, 2
	}
	l.Conv = nn.NewConv2d(p, in, out, k, nn.Conv2dOpts{Stride: stride, Padding: pad, EqualLR: true, NoBias: true})
	if bias {
		l.Bias = p.Param("bias", []int64{out}, nn.Constant(0))
	}
	return l
}

// Forward applies the layer to NCHW x.
func (l *ConvLayer) Forward(x *torch.Tensor) *torch.Tensor {
	if l.Down {
		x = Blur(x, l.blur0, l.b1, 1)
	}
	x = l.Conv.Forward(x)
	if l.Act {
		return FusedLeakyReLU(x, l.Bias)
	}
	if l.Bias != nil {
		x = x.Add(l.Bias.Reshape(1, l.Bias.Size(0), 1, 1))
	}
	return x
}

// DiscriminatorBlock is the residual block of StyleGAN2's discriminator:
// conv3×3 → conv3×3↓, plus a 1×1↓ skip, summed and scaled by 1/√2.
type DiscriminatorBlock struct {
	Conv1, Conv2, Skip *ConvLayer
}

// NewDiscriminatorBlock registers a block under p.
func NewDiscriminatorBlock(p nn.Path, in, out int64) *DiscriminatorBlock {
	return &DiscriminatorBlock{
		Conv1: NewConvLayer(p.Sub("conv1"), in, in, 3, false, true, true),
		Conv2: NewConvLayer(p.Sub("conv2"), in, out, 3, true, true, true),
		Skip:  NewConvLayer(p.Sub("skip"), in, out, 1, true, false, false),
	}
}

// Forward halves the resolution.
func (b *DiscriminatorBlock) Forward(x *torch.Tensor) *torch.Tensor {
	y := b.Conv2.Forward(b.Conv1.Forward(x))
	return y.Add(b.Skip.Forward(x)).MulScalar(1 / sqrt2)
}

// MinibatchStddev appends one feature map holding the standard deviation
// of features across groups of g samples (StyleGAN / ProGAN §3).
func MinibatchStddev(x *torch.Tensor, g int64) *torch.Tensor {
	s := x.Shape()
	b, c, h, w := s[0], s[1], s[2], s[3]
	g = int64(MbstdGroupSize(int(g), int(b)))
	y := x.Reshape(g, b/g, 1, c, h, w)
	y = y.Var([]int64{0}, false, false).AddScalar(1e-8).Sqrt() // [b/g,1,c,h,w]
	y = y.Mean([]int64{2, 3, 4}, false)                        // [b/g,1]
	y = y.Reshape(b/g, 1, 1, 1).Repeat(g, 1, h, w)
	return torch.Cat([]*torch.Tensor{x, y}, 1)
}

// MbstdGroupSize is the group size MinibatchStddev uses for a batch of b
// with groups of g asked: the largest divisor of b not above g. Sample i
// falls in group i mod (b/size).
func MbstdGroupSize(g, b int) int {
	g = max(1, min(g, b))
	for b%g != 0 {
		g--
	}
	return g
}

// DOpts say what the discriminator sees: InChannels (3, or 6 for EG3D's
// dual discrimination) and CDim (the camera, projected as in EG3D).
type DOpts struct {
	InChannels int
	CDim       int
}

// Discriminator is StyleGAN2's residual discriminator, optionally
// conditioned on a label by projection (EG3D's camera conditioning).
type Discriminator struct {
	Cfg       Config
	Opts      DOpts
	FromRGB   *ConvLayer
	Blocks    []*DiscriminatorBlock
	FinalConv *ConvLayer
	FC, Out   *nn.Linear
	CMap      []*nn.Linear
	cmapDim   int64
}

// NewDiscriminator builds the discriminator under p.
func NewDiscriminator(p nn.Path, c Config, o DOpts) (*Discriminator, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if o.InChannels == 0 {
		o.InChannels = 3
	}
	d := &Discriminator{Cfg: c, Opts: o}
	in := c.DChannels(c.Resolution)
	d.FromRGB = NewConvLayer(p.Sub("fromrgb"), int64(o.InChannels), in, 1, false, true, true)
	for r := c.Resolution; r > 4; r /= 2 {
		out := c.DChannels(r / 2)
		d.Blocks = append(d.Blocks, NewDiscriminatorBlock(p.Sub("blocks").Subf("%d", r), in, out))
		in = out
	}
	c4 := c.DChannels(4)
	d.FinalConv = NewConvLayer(p.Sub("final_conv"), in+1, c4, 3, false, true, true)
	d.FC = nn.NewLinear(p.Sub("fc"), c4*16, c4, nn.LinearOpts{EqualLR: true})
	outDim := int64(1)
	if o.CDim > 0 {
		d.cmapDim = c4
		outDim = c4
		in := int64(o.CDim)
		for i := range 2 {
			d.CMap = append(d.CMap, nn.NewLinear(p.Sub("cmap").Subf("fc%d", i), in, c4, nn.LinearOpts{EqualLR: true}))
			in = c4
		}
	}
	d.Out = nn.NewLinear(p.Sub("out"), c4, outDim, nn.LinearOpts{EqualLR: true})
	return d, nil
}

// Forward scores images x [B,InChannels,res,res] (and labels c [B,CDim])
// with one logit per sample [B].
func (d *Discriminator) Forward(x, c *torch.Tensor) *torch.Tensor {
	if x.Size(1) != int64(d.Opts.InChannels) || x.Size(2) != int64(d.Cfg.Resolution) {
		panic(&torch.Error{Op: "discriminator", Msg: fmt.Sprintf("input %v, want [B,%d,%d,%d]", x.Shape(), d.Opts.InChannels, d.Cfg.Resolution, d.Cfg.Resolution)})
	}
	x = d.FromRGB.Forward(x)
	for _, b := range d.Blocks {
		x = b.Forward(x)
	}
	x = MinibatchStddev(x, int64(d.Cfg.MbstdGroup))
	x = d.FinalConv.Forward(x).Flatten(1, -1)
	x = FusedLeakyReLU(d.FC.Forward(x), nil)
	out := d.Out.Forward(x)
	if d.CMap == nil {
		return out.Reshape(-1)
	}
	if c == nil {
		panic(&torch.Error{Op: "discriminator", Msg: "conditioned discriminator needs labels"})
	}
	// Projection discriminator (Miyato & Koyama 2018), as EG3D's D.
	cm := NormalizeSecondMoment(c)
	for _, fc := range d.CMap {
		cm = FusedLeakyReLU(fc.Forward(cm), nil)
	}
	return out.Mul(cm).Sum([]int64{1}, false).MulScalar(1 / math.Sqrt(float64(d.cmapDim)))
}
