package nn

import (
	"fmt"
	"math"

	"ddgi/torch"
)

// MultiHeadAttention is scaled dot-product attention with separate query,
// key, value and output projections. Tensors: to_q, to_k, to_v (no bias) and
// to_out (with bias), named as in diffusers' Attention.
type MultiHeadAttention struct {
	Q, K, V, Out *Linear
	Heads        int64
	Dim          int64
}

// NewMultiHeadAttention registers attention from queries of width qdim to a
// context of width cdim (cdim = qdim for self-attention), with heads heads
// over an inner width dim.
func NewMultiHeadAttention(p Path, qdim, cdim, dim, heads int64) *MultiHeadAttention {
	if dim%heads != 0 {
		panic(fmt.Sprintf("nn: attention width %d not divisible by %d heads", dim, heads))
	}
	return &MultiHeadAttention{
		Q:     NewLinear(p.Sub("to_q"), qdim, dim, LinearOpts{NoBias: true}),
		K:     NewLinear(p.Sub("to_k"), cdim, dim, LinearOpts{NoBias: true}),
		V:     NewLinear(p.Sub("to_v"), cdim, dim, LinearOpts{NoBias: true}),
		Out:   NewLinear(p.Sub("to_out"), dim, qdim, LinearOpts{}),
		Heads: heads,
		Dim:   dim,
	}
}

// Forward attends from x [B,N,qdim] to context [B,M,cdim] (nil: x itself).
// mask, if given, is a bool tensor broadcastable to [B,heads,N,M] that is
// true where attention is forbidden. It returns the output [B,N,qdim] and,
// when wantProbs is set, the attention probabilities [B,heads,N,M]
// (each row sums to 1 over the M keys: the paper's cross-attention maps).
func (a *MultiHeadAttention) Forward(x, context, mask *torch.Tensor, wantProbs bool) (out, probs *torch.Tensor) {
	if context == nil {
		context = x
	}
	b, n := x.Size(0), x.Size(1)
	m := context.Size(1)
	hd := a.Dim / a.Heads
	split := func(t *torch.Tensor, l int64) *torch.Tensor {
		return t.Reshape(b, l, a.Heads, hd).Permute(0, 2, 1, 3) // B,H,L,hd
	}
	// The 1/√d scale goes on q [B,H,N,hd] rather than on the [B,H,N,M]
	// scores: at SD1.5's 64² latent a self-attention map is 537 MB a
	// sample, and scaling it was a fresh map and a pass over it per layer
	// (5.7 of the 45 CPU-seconds of a full-size generate). Equal up to
	// rounding (LDM scales the scores).
	scale := 1 / math.Sqrt(float64(hd))
	q, k, v := a.Q.Forward(x), a.K.Forward(context), a.V.Forward(context)
	if mask == nil && torch.FusedAttention(q, k, v) {
		// Inference: the map is made a tile at a time (whole only when the
		// caller keeps it), the same result either way.
		q.MulScalarIn(scale)
		o, p := torch.Attention(q, k, v, a.Heads, wantProbs)
		q.Free()
		k.Free()
		v.Free()
		return a.Out.Forward(o), p
	}
	return a.attend(split(q, n).MulScalar(scale), split(k, m), split(v, m), mask, b, n, wantProbs)
}

// attend is Forward's product on split heads q [B,H,N,hd], k, v [B,H,M,hd],
// with the map made whole.
func (a *MultiHeadAttention) attend(q, k, v, mask *torch.Tensor, b, n int64, wantProbs bool) (out, probs *torch.Tensor) {
	// The maps are freed as soon as the next exists (autograd keeps what
	// it saved); a scope would hold each until it closes.
	scores := q.Matmul(k.Transpose(2, 3))
	if mask != nil {
		masked := scores.MaskedFill(mask, math.Inf(-1))
		scores.Free()
		scores = masked
	}
	var p *torch.Tensor
	if scores.RequiresGrad() {
		p = scores.Softmax(-1)
		scores.Free()
	} else {
		// Inference: the map becomes its own softmax. A fresh 537 MB map a
		// 64² layer was 5.6 of a generate's 32 CPU-seconds, mostly faulting
		// in new pages.
		scores.SoftmaxIn(-1)
		p = scores
	}
	o := p.Matmul(v).Permute(0, 2, 1, 3).Reshape(b, n, a.Dim)
	if wantProbs {
		probs = p
	} else {
		p.Free()
	}
	return a.Out.Forward(o), probs
}

// CausalMask is true above the diagonal: token i may not see j > i (CLIP's
// text encoder).
func CausalMask(n int64, dev torch.Device) *torch.Tensor {
	return torch.Ones([]int64{n, n}, torch.Float32, dev).Tril(0).EqScalar(0)
}
