package torch

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

func pair(v [2]int64) *C.int64_t { return (*C.int64_t)(unsafe.Pointer(&v[0])) }

// ConvOpts are conv2d's geometry; zero values mean stride 1, no padding,
// dilation 1, one group.
type ConvOpts struct {
	Stride, Padding, Dilation, OutputPadding [2]int64
	Groups                                   int64
}

func (o ConvOpts) norm() ConvOpts {
	for i := 0; i < 2; i++ {
		if o.Stride[i] == 0 {
			o.Stride[i] = 1
		}
		if o.Dilation[i] == 0 {
			o.Dilation[i] = 1
		}
	}
	if o.Groups == 0 {
		o.Groups = 1
	}
	return o
}

// Same returns options for a square kernel k with stride s and padding p.
func Same(s, p int64) ConvOpts {
	return ConvOpts{Stride: [2]int64{s, s}, Padding: [2]int64{p, p}}
}

// Conv2d convolves NCHW x with weight [out, in/groups, kh, kw]; b may be nil.
func Conv2d(x, w, b *Tensor, o ConvOpts) *Tensor {
	defer func() { runtime.KeepAlive(b); runtime.KeepAlive(w); runtime.KeepAlive(x) }()
	o = o.norm()
	var h C.tt
	check("conv2d", C.ts_conv2d(x.ptr("conv2d"), w.ptr("conv2d"), optPtr("conv2d", b),
		pair(o.Stride), pair(o.Padding), pair(o.Dilation), C.int64_t(o.Groups), &h))
	return wrap(h)
}

// ConvTranspose2d is the adjoint of Conv2d; weight [in, out/groups, kh, kw].
func ConvTranspose2d(x, w, b *Tensor, o ConvOpts) *Tensor {
	defer func() { runtime.KeepAlive(b); runtime.KeepAlive(w); runtime.KeepAlive(x) }()
	o = o.norm()
	var h C.tt
	check("conv_transpose2d", C.ts_conv_transpose2d(x.ptr("conv_transpose2d"), w.ptr("conv_transpose2d"), optPtr("conv_transpose2d", b),
		pair(o.Stride), pair(o.Padding), pair(o.OutputPadding), C.int64_t(o.Groups), pair(o.Dilation), &h))
	return wrap(h)
}

// GroupNorm normalises channel groups of NC… x; w, b may be nil.
func GroupNorm(x *Tensor, groups int64, w, b *Tensor, eps float64) *Tensor {
	defer func() { runtime.KeepAlive(b); runtime.KeepAlive(w); runtime.KeepAlive(x) }()
	var h C.tt
	check("group_norm", C.ts_group_norm(x.ptr("group_norm"), C.int64_t(groups), optPtr("group_norm", w), optPtr("group_norm", b), C.double(eps), &h))
	return wrap(h)
}

// LayerNorm normalises over the trailing dims given by shape.
func LayerNorm(x *Tensor, shape []int64, w, b *Tensor, eps float64) *Tensor {
	defer func() { runtime.KeepAlive(b); runtime.KeepAlive(w); runtime.KeepAlive(x) }()
	var h C.tt
	p, n := shapeArg(shape)
	check("layer_norm", C.ts_layer_norm(x.ptr("layer_norm"), p, n, optPtr("layer_norm", w), optPtr("layer_norm", b), C.double(eps), &h))
	return wrap(h)
}

// InterpMode selects the resampling filter.
type InterpMode int

const (
	Nearest InterpMode = iota
	Bilinear
	Bicubic
	Area
)

// Interpolate resizes NCHW x to oh×ow.
func Interpolate(x *Tensor, oh, ow int64, mode InterpMode, alignCorners bool) *Tensor {
	defer func() { runtime.KeepAlive(x) }()
	var h C.tt
	check("interpolate", C.ts_interpolate(x.ptr("interpolate"), C.int64_t(oh), C.int64_t(ow), C.int(mode), cbool(alignCorners), &h))
	return wrap(h)
}

// AvgPool2d averages k×k windows with stride s and padding p.
func AvgPool2d(x *Tensor, k, s, p int64) *Tensor {
	defer func() { runtime.KeepAlive(x) }()
	var h C.tt
	check("avg_pool2d", C.ts_avg_pool2d(x.ptr("avg_pool2d"), pair([2]int64{k, k}), pair([2]int64{s, s}), pair([2]int64{p, p}), &h))
	return wrap(h)
}

