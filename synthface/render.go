package synthface

import (
	"math"
)

// Face is one rendered sample. Image is H*W*3 RGB, Mask and Scribble are
// H*W (labels, 0/255 strokes), Depth is camera-space z in world units with 0
// for background, all row-major with H = W = Size.
type Face struct {
	Size     int
	Image    []uint8
	Mask     []uint8
	Scribble []uint8
	Depth    []float32
	Captions []string
	// Attrs are the parameters' attributes corrected for what the render
	// shows: an accessory hidden by hair or the view is reported false.
	Attrs  Attributes
	Params Params
}

// Supersampling per axis: 64² and below need 3×3 to keep 1-pixel features
// (irises, brows) stable; larger sizes look clean at 2×2.
func superSamples(size int) int {
	if size <= 64 {
		return 3
	}
	return 2
}

const tileSize = 8

// view is the camera expressed in head-space centimetres.
type view struct {
	pos              vec3
	right, down, fwd vec3
	fx, fy, cx, cy   float64 // in render pixels
	res              int
}

func newView(c Camera, res int) view {
	col := func(j int) vec3 { return v3(c.CamToWorld[0][j], c.CamToWorld[1][j], c.CamToWorld[2][j]) }
	return view{
		pos:   col(3).mul(1 / worldPerCm),
		right: col(0), down: col(1), fwd: col(2),
		fx: c.Fx * float64(res), fy: c.Fy * float64(res),
		cx: c.Cx * float64(res), cy: c.Cy * float64(res), res: res,
	}
}

func (v *view) ray(px, py float64) vec3 {
	x := (px - v.cx) / v.fx
	y := (py - v.cy) / v.fy
	return v.right.mul(x).add(v.down.mul(y)).add(v.fwd).norm()
}

// tiles lists, per screen tile, the prims whose bounding sphere touches it.
func (s *scene) tiles(v *view) (lists [][]uint16, nt int) {
	nt = (v.res + tileSize - 1) / tileSize
	lists = make([][]uint16, nt*nt)
	for i := range s.prims {
		p := &s.prims[i]
		d := p.bc.sub(v.pos)
		x, y, z := d.dot(v.right), d.dot(v.down), d.dot(v.fwd)
		r := p.br * 1.02
		x0, x1, y0, y1 := 0, nt-1, 0, nt-1
		if z-r > 0.5 {
			bound := func(c float64, f, cc float64) (int, int) {
				lo := (c - r) / (z + r)
				if c-r < 0 {
					lo = (c - r) / (z - r)
				}
				hi := (c + r) / (z - r)
				if c+r < 0 {
					hi = (c + r) / (z + r)
				}
				a := int(math.Floor((f*lo + cc - 1) / tileSize))
				b := int(math.Floor((f*hi + cc + 1) / tileSize))
				return max(a, 0), min(b, nt-1)
			}
			x0, x1 = bound(x, v.fx, v.cx)
			y0, y1 = bound(y, v.fy, v.cy)
		}
		for ty := y0; ty <= y1; ty++ {
			for tx := x0; tx <= x1; tx++ {
				lists[ty*nt+tx] = append(lists[ty*nt+tx], uint16(i))
			}
		}
	}
	return lists, nt
}

type hit struct {
	idx    int // prim index, -1 for background
	t      float64
	inside bool
}

// trace finds the nearest accepted surface along o+t·d beyond tmin.
func (s *scene) trace(o, d vec3, list []uint16, tmin float64, skipLens bool) hit {
	h := hit{idx: -1, t: math.Inf(1)}
	for _, i := range list {
		p := &s.prims[i]
		if skipLens && (p.part == partLensL || p.part == partLensR) {
			continue
		}
		t0, t1, ok := p.intersect(o, d)
		if !ok || t1 <= tmin || t0 >= h.t {
			continue
		}
		if t0 > tmin && (p.accept == nil || p.accept(o.add(d.mul(t0)))) {
			h = hit{idx: int(i), t: t0}
			continue
		}
		if p.accept != nil && t1 < h.t && p.accept(o.add(d.mul(t1))) {
			h = hit{idx: int(i), t: t1, inside: true}
		}
	}
	return h
}

