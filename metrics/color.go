package metrics

import "math"

// SRGBToLab converts an sRGB colour (components in [0,1]) to CIE L*a*b*
// under D65, the space in which colour differences are roughly perceptual:
// the controllability report measures hair colour in it.
func SRGBToLab(r, g, b float64) [3]float64 {
	lin := func(c float64) float64 {
		c = min(max(c, 0), 1)
		if c <= 0.04045 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	rl, gl, bl := lin(r), lin(g), lin(b)
	// sRGB → XYZ (D65), normalised by the white point.
	x := (0.4124564*rl + 0.3575761*gl + 0.1804375*bl) / 0.95047
	y := 0.2126729*rl + 0.7151522*gl + 0.0721750*bl
	z := (0.0193339*rl + 0.1191920*gl + 0.9503041*bl) / 1.08883
	f := func(t float64) float64 {
		const d = 6.0 / 29
		if t > d*d*d {
			return math.Cbrt(t)
		}
		return t/(3*d*d) + 4.0/29
	}
	fx, fy, fz := f(x), f(y), f(z)
	return [3]float64{116*fy - 16, 500 * (fx - fy), 200 * (fy - fz)}
}

// RegionMeanLab is the mean L*a*b* colour of the pixels of one image whose
// label is class. img is [3,H,W] in [-1,1] (channel-major, as tensors hold
// it); labels is [H,W]. ok is false when no pixel has the label.
func RegionMeanLab(img []float32, labels []int64, class int64) (lab [3]float64, ok bool) {
	hw := len(labels)
	if len(img) != 3*hw {
		return lab, false
	}
	n := 0
	for i, l := range labels {
		if l != class {
			continue
		}
		c := SRGBToLab(float64(img[i]+1)/2, float64(img[hw+i]+1)/2, float64(img[2*hw+i]+1)/2)
		for k := range lab {
			lab[k] += c[k]
		}
		n++
	}
	if n == 0 {
		return lab, false
	}
	for k := range lab {
		lab[k] /= float64(n)
	}
	return lab, true
}
