// Package plot draws training curves (loss against step) as small PNGs, so
// every run folder holds a picture of how training went.
package plot

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"sort"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"ddgi/internal/imageio"
)

// Series is one named curve.
type Series struct {
	Name string
	X, Y []float64
}

var palette = []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}}

// Lines renders the series into a w×h image with axes, tick labels and a
// legend. logY plots log10 of positive values.
func Lines(title string, series []Series, w, h int, logY bool) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	const left, right, top, bottom = 60, 12, 22, 28
	x0, x1, y0, y1 := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	tr := func(v float64) float64 {
		if logY {
			if v <= 0 {
				return math.NaN()
			}
			return math.Log10(v)
		}
		return v
	}
	for _, s := range series {
		for i := range s.X {
			y := tr(s.Y[i])
			if math.IsNaN(y) || math.IsInf(y, 0) {
				continue
			}
			x0, x1 = math.Min(x0, s.X[i]), math.Max(x1, s.X[i])
			y0, y1 = math.Min(y0, y), math.Max(y1, y)
		}
	}
	label(img, left, 14, title, color.Black)
	if math.IsInf(x0, 0) {
		label(img, left, h/2, "no data", color.Black)
		return img
	}
	if x1 == x0 {
		x1 = x0 + 1
	}
	if y1 == y0 {
		y0, y1 = y0-1, y1+1
	}
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	px := func(x float64) int { return left + int((x-x0)/(x1-x0)*pw) }
	py := func(y float64) int { return top + int((y1-y)/(y1-y0)*ph) }
	grey := color.RGBA{200, 200, 200, 255}
	for i := 0; i <= 4; i++ {
		yv := y0 + (y1-y0)*float64(i)/4
		yy := py(yv)
		hline(img, left, w-right, yy, grey)
		txt := fmt.Sprintf("%.3g", yv)
		if logY {
			txt = fmt.Sprintf("%.2g", math.Pow(10, yv))
		}
		label(img, 2, yy+4, txt, color.Black)
		xv := x0 + (x1-x0)*float64(i)/4
		label(img, px(xv)-10, h-8, fmt.Sprintf("%.4g", xv), color.Black)
	}
	vline(img, left, top, h-bottom, color.Black)
	hline(img, left, w-right, h-bottom, color.Black)
	for k, s := range series {
		c := palette[k%len(palette)]
		px0, py0, ok := 0, 0, false
		for i := range s.X {
			y := tr(s.Y[i])
			if math.IsNaN(y) || math.IsInf(y, 0) {
				ok = false
				continue
			}
			cx, cy := px(s.X[i]), py(y)
			if ok {
				line(img, px0, py0, cx, cy, c)
			} else {
				img.Set(cx, cy, c)
			}
			px0, py0, ok = cx, cy, true
		}
		ly := top + 12 + 13*k
		hline(img, w-right-110, w-right-96, ly-4, c)
		label(img, w-right-92, ly, s.Name, c)
	}
	return img
}

// Smooth returns an exponential moving average of ys (0 < beta < 1), which
// makes noisy GAN losses readable.
func Smooth(ys []float64, beta float64) []float64 {
	out := make([]float64, len(ys))
	var m float64
	for i, y := range ys {
		if i == 0 {
			m = y
		} else {
			m = beta*m + (1-beta)*y
		}
		out[i] = m
	}
	return out
}

// SaveLosses writes one curve per key of a step log (as read back from a
// run's log.jsonl) to path, smoothed, sorted by key.
func SaveLosses(path, title string, steps []float64, values map[string][]float64) error {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ss []Series
	for _, k := range keys {
		ss = append(ss, Series{Name: k, X: steps, Y: Smooth(values[k], 0.9)})
	}
	return imageio.SavePNG(path, Lines(title, ss, 640, 360, false))
}

func label(img *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	for x := x0; x <= x1; x++ {
		img.Set(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	for y := y0; y <= y1; y++ {
		img.Set(x, y, c)
	}
}

// line draws with Bresenham's algorithm.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
