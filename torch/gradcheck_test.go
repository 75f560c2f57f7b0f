package torch

import (
	"fmt"
	"math"
	"testing"
)

// gradCheck compares autograd gradients of sum(f(inputs)·r) (r a fixed
// random projection) with central finite differences in float64.
func gradCheck(t *testing.T, name string, f func(in []*Tensor) *Tensor, inputs ...*Tensor) {
	t.Helper()
	s := NewScope()
	defer s.Close()
	g := NewGenerator(7)
	var proj *Tensor
	scalar := func(in []*Tensor) *Tensor {
		out := f(in)
		if out.DType() != Float64 {
			panic(fmt.Sprintf("%s: output dtype %v", name, out.DType()))
		}
		if proj == nil {
			proj = Randn(g, out.Shape(), Float64, CPU)
		}
		return out.Mul(proj).SumAll()
	}
	for _, x := range inputs {
		x.SetRequiresGrad(true)
	}
	analytic := Grad([]*Tensor{scalar(inputs)}, inputs, GradOpts{})
	const eps = 1e-6
	for k, x := range inputs {
		vals := x.Detach().Float64s()
		shape := x.Shape()
		ga := analytic[k].Float64s()
		for i := range vals {
			eval := func(d float64) float64 {
				v := append([]float64(nil), vals...)
				v[i] += d
				in := append([]*Tensor(nil), inputs...)
				in[k] = FromFloat64(v, shape...)
				var r float64
				r = scalar(in).Item()
				return r
			}
			num := (eval(eps) - eval(-eps)) / (2 * eps)
			if diff := math.Abs(num - ga[i]); diff > 1e-5+1e-4*math.Abs(num) {
				t.Errorf("%s: input %d element %d: analytic %.8f numeric %.8f", name, k, i, ga[i], num)
				return
			}
		}
	}
}

func rnd(seed uint64, shape ...int64) *Tensor {
	return Randn(NewGenerator(seed), shape, Float64, CPU)
}

// positive returns values in [0.5, 1.5] for ops defined on positives.
func positive(seed uint64, shape ...int64) *Tensor {
	return Rand(NewGenerator(seed), shape, Float64, CPU).AddScalar(0.5)
}

