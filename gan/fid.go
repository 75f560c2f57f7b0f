package gan

import "ddgi/torch"

// PixelFeatureSide is the side to which PixelFeatures area-downsamples
// images: 8×8×3 = 192 features.
const PixelFeatureSide = 8

// PixelFeatures area-downsamples images [N,3,H,W] in [-1,1] to 8×8 and
// flattens them: the features of the pixel-statistics FID (fed to
// metrics.FID), used where ddgi's FID network (auxnets "fid") is absent.
func PixelFeatures(img *torch.Tensor) [][]float64 {
	n := img.Size(0)
	x := torch.Interpolate(img, PixelFeatureSide, PixelFeatureSide, torch.Area, false).Reshape(n, -1)
	d := int(x.Size(1))
	v := x.Float64s()
	out := make([][]float64, n)
	for i := range out {
		out[i] = v[i*d : (i+1)*d]
	}
	return out
}
