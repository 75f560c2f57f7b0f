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

// Op codes shared with shim.cpp's switch statements.
const (
	opAdd = iota
	opSub
	opMul
	opDiv
	opPow
	opMaximum
	opMinimum
	opGt
	opLt
	opGe
	opLe
	opEq
	opNe
	opAnd
	opOr
	opAtan2
)

const (
	sAdd = iota
	sSub
	sMul
	sDiv
	sPow
	sClampMin
	sClampMax
	sGt
	sLt
	sGe
	sLe
	sEq
	sNe
	sRSub
	sRDiv
	sRPow
)

const (
	uNeg = iota
	uExp
	uLog
	uSqrt
	uRsqrt
	uAbs
	uSin
	uCos
	uSigmoid
	uTanh
	uRelu
	uSilu
	uGelu
	uSign
	uFloor
	uReciprocal
	uSquare
	uLog1p
	uExpm1
	uGeluTanh
	uCeil
	uRound
	uIsNaN
	uNot
	uErf
	uIsFinite
)

func binary(name string, code int, a, b *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(a); runtime.KeepAlive(b) }()
	var h C.tt
	check(name, C.ts_binary(C.int(code), a.ptr(name), b.ptr(name), &h))
	return wrap(h)
}

func scalarOp(name string, code int, a *Tensor, s float64) *Tensor {
	defer func() { runtime.KeepAlive(a) }()
	var h C.tt
	check(name, C.ts_binary_scalar(C.int(code), a.ptr(name), C.double(s), &h))
	return wrap(h)
}

func unary(name string, code int, a *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(a) }()
	var h C.tt
	check(name, C.ts_unary(C.int(code), a.ptr(name), &h))
	return wrap(h)
}

// Elementwise arithmetic with broadcasting.
func (t *Tensor) Add(o *Tensor) *Tensor     { return binary("add", opAdd, t, o) }
func (t *Tensor) Sub(o *Tensor) *Tensor     { return binary("sub", opSub, t, o) }
func (t *Tensor) Mul(o *Tensor) *Tensor     { return binary("mul", opMul, t, o) }
func (t *Tensor) Div(o *Tensor) *Tensor     { return binary("div", opDiv, t, o) }
func (t *Tensor) Pow(o *Tensor) *Tensor     { return binary("pow", opPow, t, o) }
func (t *Tensor) Maximum(o *Tensor) *Tensor { return binary("maximum", opMaximum, t, o) }
func (t *Tensor) Minimum(o *Tensor) *Tensor { return binary("minimum", opMinimum, t, o) }
func (t *Tensor) Atan2(o *Tensor) *Tensor   { return binary("atan2", opAtan2, t, o) }

// Comparisons return bool tensors.
func (t *Tensor) Gt(o *Tensor) *Tensor         { return binary("gt", opGt, t, o) }
func (t *Tensor) Lt(o *Tensor) *Tensor         { return binary("lt", opLt, t, o) }
func (t *Tensor) Ge(o *Tensor) *Tensor         { return binary("ge", opGe, t, o) }
func (t *Tensor) Le(o *Tensor) *Tensor         { return binary("le", opLe, t, o) }
func (t *Tensor) Eq(o *Tensor) *Tensor         { return binary("eq", opEq, t, o) }
func (t *Tensor) Ne(o *Tensor) *Tensor         { return binary("ne", opNe, t, o) }
func (t *Tensor) LogicalAnd(o *Tensor) *Tensor { return binary("logical_and", opAnd, t, o) }
func (t *Tensor) LogicalOr(o *Tensor) *Tensor  { return binary("logical_or", opOr, t, o) }

