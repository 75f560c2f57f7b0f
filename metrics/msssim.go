package metrics

import (
	"math"

	"ddgi/nn"
	"ddgi/torch"
)

// MSSSIMWeights are the five scale exponents of Wang et al. 2003 (Eq. 7).
var MSSSIMWeights = []float64{0.0448, 0.2856, 0.3001, 0.2363, 0.1333}

// SSIMSigma is the Gaussian window's standard deviation (Wang et al. 2004).
const SSIMSigma = 1.5

// SSIMWindow is the Gaussian window size at a scale of the given side:
// the standard 11, shrunk to the largest odd size below the side where the
// image is smaller (64² input: 11, 11, 11, 7, 3 at 64, 32, 16, 8, 4).
func SSIMWindow(side int64) int {
	w := int(side - 1)
	if w%2 == 0 {
		w--
	}
	return max(1, min(11, w))
}

// ssimParts returns the per-image mean luminance×contrast-structure term
// and contrast-structure term (Wang et al. 2004, Eq. 13) of x, y in [0,1].
func ssimParts(x, y *torch.Tensor) (ssim, cs *torch.Tensor) {
	const c1, c2 = 0.01 * 0.01, 0.03 * 0.03
	win := nn.Gaussian1D(SSIMWindow(min(x.Size(2), x.Size(3))), SSIMSigma)
	f := func(t *torch.Tensor) *torch.Tensor { return nn.SeparableFilter(t, win, 0) }
	mx, my := f(x), f(y)
	sxx := f(x.Mul(x)).Sub(mx.Square())
	syy := f(y.Mul(y)).Sub(my.Square())
	sxy := f(x.Mul(y)).Sub(mx.Mul(my))
	csMap := sxy.MulScalar(2).AddScalar(c2).Div(sxx.Add(syy).AddScalar(c2))
	lum := mx.Mul(my).MulScalar(2).AddScalar(c1).Div(mx.Square().Add(my.Square()).AddScalar(c1))
	dims := []int64{1, 2, 3}
	return lum.Mul(csMap).Mean(dims, false), csMap.Mean(dims, false)
}

// MSSSIM is multi-scale SSIM (Wang et al. 2003, Eq. 7) of image pairs in
// [-1, 1], [N]: five scales halved by 2×2 averaging, contrast-structure at
// the first four, full SSIM at the last, negative terms clamped at zero.
// Images must be at least 32² (the coarsest scale needs 2²).
func MSSSIM(x, y *torch.Tensor) *torch.Tensor {
	x = x.AddScalar(1).MulScalar(0.5)
	y = y.AddScalar(1).MulScalar(0.5)
	var out *torch.Tensor
	for j, w := range MSSSIMWeights {
		s, cs := ssimParts(x, y)
		term := cs
		if j == len(MSSSIMWeights)-1 {
			term = s
		}
		term = term.ClampMin(0).PowScalar(w)
		if out == nil {
			out = term
		} else {
			out = out.Mul(term)
		}
		if j < len(MSSSIMWeights)-1 {
			x, y = torch.AvgPool2d(x, 2, 2, 0), torch.AvgPool2d(y, 2, 2, 0)
		}
	}
	return out
}

// SSIM is single-scale SSIM (Wang et al. 2004) of pairs in [-1,1], [N].
func SSIM(x, y *torch.Tensor) *torch.Tensor {
	s, _ := ssimParts(x.AddScalar(1).MulScalar(0.5), y.AddScalar(1).MulScalar(0.5))
	return s
}

// Mean of a slice.
func Mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / math.Max(1, float64(len(v)))
}