// Render draws p at size×size with supersampling and returns the image,
// its exact mask, scribble, depth and captions. size < 1 gives an empty Face.
func Render(p Params, size int) *Face {
	f := &Face{Size: max(size, 0), Params: p}
	if size < 1 {
		return f
	}
	ss := superSamples(size)
	res := size * ss
	sc := buildScene(&p)
	v := newView(p.Camera, res)
	lists, nt := sc.tiles(&v)
	sh := newShader(sc, &v)

	n := res * res
	col := make([]vec3, n)
	lab := make([]uint8, n)
	dep := make([]float64, n)
	for py := 0; py < res; py++ {
		for px := 0; px < res; px++ {
			i := py*res + px
			d := v.ray(float64(px)+0.5, float64(py)+0.5)
			list := lists[(py/tileSize)*nt+px/tileSize]
			h := sc.trace(v.pos, d, list, 1e-3, false)
			if h.idx < 0 {
				col[i] = sh.background(float64(px)/float64(res), float64(py)/float64(res))
				continue
			}
			c, l := sh.shade(h, v.pos, d, list)
			col[i], lab[i] = c, l
			dep[i] = h.t * d.dot(v.fwd)
		}
	}
	ambientOcclusion(col, lab, dep, res, ss)

	f.Image = make([]uint8, size*size*3)
	f.Mask = make([]uint8, size*size)
	f.Depth = make([]float32, size*size)
	var counts [NumClasses]int
	inv := 1 / float64(ss*ss)
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			var acc vec3
			counts = [NumClasses]int{}
			dmin := math.Inf(1)
			for j := 0; j < ss; j++ {
				for k := 0; k < ss; k++ {
					i := (y*ss+j)*res + x*ss + k
					acc = acc.add(col[i])
					counts[lab[i]]++
					if dep[i] > 0 && dep[i] < dmin {
						dmin = dep[i]
					}
				}
			}
			best := 0
			for c := 1; c < NumClasses; c++ {
				if counts[c] > counts[best] {
					best = c
				}
			}
			o := y*size + x
			f.Mask[o] = uint8(best)
			if best != Background && !math.IsInf(dmin, 1) {
				f.Depth[o] = float32(dmin * worldPerCm)
			}
			acc = acc.mul(inv)
			f.Image[3*o] = toSRGB(acc.x)
			f.Image[3*o+1] = toSRGB(acc.y)
			f.Image[3*o+2] = toSRGB(acc.z)
		}
	}
	if p.Attrs.Blurry {
		blurRGB(f.Image, size, max(1, size/64))
	}
	addGrain(f.Image, p.Seed)
	f.Attrs = artAttrs(visibleAttrs(p.Attrs, f.Mask), p.Art)
	f.Scribble = Scribble(f.Image, size) // of the render, before the drawing styles' ink
	artFinish(f.Image, f.Mask, size, p.Art)
	f.Captions = artCaptions(Captions(f.Attrs, p.Seed), p.Art, p.Seed)
	return f
}

// toSRGB maps linear light through a gamma-2 curve (cheap, close to sRGB).
func toSRGB(x float64) uint8 {
	if x <= 0 {
		return 0
	}
	y := math.Sqrt(x) * 255
	if y >= 255 {
		return 255
	}
	return uint8(y + 0.5)
}

// ambientOcclusion darkens pixels lying behind their surroundings (depth
// unsharp masking): creases, eye sockets, skin under hair.
func ambientOcclusion(col []vec3, lab []uint8, dep []float64, res, ss int) {
	far := 0.0
	for _, d := range dep {
		far = math.Max(far, d)
	}
	far += 20
	// Summed-area table of depth, background pushed far away.
	w := res + 1
	sat := make([]float64, w*w)
	for y := 0; y < res; y++ {
		row := 0.0
		for x := 0; x < res; x++ {
			d := dep[y*res+x]
			if lab[y*res+x] == Background {
				d = far
			}
			row += d
			sat[(y+1)*w+x+1] = sat[y*w+x+1] + row
		}
	}
	r := max(2, res/24)
	for y := 0; y < res; y++ {
		y0, y1 := max(0, y-r), min(res, y+r+1)
		for x := 0; x < res; x++ {
			i := y*res + x
			if lab[i] == Background {
				continue
			}
			x0, x1 := max(0, x-r), min(res, x+r+1)
			sum := sat[y1*w+x1] - sat[y0*w+x1] - sat[y1*w+x0] + sat[y0*w+x0]
			mean := sum / float64((y1-y0)*(x1-x0))
			occ := clamp((dep[i]-mean)*0.15, 0, 0.5)
			col[i] = col[i].mul(1 - occ)
		}
	}
}

// blurRGB applies a separable box blur of radius r, in place.
func blurRGB(img []uint8, size, r int) {
	tmp := make([]uint8, len(img))
	pass := func(src, dst []uint8, dx, dy int) {
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				for c := 0; c < 3; c++ {
					s, n := 0, 0
					for k := -r; k <= r; k++ {
						xx, yy := x+k*dx, y+k*dy
						if xx < 0 || yy < 0 || xx >= size || yy >= size {
							continue
						}
						s += int(src[(yy*size+xx)*3+c])
						n++
					}
					dst[(y*size+x)*3+c] = uint8(s / n)
				}
			}
		}
	}
	pass(img, tmp, 1, 0)
	pass(tmp, img, 0, 1)
}

// addGrain adds ±2 levels of deterministic sensor noise.
func addGrain(img []uint8, seed int64) {
	s := int32(seed)
	for i := range img {
		g := int(hash3(int32(i), s, 91)*5) - 2
		img[i] = uint8(min(255, max(0, int(img[i])+g)))
	}
}

// visibleAttrs clears accessory flags whose classes the render does not show.
func visibleAttrs(a Attributes, mask []uint8) Attributes {
	var n [NumClasses]int
	for _, c := range mask {
		n[c]++
	}
	if n[EyeG] == 0 {
		a.Eyeglasses, a.Sunglasses = false, false
	}
	if n[Hat] == 0 {
		a.WearingHat = false
	}
	if n[EarR] == 0 {
		a.WearingEarrings = false
	}
	if n[NeckL] == 0 {
		a.WearingNecklace = false
	}
	if n[Mouth] == 0 {
		a.TeethShown = false
	}
	return a
}