// Arithmetic with a scalar.
func (t *Tensor) AddScalar(s float64) *Tensor  { return scalarOp("add_scalar", sAdd, t, s) }
func (t *Tensor) SubScalar(s float64) *Tensor  { return scalarOp("sub_scalar", sSub, t, s) }
func (t *Tensor) MulScalar(s float64) *Tensor  { return scalarOp("mul_scalar", sMul, t, s) }
func (t *Tensor) DivScalar(s float64) *Tensor  { return scalarOp("div_scalar", sDiv, t, s) }
func (t *Tensor) PowScalar(s float64) *Tensor  { return scalarOp("pow_scalar", sPow, t, s) }
func (t *Tensor) ClampMin(s float64) *Tensor   { return scalarOp("clamp_min", sClampMin, t, s) }
func (t *Tensor) ClampMax(s float64) *Tensor   { return scalarOp("clamp_max", sClampMax, t, s) }
func (t *Tensor) GtScalar(s float64) *Tensor   { return scalarOp("gt_scalar", sGt, t, s) }
func (t *Tensor) LtScalar(s float64) *Tensor   { return scalarOp("lt_scalar", sLt, t, s) }
func (t *Tensor) GeScalar(s float64) *Tensor   { return scalarOp("ge_scalar", sGe, t, s) }
func (t *Tensor) LeScalar(s float64) *Tensor   { return scalarOp("le_scalar", sLe, t, s) }
func (t *Tensor) EqScalar(s float64) *Tensor   { return scalarOp("eq_scalar", sEq, t, s) }
func (t *Tensor) NeScalar(s float64) *Tensor   { return scalarOp("ne_scalar", sNe, t, s) }
func (t *Tensor) RSubScalar(s float64) *Tensor { return scalarOp("rsub_scalar", sRSub, t, s) } // s − t
func (t *Tensor) RDivScalar(s float64) *Tensor { return scalarOp("rdiv_scalar", sRDiv, t, s) } // s / t

// Unary math and activations.
func (t *Tensor) Neg() *Tensor        { return unary("neg", uNeg, t) }
func (t *Tensor) Exp() *Tensor        { return unary("exp", uExp, t) }
func (t *Tensor) Log() *Tensor        { return unary("log", uLog, t) }
func (t *Tensor) Sqrt() *Tensor       { return unary("sqrt", uSqrt, t) }
func (t *Tensor) Rsqrt() *Tensor      { return unary("rsqrt", uRsqrt, t) }
func (t *Tensor) Abs() *Tensor        { return unary("abs", uAbs, t) }
func (t *Tensor) Sin() *Tensor        { return unary("sin", uSin, t) }
func (t *Tensor) Cos() *Tensor        { return unary("cos", uCos, t) }
func (t *Tensor) Sigmoid() *Tensor    { return unary("sigmoid", uSigmoid, t) }
func (t *Tensor) Tanh() *Tensor       { return unary("tanh", uTanh, t) }
func (t *Tensor) Relu() *Tensor       { return unary("relu", uRelu, t) }
func (t *Tensor) Silu() *Tensor       { return unary("silu", uSilu, t) }
func (t *Tensor) Gelu() *Tensor       { return unary("gelu", uGelu, t) }
func (t *Tensor) GeluTanh() *Tensor   { return unary("gelu_tanh", uGeluTanh, t) }
func (t *Tensor) Sign() *Tensor       { return unary("sign", uSign, t) }
func (t *Tensor) Floor() *Tensor      { return unary("floor", uFloor, t) }
func (t *Tensor) Ceil() *Tensor       { return unary("ceil", uCeil, t) }
func (t *Tensor) Round() *Tensor      { return unary("round", uRound, t) }
func (t *Tensor) Reciprocal() *Tensor { return unary("reciprocal", uReciprocal, t) }
func (t *Tensor) Square() *Tensor     { return unary("square", uSquare, t) }
func (t *Tensor) Log1p() *Tensor      { return unary("log1p", uLog1p, t) }
func (t *Tensor) Expm1() *Tensor      { return unary("expm1", uExpm1, t) }
func (t *Tensor) Erf() *Tensor        { return unary("erf", uErf, t) }
func (t *Tensor) IsNaN() *Tensor      { return unary("isnan", uIsNaN, t) }
func (t *Tensor) IsFinite() *Tensor   { return unary("isfinite", uIsFinite, t) }
func (t *Tensor) LogicalNot() *Tensor { return unary("logical_not", uNot, t) }

