package synthface

import (
	"math"
	"sort"
)

// Scribble draws a PiDiNet-like edge map of an RGB image (size×size): thin,
// slightly broken white strokes (255) on black, from image gradients with
// non-maximum suppression and hysteresis, so it holds texture edges (teeth,
// nostrils, hair strands) as well as part boundaries.
func Scribble(img []uint8, size int) []uint8 {
	n := size * size
	out := make([]uint8, n)
	if size < 3 || len(img) < n*3 {
		return out
	}
	// Luminance with a light blur so grain and hair texture don't dominate.
	lum := make([]float64, n)
	for i := 0; i < n; i++ {
		lum[i] = 0.3*float64(img[3*i]) + 0.59*float64(img[3*i+1]) + 0.11*float64(img[3*i+2])
	}
	lum = blur3(blur3(lum, size), size)
	if size >= 192 {
		lum = blur3(lum, size)
	}
	mag := make([]float64, n)
	dir := make([]uint8, n)
	at := func(x, y int) float64 {
		x = min(max(x, 0), size-1)
		y = min(max(y, 0), size-1)
		return lum[y*size+x]
	}
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			gx := at(x+1, y-1) + 2*at(x+1, y) + at(x+1, y+1) - at(x-1, y-1) - 2*at(x-1, y) - at(x-1, y+1)
			gy := at(x-1, y+1) + 2*at(x, y+1) + at(x+1, y+1) - at(x-1, y-1) - 2*at(x, y-1) - at(x+1, y-1)
			i := y*size + x
			mag[i] = math.Hypot(gx, gy)
			// Quantise the gradient direction to 0°, 45°, 90°, 135°.
			a := math.Atan2(gy, gx)
			if a < 0 {
				a += math.Pi
			}
			dir[i] = uint8(int(math.Round(a/(math.Pi/4))) % 4)
		}
	}
	thin := make([]float64, n)
	offs := [4][2]int{{1, 0}, {1, 1}, {0, 1}, {-1, 1}}
	for y := 1; y < size-1; y++ {
		for x := 1; x < size-1; x++ {
			i := y*size + x
			o := offs[dir[i]]
			if mag[i] >= mag[i+o[1]*size+o[0]] && mag[i] > mag[i-o[1]*size-o[0]] {
				thin[i] = mag[i]
			}
		}
	}
	// Thresholds adapt to the image: keep roughly the strongest edges.
	vals := make([]float64, 0, n/4)
	for _, m := range thin {
		if m > 0 {
			vals = append(vals, m)
		}
	}
	if len(vals) == 0 {
		return out
	}
	sort.Float64s(vals)
	hi := math.Max(vals[len(vals)*70/100], 40)
	lo := math.Max(vals[len(vals)*45/100], 20)
	stack := make([]int, 0, 256)
	for i, m := range thin {
		if m >= hi && out[i] == 0 {
			out[i] = 255
			stack = append(stack[:0], i)
			for len(stack) > 0 {
				j := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				jx, jy := j%size, j/size
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						xx, yy := jx+dx, jy+dy
						if xx < 0 || yy < 0 || xx >= size || yy >= size {
							continue
						}
						k := yy*size + xx
						if out[k] == 0 && thin[k] >= lo {
							out[k] = 255
							stack = append(stack, k)
						}
					}
				}
			}
		}
	}
	// Small gaps, as a sketching hand or PiDiNet leaves them.
	cell := float64(size) / 10
	for i := range out {
		if out[i] != 0 && noise2(float64(i%size)/cell*1.7, float64(i/size)/cell*1.7, 77) < 0.18 {
			out[i] = 0
		}
	}
	if size >= 256 { // PiDiNet strokes are ~2 px wide at 512
		thick := make([]uint8, n)
		copy(thick, out)
		for y := 0; y < size-1; y++ {
			for x := 0; x < size-1; x++ {
				if out[y*size+x] != 0 {
					thick[y*size+x+1], thick[(y+1)*size+x] = 255, 255
				}
			}
		}
		out = thick
	}
	return out
}

// blur3 is a 3×3 binomial blur with clamped borders.
func blur3(src []float64, size int) []float64 {
	tmp := make([]float64, len(src))
	dst := make([]float64, len(src))
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			l, r := max(x-1, 0), min(x+1, size-1)
			tmp[y*size+x] = 0.25*src[y*size+l] + 0.5*src[y*size+x] + 0.25*src[y*size+r]
		}
	}
	for y := 0; y < size; y++ {
		u, d := max(y-1, 0), min(y+1, size-1)
		for x := 0; x < size; x++ {
			dst[y*size+x] = 0.25*tmp[u*size+x] + 0.5*tmp[y*size+x] + 0.25*tmp[d*size+x]
		}
	}
	return dst
}