// MaxPool2d takes the maximum of k×k windows.
func MaxPool2d(x *Tensor, k, s, p int64) *Tensor {
	defer func() { runtime.KeepAlive(x) }()
	var h C.tt
	check("max_pool2d", C.ts_max_pool2d(x.ptr("max_pool2d"), pair([2]int64{k, k}), pair([2]int64{s, s}), pair([2]int64{p, p}), &h))
	return wrap(h)
}

// AdaptiveAvgPool2d averages to an oh×ow output.
func AdaptiveAvgPool2d(x *Tensor, oh, ow int64) *Tensor {
	defer func() { runtime.KeepAlive(x) }()
	var h C.tt
	check("adaptive_avg_pool2d", C.ts_adaptive_avg_pool2d(x.ptr("adaptive_avg_pool2d"), C.int64_t(oh), C.int64_t(ow), &h))
	return wrap(h)
}

// GridPadding says what GridSample reads outside [-1, 1].
type GridPadding int

const (
	GridZeros GridPadding = iota
	GridBorder
	GridReflection
)

// GridSample samples NCHW x at grid [N,Ho,Wo,2] (x,y in [-1,1]); the
// tri-plane lookup of EG3D.
func GridSample(x, grid *Tensor, mode InterpMode, padding GridPadding, alignCorners bool) *Tensor {
	defer func() { runtime.KeepAlive(grid); runtime.KeepAlive(x) }()
	m := 0 // bilinear
	if mode == Nearest {
		m = 1
	} else if mode != Bilinear {
		panic(&Error{Op: "grid_sample", Msg: "mode must be Bilinear or Nearest"})
	}
	var h C.tt
	check("grid_sample", C.ts_grid_sample(x.ptr("grid_sample"), grid.ptr("grid_sample"), C.int(m), C.int(padding), cbool(alignCorners), &h))
	return wrap(h)
}

// Dropout zeroes elements with probability p when train is set (global RNG;
// seed it with ManualSeed).
func Dropout(x *Tensor, p float64, train bool) *Tensor {
	defer func() { runtime.KeepAlive(x) }()
	var h C.tt
	check("dropout", C.ts_dropout(x.ptr("dropout"), C.double(p), cbool(train), &h))
	return wrap(h)
}

// Reduction of a loss over its elements.
type Reduction int

const (
	ReduceNone Reduction = iota
	ReduceMean
	ReduceSum
)

// MSELoss is the squared error.
func MSELoss(a, b *Tensor, r Reduction) *Tensor {
	defer func() { runtime.KeepAlive(a); runtime.KeepAlive(b) }()
	var h C.tt
	check("mse_loss", C.ts_mse_loss(a.ptr("mse_loss"), b.ptr("mse_loss"), C.int(r), &h))
	return wrap(h)
}

// L1Loss is the absolute error.
func L1Loss(a, b *Tensor, r Reduction) *Tensor {
	defer func() { runtime.KeepAlive(a); runtime.KeepAlive(b) }()
	var h C.tt
	check("l1_loss", C.ts_l1_loss(a.ptr("l1_loss"), b.ptr("l1_loss"), C.int(r), &h))
	return wrap(h)
}

// CrossEntropy of logits [N,C,…] against int64 targets [N,…]; weight may be
// nil; targets equal to ignore are skipped.
func CrossEntropy(logits, target, weight *Tensor, ignore int64, smoothing float64, r Reduction) *Tensor {
	defer func() { runtime.KeepAlive(logits); runtime.KeepAlive(target); runtime.KeepAlive(weight) }()
	var h C.tt
	check("cross_entropy", C.ts_cross_entropy(logits.ptr("cross_entropy"), target.ptr("cross_entropy"), optPtr("cross_entropy", weight),
		C.int64_t(ignore), C.double(smoothing), C.int(r), &h))
	return wrap(h)
}

// BCEWithLogits is binary cross-entropy on logits x against targets y.
func BCEWithLogits(x, y *Tensor, r Reduction) *Tensor {
	defer func() { runtime.KeepAlive(x); runtime.KeepAlive(y) }()
	var h C.tt
	check("bce_with_logits", C.ts_bce_logits(x.ptr("bce_with_logits"), y.ptr("bce_with_logits"), C.int(r), &h))
	return wrap(h)
}