// LeakyRelu is max(x, slope·x).
func (t *Tensor) LeakyRelu(slope float64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("leaky_relu", C.ts_leaky_relu(t.ptr("leaky_relu"), C.double(slope), &h))
	return wrap(h)
}

// Softplus is log(1+exp(beta·x))/beta, linear above threshold.
func (t *Tensor) Softplus(beta, threshold float64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("softplus", C.ts_softplus(t.ptr("softplus"), C.double(beta), C.double(threshold), &h))
	return wrap(h)
}

// Clamp limits values to [lo, hi].
func (t *Tensor) Clamp(lo, hi float64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("clamp", C.ts_clamp(t.ptr("clamp"), C.double(lo), C.double(hi), 1, 1, &h))
	return wrap(h)
}

// Where picks a where cond is true, else b.
func Where(cond, a, b *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(a); runtime.KeepAlive(b); runtime.KeepAlive(cond) }()
	var h C.tt
	check("where", C.ts_where(cond.ptr("where"), a.ptr("where"), b.ptr("where"), &h))
	return wrap(h)
}

// MaskedFill sets v where mask is true.
func (t *Tensor) MaskedFill(mask *Tensor, v float64) *Tensor {
	defer func() { runtime.KeepAlive(mask); runtime.KeepAlive(t) }()
	var h C.tt
	check("masked_fill", C.ts_masked_fill(t.ptr("masked_fill"), mask.ptr("masked_fill"), C.double(v), &h))
	return wrap(h)
}

// Lerp is a + w·(b − a).
func Lerp(a, b, w *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(a); runtime.KeepAlive(b); runtime.KeepAlive(w) }()
	var h C.tt
	check("lerp", C.ts_lerp(a.ptr("lerp"), b.ptr("lerp"), w.ptr("lerp"), &h))
	return wrap(h)
}

// In-place updates, for optimizers and EMA (call under NoGrad for leaves).

// AddIn sets t += alpha·o.
func (t *Tensor) AddIn(o *Tensor, alpha float64) {
	defer func() { runtime.KeepAlive(o); runtime.KeepAlive(t) }()
	check("add_", C.ts_inplace_binary(0, t.ptr("add_"), o.ptr("add_"), C.double(alpha)))
}

// MulIn sets t *= o.
func (t *Tensor) MulIn(o *Tensor) {
	defer func() { runtime.KeepAlive(o); runtime.KeepAlive(t) }()
	check("mul_", C.ts_inplace_binary(1, t.ptr("mul_"), o.ptr("mul_"), 0))
}

// LerpIn sets t += w·(o − t).
func (t *Tensor) LerpIn(o *Tensor, w float64) {
	defer func() { runtime.KeepAlive(o); runtime.KeepAlive(t) }()
	check("lerp_", C.ts_inplace_binary(3, t.ptr("lerp_"), o.ptr("lerp_"), C.double(w)))
}

// AddScalarIn sets t += s.
func (t *Tensor) AddScalarIn(s float64) {
	defer func() { runtime.KeepAlive(t) }()
	check("add_", C.ts_inplace_scalar(0, t.ptr("add_"), C.double(s)))
}

// MulScalarIn sets t *= s.
func (t *Tensor) MulScalarIn(s float64) {
	defer func() { runtime.KeepAlive(t) }()
	check("mul_", C.ts_inplace_scalar(1, t.ptr("mul_"), C.double(s)))
}