func TestGradCheck(t *testing.T) {
	x := func() *Tensor { return rnd(1, 2, 3) }
	y := func() *Tensor { return rnd(2, 2, 3) }
	cases := []struct {
		name string
		f    func(in []*Tensor) *Tensor
		in   []*Tensor
	}{
		{"add", func(in []*Tensor) *Tensor { return in[0].Add(in[1]) }, []*Tensor{x(), rnd(2, 3)}},
		{"sub", func(in []*Tensor) *Tensor { return in[0].Sub(in[1]) }, []*Tensor{x(), y()}},
		{"mul", func(in []*Tensor) *Tensor { return in[0].Mul(in[1]) }, []*Tensor{x(), y()}},
		{"div", func(in []*Tensor) *Tensor { return in[0].Div(in[1]) }, []*Tensor{x(), positive(3, 2, 3)}},
		{"pow", func(in []*Tensor) *Tensor { return in[0].Pow(in[1]) }, []*Tensor{positive(4, 2, 3), y()}},
		{"maximum", func(in []*Tensor) *Tensor { return in[0].Maximum(in[1]) }, []*Tensor{x(), y()}},
		{"scalar ops", func(in []*Tensor) *Tensor {
			return in[0].AddScalar(1).MulScalar(3).DivScalar(2).SubScalar(0.5).RSubScalar(2).PowScalar(2)
		}, []*Tensor{x()}},
		{"exp", func(in []*Tensor) *Tensor { return in[0].Exp() }, []*Tensor{x()}},
		{"log", func(in []*Tensor) *Tensor { return in[0].Log() }, []*Tensor{positive(5, 2, 3)}},
		{"sqrt", func(in []*Tensor) *Tensor { return in[0].Sqrt() }, []*Tensor{positive(5, 2, 3)}},
		{"rsqrt", func(in []*Tensor) *Tensor { return in[0].Rsqrt() }, []*Tensor{positive(5, 2, 3)}},
		{"sin cos", func(in []*Tensor) *Tensor { return in[0].Sin().Add(in[0].Cos()) }, []*Tensor{x()}},
		{"sigmoid", func(in []*Tensor) *Tensor { return in[0].Sigmoid() }, []*Tensor{x()}},
		{"tanh", func(in []*Tensor) *Tensor { return in[0].Tanh() }, []*Tensor{x()}},
		{"silu", func(in []*Tensor) *Tensor { return in[0].Silu() }, []*Tensor{x()}},
		{"gelu", func(in []*Tensor) *Tensor { return in[0].Gelu() }, []*Tensor{x()}},
		{"gelu tanh", func(in []*Tensor) *Tensor { return in[0].GeluTanh() }, []*Tensor{x()}},
		{"leaky relu", func(in []*Tensor) *Tensor { return in[0].LeakyRelu(0.2) }, []*Tensor{x()}},
		{"softplus", func(in []*Tensor) *Tensor { return in[0].Softplus(1, 20) }, []*Tensor{x()}},
		{"square abs", func(in []*Tensor) *Tensor { return in[0].Square().Add(in[0].Abs()) }, []*Tensor{x()}},
		{"clamp", func(in []*Tensor) *Tensor { return in[0].Clamp(-0.5, 0.5) }, []*Tensor{x()}},
		{"where", func(in []*Tensor) *Tensor { return Where(in[0].GtScalar(0), in[0], in[1]) }, []*Tensor{x(), y()}},
		{"sum mean", func(in []*Tensor) *Tensor {
			return in[0].Sum([]int64{1}, true).Add(in[0].Mean([]int64{0}, false))
		}, []*Tensor{x()}},
		{"amax", func(in []*Tensor) *Tensor { return in[0].Amax([]int64{1}, false) }, []*Tensor{x()}},
		{"var", func(in []*Tensor) *Tensor { return in[0].Var([]int64{1}, false, true) }, []*Tensor{x()}},
		{"norm", func(in []*Tensor) *Tensor { return in[0].Norm(2, []int64{1}, false) }, []*Tensor{x()}},
		{"softmax", func(in []*Tensor) *Tensor { return in[0].Softmax(-1) }, []*Tensor{x()}},
		{"log softmax", func(in []*Tensor) *Tensor { return in[0].LogSoftmax(1) }, []*Tensor{x()}},
		{"logsumexp", func(in []*Tensor) *Tensor { return in[0].LogSumExp(1, false) }, []*Tensor{x()}},
		{"cumsum", func(in []*Tensor) *Tensor { return in[0].Cumsum(1) }, []*Tensor{x()}},
		{"cumprod", func(in []*Tensor) *Tensor { return in[0].Cumprod(1) }, []*Tensor{x()}},
		{"prod", func(in []*Tensor) *Tensor { return in[0].Prod(1, false) }, []*Tensor{x()}},
		{"reshape permute", func(in []*Tensor) *Tensor {
			return in[0].Reshape(3, 2).Permute(1, 0).Transpose(0, 1).Flatten(0, 1).Unsqueeze(0)
		}, []*Tensor{x()}},
		{"expand repeat", func(in []*Tensor) *Tensor {
			return in[0].Unsqueeze(0).Expand(2, 2, 3).Repeat(1, 2, 1)
		}, []*Tensor{x()}},
		{"cat stack", func(in []*Tensor) *Tensor {
			return Cat([]*Tensor{in[0], in[1]}, 1).Add(Stack([]*Tensor{in[0], in[1]}, 2).Reshape(2, 6))
		}, []*Tensor{x(), y()}},
		{"split slice", func(in []*Tensor) *Tensor {
			p := in[0].Split([]int64{1, 2}, 1)
			return p[0].Mul(p[1].Slice(1, 0, 2, 2)).Add(in[0].Narrow(1, 1, 1)).Add(in[0].Select(1, -1).Unsqueeze(1))
		}, []*Tensor{x()}},
		{"index gather", func(in []*Tensor) *Tensor {
			idx := FromInt64([]int64{2, 0, 2}, 3)
			gi := FromInt64([]int64{0, 1, 1, 2, 0, 0}, 2, 3)
			return in[0].IndexSelect(1, idx).Add(in[0].Gather(1, gi))
		}, []*Tensor{x()}},
		{"scatter add flip", func(in []*Tensor) *Tensor {
			gi := FromInt64([]int64{0, 1, 1, 2, 0, 0}, 2, 3)
			return in[0].ScatterAdd(1, gi, in[1]).Flip(0, 1)
		}, []*Tensor{x(), y()}},
		{"pad", func(in []*Tensor) *Tensor {
			return in[0].Reshape(1, 1, 2, 3).Pad([]int64{1, 1, 1, 0}, PadReflect, 0).Pad([]int64{1, 2, 0, 0}, PadConstant, 0.5)
		}, []*Tensor{x()}},
		{"embedding", func(in []*Tensor) *Tensor {
			return Embedding(in[0], FromInt64([]int64{1, 0, 1}, 3))
		}, []*Tensor{x()}},
		{"matmul", func(in []*Tensor) *Tensor { return in[0].Matmul(in[1].Transpose(0, 1)) }, []*Tensor{x(), y()}},
		{"bmm", func(in []*Tensor) *Tensor { return Bmm(in[0], in[1]) }, []*Tensor{rnd(3, 2, 2, 3), rnd(4, 2, 3, 2)}},
		{"linear", func(in []*Tensor) *Tensor { return Linear(in[0], in[1], in[2]) }, []*Tensor{x(), rnd(5, 4, 3), rnd(6, 4)}},
		{"einsum", func(in []*Tensor) *Tensor { return Einsum("bij,bjk->bik", in[0], in[1]) }, []*Tensor{rnd(3, 2, 2, 3), rnd(4, 2, 3, 2)}},
		{"conv2d", func(in []*Tensor) *Tensor {
			return Conv2d(in[0], in[1], in[2], ConvOpts{Stride: [2]int64{2, 1}, Padding: [2]int64{1, 1}})
		}, []*Tensor{rnd(7, 1, 2, 5, 5), rnd(8, 3, 2, 3, 3), rnd(9, 3)}},
		{"grouped conv2d", func(in []*Tensor) *Tensor {
			return Conv2d(in[0], in[1], nil, ConvOpts{Padding: [2]int64{1, 1}, Groups: 2})
		}, []*Tensor{rnd(7, 1, 4, 4, 4), rnd(8, 2, 2, 3, 3)}},
		{"conv transpose2d", func(in []*Tensor) *Tensor {
			return ConvTranspose2d(in[0], in[1], in[2], ConvOpts{Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}, OutputPadding: [2]int64{1, 1}})
		}, []*Tensor{rnd(7, 1, 2, 3, 3), rnd(8, 2, 3, 3, 3), rnd(9, 3)}},
		{"group norm", func(in []*Tensor) *Tensor { return GroupNorm(in[0], 2, in[1], in[2], 1e-5) }, []*Tensor{rnd(7, 2, 4, 3, 3), rnd(8, 4), rnd(9, 4)}},
		{"layer norm", func(in []*Tensor) *Tensor { return LayerNorm(in[0], []int64{3}, in[1], in[2], 1e-5) }, []*Tensor{x(), rnd(8, 3), rnd(9, 3)}},
		{"interpolate bilinear", func(in []*Tensor) *Tensor { return Interpolate(in[0], 5, 7, Bilinear, false) }, []*Tensor{rnd(7, 1, 2, 3, 4)}},
		{"interpolate nearest", func(in []*Tensor) *Tensor { return Interpolate(in[0], 6, 8, Nearest, false) }, []*Tensor{rnd(7, 1, 2, 3, 4)}},
		{"avg pool", func(in []*Tensor) *Tensor { return AvgPool2d(in[0], 2, 2, 0) }, []*Tensor{rnd(7, 1, 2, 4, 4)}},
		{"max pool", func(in []*Tensor) *Tensor { return MaxPool2d(in[0], 2, 2, 0) }, []*Tensor{rnd(7, 1, 2, 4, 4)}},
		{"adaptive avg pool", func(in []*Tensor) *Tensor { return AdaptiveAvgPool2d(in[0], 1, 1) }, []*Tensor{rnd(7, 1, 2, 4, 4)}},
		{"grid sample", func(in []*Tensor) *Tensor {
			return GridSample(in[0], in[1].Tanh().MulScalar(0.9), Bilinear, GridZeros, false)
		},
			[]*Tensor{rnd(7, 1, 2, 4, 4), rnd(8, 1, 3, 3, 2)}},
		{"mse l1", func(in []*Tensor) *Tensor {
			return MSELoss(in[0], in[1], ReduceMean).Add(L1Loss(in[0], in[1], ReduceSum))
		}, []*Tensor{x(), y()}},
		{"cross entropy", func(in []*Tensor) *Tensor {
			return CrossEntropy(in[0], FromInt64([]int64{2, 0}, 2), nil, -100, 0.1, ReduceMean)
		}, []*Tensor{x()}},
		{"bce logits", func(in []*Tensor) *Tensor { return BCEWithLogits(in[0], in[1].Sigmoid(), ReduceMean) }, []*Tensor{x(), y()}},
		{"lerp", func(in []*Tensor) *Tensor { return Lerp(in[0], in[1], Full([]int64{1}, 0.3, Float64, CPU)) }, []*Tensor{x(), y()}},
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) { gradCheck(t, c.name, c.f, c.in...) })
	}
}

// TestDoubleBackwardConv checks a gradient of a gradient through conv2d,
// the R1 penalty's path: d/dw ‖∂(sum conv(x,w)·r)/∂x‖².
func TestDoubleBackwardConv(t *testing.T) {
	x := rnd(11, 1, 2, 5, 5)
	r := rnd(12, 1, 3, 5, 5)
	penalty := func(in []*Tensor) *Tensor {
		xx := in[0].Detach().SetRequiresGrad(true)
		out := Conv2d(xx, in[1], nil, Same(1, 1)).LeakyRelu(0.2).Mul(r).SumAll()
		g := Grad([]*Tensor{out}, []*Tensor{xx}, GradOpts{CreateGraph: true})[0]
		return g.Square().SumAll().Reshape(1)
	}
	gradCheck(t, "r1 conv", func(in []*Tensor) *Tensor { return penalty([]*Tensor{x, in[0]}) }, rnd(13, 3, 2, 3, 3))
}
