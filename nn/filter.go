package nn

import (
	"math"

	"ddgi/torch"
)

// Gaussian1D is a normalised Gaussian window of odd size.
func Gaussian1D(size int, sigma float64) []float32 {
	w := make([]float32, size)
	var sum float64
	for i := range w {
		d := float64(i - size/2)
		g := math.Exp(-d * d / (2 * sigma * sigma))
		w[i] = float32(g)
		sum += g
	}
	for i := range w {
		w[i] /= float32(sum)
	}
	return w
}

// SeparableFilter convolves each channel of x with the 1-D window along
// both axes; pad adds reflect padding of that many pixels first.
func SeparableFilter(x *torch.Tensor, win []float32, pad int64) *torch.Tensor {
	c, k := x.Size(1), int64(len(win))
	if pad > 0 {
		x = x.Pad([]int64{pad, pad, pad, pad}, torch.PadReflect, 0)
	}
	h := torch.FromFloat32(win, 1, 1, 1, k).Expand(c, 1, 1, k).Contiguous()
	v := h.Reshape(c, 1, k, 1)
	x = torch.Conv2d(x, h, nil, torch.ConvOpts{Groups: c})
	return torch.Conv2d(x, v, nil, torch.ConvOpts{Groups: c})
}

// Blur is a Gaussian blur of std sigma pixels keeping the size.
func Blur(x *torch.Tensor, sigma float64) *torch.Tensor {
	if sigma <= 0 {
		return x
	}
	r := int(math.Ceil(3 * sigma))
	r = min(r, int(x.Size(2))-1)
	return SeparableFilter(x, Gaussian1D(2*r+1, sigma), int64(r))
}