// SoftmaxIn replaces t by its softmax along dim, without a second buffer
// of t's size (an attention map at SD1.5's 64² latent is 537 MB). Not
// for tensors that autograd records: it fails on those.
func (t *Tensor) SoftmaxIn(dim int64) {
	defer func() { runtime.KeepAlive(t) }()
	check("softmax_", C.ts_softmax_(t.ptr("softmax_"), C.int64_t(dim)))
}

// FillIn sets every element to s.
func (t *Tensor) FillIn(s float64) {
	defer func() { runtime.KeepAlive(t) }()
	check("fill_", C.ts_inplace_scalar(2, t.ptr("fill_"), C.double(s)))
}

// ZeroIn sets every element to zero.
func (t *Tensor) ZeroIn() {
	defer func() { runtime.KeepAlive(t) }()
	check("zero_", C.ts_inplace_scalar(3, t.ptr("zero_"), 0))
}

// AddcmulIn sets t += v·a·b.
func (t *Tensor) AddcmulIn(a, b *Tensor, v float64) {
	defer func() { runtime.KeepAlive(a); runtime.KeepAlive(b); runtime.KeepAlive(t) }()
	check("addcmul_", C.ts_addcmul_(t.ptr("addcmul_"), a.ptr("addcmul_"), b.ptr("addcmul_"), C.double(v)))
}

// AddcdivIn sets t += v·a/b.
func (t *Tensor) AddcdivIn(a, b *Tensor, v float64) {
	defer func() { runtime.KeepAlive(a); runtime.KeepAlive(b); runtime.KeepAlive(t) }()
	check("addcdiv_", C.ts_addcdiv_(t.ptr("addcdiv_"), a.ptr("addcdiv_"), b.ptr("addcdiv_"), C.double(v)))
}

// CopyIn copies src's values into t (shapes broadcast).
func (t *Tensor) CopyIn(src *Tensor) {
	defer func() { runtime.KeepAlive(src); runtime.KeepAlive(t) }()
	check("copy_", C.ts_copy_(t.ptr("copy_"), src.ptr("copy_")))
}

// Reductions.

func reduce(name string, code int, t *Tensor, dims []int64, keep bool) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	p, n := shapeArg(dims)
	check(name, C.ts_reduce(C.int(code), t.ptr(name), p, n, cbool(keep), &h))
	return wrap(h)
}

func reduceAll(name string, code int, t *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check(name, C.ts_reduce_all(C.int(code), t.ptr(name), &h))
	return wrap(h)
}

// SumAll, MeanAll, MaxAll, MinAll reduce every element to a 0-dim tensor.
func (t *Tensor) SumAll() *Tensor  { return reduceAll("sum", 0, t) }
func (t *Tensor) MeanAll() *Tensor { return reduceAll("mean", 1, t) }
func (t *Tensor) MaxAll() *Tensor  { return reduceAll("max", 2, t) }
func (t *Tensor) MinAll() *Tensor  { return reduceAll("min", 3, t) }

// Sum, Mean, Amax, Amin reduce the given dims.
func (t *Tensor) Sum(dims []int64, keep bool) *Tensor  { return reduce("sum", 0, t, dims, keep) }
func (t *Tensor) Mean(dims []int64, keep bool) *Tensor { return reduce("mean", 1, t, dims, keep) }
func (t *Tensor) Amax(dims []int64, keep bool) *Tensor { return reduce("amax", 2, t, dims, keep) }
func (t *Tensor) Amin(dims []int64, keep bool) *Tensor { return reduce("amin", 3, t, dims, keep) }

// Prod multiplies along one dim.
func (t *Tensor) Prod(dim int64, keep bool) *Tensor {
	return reduce("prod", 4, t, []int64{dim}, keep)
}

// Var is the variance over dims.
func (t *Tensor) Var(dims []int64, unbiased, keep bool) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	p, n := shapeArg(dims)
	check("var", C.ts_var(t.ptr("var"), p, n, cbool(unbiased), cbool(keep), &h))
	return wrap(h)
}

