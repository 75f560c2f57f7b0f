package vae

import (
	"math"

	"ddgi/torch"
)

// ReconLoss is the reconstruction objective: L1 plus a perceptual stand-in
// (no trained perceptual net existed when this was written): at three
// scales, (1 − SSIM) and the L1 distance between image gradients, which
// penalise the blur a pixel loss alone tolerates.
func ReconLoss(x, y *torch.Tensor) (total, l1, perceptual *torch.Tensor) {
	l1 = torch.L1Loss(x, y, torch.ReduceMean)
	perceptual = torch.Zeros(nil, torch.Float32, x.Device())
	for s := 0; s < 3; s++ {
		if s > 0 {
			x, y = torch.AvgPool2d(x, 2, 2, 0), torch.AvgPool2d(y, 2, 2, 0)
		}
		perceptual = perceptual.Add(SSIM(x, y).RSubScalar(1)).Add(gradL1(x, y))
	}
	perceptual = perceptual.DivScalar(3)
	return l1.Add(perceptual), l1, perceptual
}

// gradL1 compares horizontal and vertical finite differences.
func gradL1(x, y *torch.Tensor) *torch.Tensor {
	w, h := x.Size(3), x.Size(2)
	dx := func(t *torch.Tensor) *torch.Tensor { return t.Narrow(3, 1, w-1).Sub(t.Narrow(3, 0, w-1)) }
	dy := func(t *torch.Tensor) *torch.Tensor { return t.Narrow(2, 1, h-1).Sub(t.Narrow(2, 0, h-1)) }
	return torch.L1Loss(dx(x), dx(y), torch.ReduceMean).Add(torch.L1Loss(dy(x), dy(y), torch.ReduceMean))
}

// SSIM is the mean structural similarity of images in [-1,1] over 5×5 box
// windows (edges replicated) (Wang et al. 2004 with a box instead of a Gaussian window).
func SSIM(x, y *torch.Tensor) *torch.Tensor {
	x, y = x.AddScalar(1).MulScalar(0.5), y.AddScalar(1).MulScalar(0.5)
	const c1, c2 = 0.01 * 0.01, 0.03 * 0.03
	pool := func(t *torch.Tensor) *torch.Tensor { // edge-replicated, so any side ≥ 1 works
		return torch.AvgPool2d(t.Pad([]int64{2, 2, 2, 2}, torch.PadReplicate, 0), 5, 1, 0)
	}
	mx, my := pool(x), pool(y)
	vx := pool(x.Square()).Sub(mx.Square())
	vy := pool(y.Square()).Sub(my.Square())
	cxy := pool(x.Mul(y)).Sub(mx.Mul(my))
	num := mx.Mul(my).MulScalar(2).AddScalar(c1).Mul(cxy.MulScalar(2).AddScalar(c2))
	den := mx.Square().Add(my.Square()).AddScalar(c1).Mul(vx.Add(vy).AddScalar(c2))
	return num.Div(den).MeanAll()
}

// PSNR is the mean per-image peak signal-to-noise ratio in dB of images in
// [-1,1] (peak 1 on the [0,1] scale).
func PSNR(x, y *torch.Tensor) float64 {
	mse := x.Clamp(-1, 1).Sub(y.Clamp(-1, 1)).MulScalar(0.5).Square().Mean([]int64{1, 2, 3}, false).ClampMin(1e-10)
	return mse.Log().MulScalar(-10 / math.Ln10).MeanAll().Item()
}
