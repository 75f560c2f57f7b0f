package nn

import (
	"math"

	"ddgi/torch"
)

// LinearOpts configure Linear.
type LinearOpts struct {
	NoBias bool
	// EqualLR stores weights as N(0, 1/LRMul²) and scales them by
	// LRMul/√fan_in at run time (StyleGAN's equalized learning rate).
	EqualLR bool
	// LRMul is StyleGAN's learning-rate multiplier (mapping net: 0.01); 0 means 1.
	LRMul float64
	// BiasInit is the initial bias (StyleGAN's affine layers start at 1).
	BiasInit float64
	// ZeroInit starts weight and bias at zero.
	ZeroInit bool
}

// Linear is y = x·(scale·W)ᵀ + lrmul·b. Tensors: weight [out,in], bias [out].
type Linear struct {
	Weight, Bias *torch.Tensor
	scale, lrmul float64
}

// NewLinear registers weight and bias under p.
func NewLinear(p Path, in, out int64, o LinearOpts) *Linear {
	l := &Linear{scale: 1, lrmul: 1}
	shape := []int64{out, in}
	init := Uniform(kaimingBound(shape))
	if o.EqualLR {
		if o.LRMul == 0 {
			o.LRMul = 1
		}
		l.lrmul = o.LRMul
		l.scale = o.LRMul / math.Sqrt(float64(in))
		init = Normal(1 / o.LRMul)
	}
	if o.ZeroInit {
		init = Constant(0)
	}
	l.Weight = p.Param("weight", shape, init)
	if !o.NoBias {
		binit := Uniform(kaimingBound(shape))
		if o.EqualLR || o.ZeroInit || o.BiasInit != 0 {
			binit = Constant(o.BiasInit / l.lrmul)
		}
		l.Bias = p.Param("bias", []int64{out}, binit)
	}
	return l
}

// Forward applies the layer to the last dim of x.
func (l *Linear) Forward(x *torch.Tensor) *torch.Tensor {
	w0, b0 := Compute(l.Weight), Compute(l.Bias)
	defer Done(l.Weight, w0)
	defer Done(l.Bias, b0)
	w, b := w0, b0
	if l.scale != 1 {
		w = w.MulScalar(l.scale)
	}
	if b != nil && l.lrmul != 1 {
		b = b.MulScalar(l.lrmul)
	}
	return torch.Linear(x, w, b)
}

// Conv2dOpts configure Conv2d.
type Conv2dOpts struct {
	Stride, Padding int64
	Groups          int64
	NoBias          bool
	// EqualLR scales weights by 1/√fan_in at run time (StyleGAN).
	EqualLR bool
	// ZeroInit starts weight and bias at zero: ControlNet's zero convolution.
	ZeroInit bool
}

// Conv2d is a 2-D convolution. Tensors: weight [out,in/groups,k,k], bias [out].
type Conv2d struct {
	Weight, Bias *torch.Tensor
	opts         torch.ConvOpts
	scale        float64
}

// NewConv2d registers a k×k convolution under p.
func NewConv2d(p Path, in, out, k int64, o Conv2dOpts) *Conv2d {
	if o.Groups == 0 {
		o.Groups = 1
	}
	if o.Stride == 0 {
		o.Stride = 1
	}
	shape := []int64{out, in / o.Groups, k, k}
	c := &Conv2d{scale: 1, opts: torch.ConvOpts{Stride: [2]int64{o.Stride, o.Stride}, Padding: [2]int64{o.Padding, o.Padding}, Groups: o.Groups}}
	init := Uniform(kaimingBound(shape))
	binit := init
	switch {
	case o.ZeroInit:
		init, binit = Constant(0), Constant(0)
	case o.EqualLR:
		c.scale = 1 / math.Sqrt(fanIn(shape))
		init, binit = Normal(1), Constant(0)
	}
	c.Weight = p.Param("weight", shape, init)
	if !o.NoBias {
		c.Bias = p.Param("bias", []int64{out}, binit)
	}
	return c
}

// NewZeroConv is ControlNet's 1×1 zero-initialised convolution.
func NewZeroConv(p Path, in, out int64) *Conv2d {
	return NewConv2d(p, in, out, 1, Conv2dOpts{ZeroInit: true})
}

// Forward convolves NCHW x.
func (c *Conv2d) Forward(x *torch.Tensor) *torch.Tensor {
	w0, b := Compute(c.Weight), Compute(c.Bias)
	defer Done(c.Weight, w0)
	defer Done(c.Bias, b)
	w := w0
	if c.scale != 1 {
		w = w.MulScalar(c.scale)
	}
	return torch.Conv2d(x, w, b, c.opts)
}

// GroupNorm normalises channel groups with a learned affine. Tensors:
// weight [C], bias [C].
type GroupNorm struct {
	Weight, Bias *torch.Tensor
	Groups       int64
	Eps          float64
}

// NewGroupNorm registers a GroupNorm over c channels in g groups.
func NewGroupNorm(p Path, g, c int64) *GroupNorm {
	return &GroupNorm{Weight: p.Param("weight", []int64{c}, Constant(1)), Bias: p.Param("bias", []int64{c}, Constant(0)), Groups: g, Eps: 1e-5}
}

// Forward normalises NC… x.
func (n *GroupNorm) Forward(x *torch.Tensor) *torch.Tensor {
	w, b := Compute(n.Weight), Compute(n.Bias)
	defer Done(n.Weight, w)
	defer Done(n.Bias, b)
	return torch.GroupNorm(x, n.Groups, w, b, n.Eps)
}

// LayerNorm normalises the last dim with a learned affine. Tensors:
// weight [D], bias [D].
type LayerNorm struct {
	Weight, Bias *torch.Tensor
	Dim          int64
	Eps          float64
}

// NewLayerNorm registers a LayerNorm over the last dim of size d.
func NewLayerNorm(p Path, d int64) *LayerNorm {
	return &LayerNorm{Weight: p.Param("weight", []int64{d}, Constant(1)), Bias: p.Param("bias", []int64{d}, Constant(0)), Dim: d, Eps: 1e-5}
}

// Forward normalises x over its last dim.
func (n *LayerNorm) Forward(x *torch.Tensor) *torch.Tensor {
	w, b := Compute(n.Weight), Compute(n.Bias)
	defer Done(n.Weight, w)
	defer Done(n.Bias, b)
	return torch.LayerNorm(x, []int64{n.Dim}, w, b, n.Eps)
}

// Embedding maps int64 ids to rows. Tensor: weight [N,D].
type Embedding struct{ Weight *torch.Tensor }

// NewEmbedding registers an n×d table drawn from N(0, 0.02²) as CLIP does.
func NewEmbedding(p Path, n, d int64) *Embedding {
	return &Embedding{Weight: p.Param("weight", []int64{n, d}, Normal(0.02))}
}

// Forward looks up ids. An fp16-stored table (inference only) is looked up
// as is and only the rows taken are upcast: the same values as upcasting
// the whole table first, without a temporary copy of it.
func (e *Embedding) Forward(ids *torch.Tensor) *torch.Tensor {
	if e.Weight.DType() == torch.Float16 {
		return torch.Embedding(e.Weight, ids).To(torch.Float32)
	}
	return torch.Embedding(e.Weight, ids)
}