// MaxDim returns the maxima along dim and their indices.
func (t *Tensor) MaxDim(dim int64, keep bool) (values, indices *Tensor) {
	defer func() { runtime.KeepAlive(t) }()
	var v, i C.tt
	check("max_dim", C.ts_max_dim(t.ptr("max_dim"), C.int64_t(dim), cbool(keep), &v, &i))
	return wrap(v), wrap(i)
}

// Argmax returns the index of the maximum along dim.
func (t *Tensor) Argmax(dim int64, keep bool) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("argmax", C.ts_argmax(t.ptr("argmax"), C.int64_t(dim), cbool(keep), &h))
	return wrap(h)
}

// Softmax normalises exp(x) along dim.
func (t *Tensor) Softmax(dim int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("softmax", C.ts_softmax(t.ptr("softmax"), C.int64_t(dim), &h))
	return wrap(h)
}

// LogSoftmax is log(softmax(x)) computed stably.
func (t *Tensor) LogSoftmax(dim int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("log_softmax", C.ts_log_softmax(t.ptr("log_softmax"), C.int64_t(dim), &h))
	return wrap(h)
}

// LogSumExp reduces dim stably.
func (t *Tensor) LogSumExp(dim int64, keep bool) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("logsumexp", C.ts_logsumexp(t.ptr("logsumexp"), C.int64_t(dim), cbool(keep), &h))
	return wrap(h)
}

// Cumsum is the running sum along dim.
func (t *Tensor) Cumsum(dim int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("cumsum", C.ts_cumsum(t.ptr("cumsum"), C.int64_t(dim), &h))
	return wrap(h)
}

// Cumprod is the running product along dim.
func (t *Tensor) Cumprod(dim int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("cumprod", C.ts_cumprod(t.ptr("cumprod"), C.int64_t(dim), &h))
	return wrap(h)
}

// Norm is the p-norm over dims.
func (t *Tensor) Norm(p float64, dims []int64, keep bool) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	dp, n := shapeArg(dims)
	check("norm", C.ts_norm(t.ptr("norm"), C.double(p), dp, n, cbool(keep), &h))
	return wrap(h)
}

// Shape manipulation.

// Reshape returns a tensor with the same data and a new shape (-1 infers).
func (t *Tensor) Reshape(shape ...int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	p, n := shapeArg(shape)
	check("reshape", C.ts_reshape(t.ptr("reshape"), p, n, &h))
	return wrap(h)
}

// Permute reorders dimensions.
func (t *Tensor) Permute(dims ...int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	p, n := shapeArg(dims)
	check("permute", C.ts_permute(t.ptr("permute"), p, n, &h))
	return wrap(h)
}

// Transpose swaps two dimensions.
func (t *Tensor) Transpose(d0, d1 int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("transpose", C.ts_transpose(t.ptr("transpose"), C.int64_t(d0), C.int64_t(d1), &h))
	return wrap(h)
}

// Expand broadcasts size-1 dims to shape without copying (-1 keeps).
func (t *Tensor) Expand(shape ...int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	p, n := shapeArg(shape)
	check("expand", C.ts_expand(t.ptr("expand"), p, n, &h))
	return wrap(h)
}

// Repeat tiles the tensor.
func (t *Tensor) Repeat(reps ...int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	p, n := shapeArg(reps)
	check("repeat", C.ts_repeat(t.ptr("repeat"), p, n, &h))
	return wrap(h)
}

// Squeeze removes dim if it has size 1.
func (t *Tensor) Squeeze(dim int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("squeeze", C.ts_squeeze(t.ptr("squeeze"), C.int64_t(dim), &h))
	return wrap(h)
}

// Unsqueeze inserts a size-1 dim.
func (t *Tensor) Unsqueeze(dim int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("unsqueeze", C.ts_unsqueeze(t.ptr("unsqueeze"), C.int64_t(dim), &h))
	return wrap(h)
}

// Flatten merges dims start..end.
func (t *Tensor) Flatten(start, end int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("flatten", C.ts_flatten(t.ptr("flatten"), C.int64_t(start), C.int64_t(end), &h))
	return wrap(h)
}

func handles(op string, ts []*Tensor) []C.tt {
	if len(ts) == 0 {
		panic(&Error{Op: op, Msg: "no tensors"})
	}
	hs := make([]C.tt, len(ts))
	for i, t := range ts {
		hs[i] = t.ptr(op)
	}
	return hs
}

// handleArray copies handles into C memory: cgo forbids passing Go memory
// that holds pointers, even C ones.
func handleArray(hs []C.tt) (*C.tt, func()) {
	p := (*C.tt)(C.malloc(C.size_t(len(hs)) * C.size_t(unsafe.Sizeof(C.tt(nil)))))
	copy(unsafe.Slice(p, len(hs)), hs)
	return p, func() { C.free(unsafe.Pointer(p)) }
}

// Cat joins tensors along dim.
func Cat(ts []*Tensor, dim int64) *Tensor {
	defer func() { runtime.KeepAlive(ts) }()
	arr, free := handleArray(handles("cat", ts))
	defer free()
	var h C.tt
	check("cat", C.ts_cat(arr, C.int(len(ts)), C.int64_t(dim), &h))
	return wrap(h)
}

// Stack joins tensors along a new dim.
func Stack(ts []*Tensor, dim int64) *Tensor {
	defer func() { runtime.KeepAlive(ts) }()
	arr, free := handleArray(handles("stack", ts))
	defer free()
	var h C.tt
	check("stack", C.ts_stack(arr, C.int(len(ts)), C.int64_t(dim), &h))
	return wrap(h)
}

// Split cuts t along dim into pieces of the given sizes.
func (t *Tensor) Split(sizes []int64, dim int64) []*Tensor {
	defer func() { runtime.KeepAlive(t) }()
	if len(sizes) == 0 {
		panic(&Error{Op: "split", Msg: "no sizes"})
	}
	out := (*C.tt)(C.calloc(C.size_t(len(sizes)), C.size_t(unsafe.Sizeof(C.tt(nil)))))
	defer C.free(unsafe.Pointer(out))
	p, n := shapeArg(sizes)
	check("split", C.ts_split(t.ptr("split"), p, n, C.int64_t(dim), out))
	res := make([]*Tensor, len(sizes))
	for i, h := range unsafe.Slice(out, len(sizes)) {
		res[i] = wrap(h)
	}
	return res
}

// Chunk splits dim into n equal pieces (dim size must divide).
func (t *Tensor) Chunk(n int, dim int64) []*Tensor {
	size := t.Size(int(dim))
	if n <= 0 || size%int64(n) != 0 {
		panic(&Error{Op: "chunk", Msg: "dim size does not divide into the chunk count"})
	}
	sizes := make([]int64, n)
	for i := range sizes {
		sizes[i] = size / int64(n)
	}
	return t.Split(sizes, dim)
}

// Slice takes start:end:step along dim (negative indices count from the end).
func (t *Tensor) Slice(dim, start, end, step int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("slice", C.ts_slice(t.ptr("slice"), C.int64_t(dim), C.int64_t(start), C.int64_t(end), C.int64_t(step), &h))
	return wrap(h)
}

// Narrow takes length elements from start along dim.
func (t *Tensor) Narrow(dim, start, length int64) *Tensor {
	return t.Slice(dim, start, start+length, 1)
}

// Select takes index i along dim and drops the dim.
func (t *Tensor) Select(dim, i int64) *Tensor {
	if i < 0 {
		i += t.Size(int(dim))
	}
	return t.Slice(dim, i, i+1, 1).Squeeze(dim)
}

// IndexSelect picks entries idx (int64) along dim.
func (t *Tensor) IndexSelect(dim int64, idx *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(idx); runtime.KeepAlive(t) }()
	var h C.tt
	check("index_select", C.ts_index_select(t.ptr("index_select"), C.int64_t(dim), idx.ptr("index_select"), &h))
	return wrap(h)
}

// Gather takes values at idx along dim.
func (t *Tensor) Gather(dim int64, idx *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(idx); runtime.KeepAlive(t) }()
	var h C.tt
	check("gather", C.ts_gather(t.ptr("gather"), C.int64_t(dim), idx.ptr("gather"), &h))
	return wrap(h)
}

// ScatterAdd adds src into t at idx along dim (out of place).
func (t *Tensor) ScatterAdd(dim int64, idx, src *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(idx); runtime.KeepAlive(src); runtime.KeepAlive(t) }()
	var h C.tt
	check("scatter_add", C.ts_scatter_add(t.ptr("scatter_add"), C.int64_t(dim), idx.ptr("scatter_add"), src.ptr("scatter_add"), &h))
	return wrap(h)
}

// Flip reverses the given dims.
func (t *Tensor) Flip(dims ...int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	p, n := shapeArg(dims)
	check("flip", C.ts_flip(t.ptr("flip"), p, n, &h))
	return wrap(h)
}

// PadMode selects how Pad fills the border.
type PadMode int

const (
	PadConstant PadMode = iota
	PadReflect
	PadReplicate
)

// Pad pads the last dims: pads = (left, right, top, bottom, …) as in torch.
func (t *Tensor) Pad(pads []int64, mode PadMode, value float64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	p, n := shapeArg(pads)
	check("pad", C.ts_pad(t.ptr("pad"), p, n, C.int(mode), C.double(value), &h))
	return wrap(h)
}

// OneHot turns int64 class indices into a trailing one-hot dim.
func OneHot(idx *Tensor, classes int64) *Tensor {
	defer func() { runtime.KeepAlive(idx) }()
	var h C.tt
	check("one_hot", C.ts_one_hot(idx.ptr("one_hot"), C.int64_t(classes), &h))
	return wrap(h)
}

// Embedding looks up rows of weight.
func Embedding(weight, idx *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(idx); runtime.KeepAlive(weight) }()
	var h C.tt
	check("embedding", C.ts_embedding(weight.ptr("embedding"), idx.ptr("embedding"), &h))
	return wrap(h)
}

// SearchSorted finds insertion indices of values in sorted rows (for
// inverse-CDF importance sampling).
func SearchSorted(sorted, values *Tensor, right bool) *Tensor {
	defer func() { runtime.KeepAlive(sorted); runtime.KeepAlive(values) }()
	var h C.tt
	check("searchsorted", C.ts_searchsorted(sorted.ptr("searchsorted"), values.ptr("searchsorted"), cbool(right), &h))
	return wrap(h)
}

// Tril keeps the lower triangle (below diagonal + diag).
func (t *Tensor) Tril(diag int64) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("tril", C.ts_tril(t.ptr("tril"), C.int64_t(diag), &h))
	return wrap(h)
}

// Linear algebra.

// Matmul is numpy-style matrix product with batch broadcasting.
func (t *Tensor) Matmul(o *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(o); runtime.KeepAlive(t) }()
	var h C.tt
	check("matmul", C.ts_matmul(t.ptr("matmul"), o.ptr("matmul"), &h))
	return wrap(h)
}

// Bmm is a batched matrix product of [B,n,m]×[B,m,p].
func Bmm(a, b *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(a); runtime.KeepAlive(b) }()
	var h C.tt
	check("bmm", C.ts_bmm(a.ptr("bmm"), b.ptr("bmm"), &h))
	return wrap(h)
}

// Linear is x·wᵀ + b (b may be nil). For inference (fp32 CPU operands,
// nothing recorded) the product runs on ddgi's own kernel where the CPU has
// AVX-512 (dot products of rows of x and w, 1.3–2× OpenBLAS's Haswell
// kernels on CLIP's and SD1.5's shapes), else for few rows split over the
// threads by blocks of w's rows (OpenBLAS's own split of such shapes is
// 1.2–1.4× slower on 2 cores). DDGI_GEMM=cblas keeps OpenBLAS, =blas
// leaves everything to libtorch.
func Linear(x, w, b *Tensor) *Tensor {
	defer func() { runtime.KeepAlive(b); runtime.KeepAlive(w); runtime.KeepAlive(x) }()
	var h C.tt
	check("linear", C.ts_linear(x.ptr("linear"), w.ptr("linear"), optPtr("linear", b), &h))
	return wrap(h)
}

// Attention is softmax(q·kᵀ)·v for each of heads heads, with q [B,N,H·d]
// already scaled by 1/√d and k, v [B,M,H·d]; it returns [B,N,H·d] and,
// with wantProbs, the probabilities [B,H,N,M] (the same result either
// way). Without them the map is never made whole: tiles of rows are
// scored, softmaxed and multiplied while they sit in cache, side by side
// on the intra-op threads. For inference only: fp32 CPU tensors that
// autograd does not record (FusedAttention says whether a call would
// take it).
func Attention(q, k, v *Tensor, heads int64, wantProbs bool) (out, probs *Tensor) {
	defer func() { runtime.KeepAlive(q); runtime.KeepAlive(k); runtime.KeepAlive(v) }()
	var h, hp C.tt
	pp := (*C.tt)(nil)
	if wantProbs {
		pp = &hp
	}
	check("attention", C.ts_attention(q.ptr("attention"), k.ptr("attention"), v.ptr("attention"), C.int64_t(heads), &h, pp))
	out = wrap(h)
	if wantProbs {
		probs = wrap(hp)
	}
	return out, probs
}

// Linear's kernels, as counted by linearCalls (for tests).
const (
	linearLibtorch = iota
	linearCBLAS
	linearDot
)

// linearCalls counts Linear's calls that took a kernel of ddgi's own.
func linearCalls(kernel int) int64 { return int64(C.ts_linear_calls(C.int(kernel))) }

// LinearKernel names what runs Linear's inference products here: "dot
// (AVX-512)" (ddgi's own), "cblas (split by columns)" or "libtorch", as the
// CPU and DDGI_GEMM decide.
func LinearKernel() string {
	switch setLinearKernel(-1) {
	case linearDot:
		return "dot (AVX-512)"
	case linearCBLAS:
		if attentionReady() {
			return "cblas (split by columns)"
		}
	}
	return "libtorch"
}

// setLinearKernel makes Linear use kernel (linearDot falls back to
// linearCBLAS without AVX-512; -1 changes nothing) and returns the kernel
// chosen before.
func setLinearKernel(kernel int) int { return int(C.ts_linear_kernel(C.int(kernel))) }

// FusedAttention reports whether Attention serves these operands: fp32 on
// the CPU, nothing recorded by autograd, OpenBLAS's cblas_sgemm found and
// DDGI_GEMM not set to "blas".
func FusedAttention(q, k, v *Tensor) bool {
	if !attentionReady() {
		return false
	}
	for _, t := range []*Tensor{q, k, v} {
		if t.DType() != Float32 || t.Device() != CPU || t.RequiresGrad() {
			return false
		}
	}
	return true
}

// Einsum contracts tensors by an Einstein-summation equation.
func Einsum(eq string, ts ...*Tensor) *Tensor {
	defer func() { runtime.KeepAlive(ts) }()
	arr, free := handleArray(handles("einsum", ts))
	defer free()
	ceq := C.CString(eq)
	defer C.free(unsafe.Pointer(ceq))
	var h C.tt
	check("einsum", C.ts_einsum(ceq, arr, C.int(len(ts)), &h))
	return wrap(h)
}
