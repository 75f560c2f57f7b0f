package synthface

import "math"

// vec3 is a point or direction in head space: centimetres, y up, the face
// looking along +z, the subject's left on +x (EG3D's world axes).
type vec3 struct{ x, y, z float64 }

func v3(x, y, z float64) vec3       { return vec3{x, y, z} }
func (a vec3) add(b vec3) vec3      { return vec3{a.x + b.x, a.y + b.y, a.z + b.z} }
func (a vec3) sub(b vec3) vec3      { return vec3{a.x - b.x, a.y - b.y, a.z - b.z} }
func (a vec3) mul(s float64) vec3   { return vec3{a.x * s, a.y * s, a.z * s} }
func (a vec3) dot(b vec3) float64   { return a.x*b.x + a.y*b.y + a.z*b.z }
func (a vec3) len() float64         { return math.Sqrt(a.dot(a)) }
func (a vec3) hadamard(b vec3) vec3 { return vec3{a.x * b.x, a.y * b.y, a.z * b.z} }
func (a vec3) luma() float64        { return a.dot(vec3{0.2126, 0.7152, 0.0722}) } // of linear RGB
func (a vec3) lerp(b vec3, t float64) vec3 {
	return vec3{a.x + (b.x-a.x)*t, a.y + (b.y-a.y)*t, a.z + (b.z-a.z)*t}
}
func (a vec3) cross(b vec3) vec3 {
	return vec3{a.y*b.z - a.z*b.y, a.z*b.x - a.x*b.z, a.x*b.y - a.y*b.x}
}
func (a vec3) norm() vec3 {
	l := a.len()
	if l == 0 {
		return a
	}
	return a.mul(1 / l)
}

func clamp(x, lo, hi float64) float64 {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}

func smoothstep(e0, e1, x float64) float64 {
	t := clamp((x-e0)/(e1-e0), 0, 1)
	return t * t * (3 - 2*t)
}

type primKind uint8

const (
	kindEllipsoid primKind = iota
	kindCapsule
)

// prim is one analytic surface. Ellipsoids carry an orthonormal frame so
// that a ray maps to the unit sphere in closed form; capsules are segments
// with a radius (neck, glasses temples, ponytail).
type prim struct {
	kind  primKind
	part  part
	c     vec3    // ellipsoid centre, or capsule end a
	b     vec3    // capsule end b
	r     float64 // capsule radius
	ax    [3]vec3 // ellipsoid axes (world), each divided by its radius
	radii vec3
	// accept, when set, rejects hits outside the part's real shape (eyelids,
	// lip outline, hairline); the ray then tries the far side or other prims.
	accept func(p vec3) bool
	// bound is a sphere containing the prim, for screen-space culling.
	bc vec3
	br float64
}

// ellipsoid builds an ellipsoid with radii r whose axes are rotated by
// rx (pitch about x) then ry (yaw about y) then rz (roll about z), radians.
func ellipsoid(pt part, c, r vec3, rx, ry, rz float64) prim {
	ex, ey, ez := rotAxes(rx, ry, rz)
	p := prim{kind: kindEllipsoid, part: pt, c: c, radii: r, bc: c}
	p.ax = [3]vec3{ex.mul(1 / r.x), ey.mul(1 / r.y), ez.mul(1 / r.z)}
	p.br = math.Max(r.x, math.Max(r.y, r.z))
	return p
}

func capsule(pt part, a, b vec3, r float64) prim {
	return prim{kind: kindCapsule, part: pt, c: a, b: b, r: r,
		bc: a.add(b).mul(0.5), br: b.sub(a).len()/2 + r}
}

// rotAxes returns the images of the x, y, z unit vectors under Rz·Ry·Rx.
func rotAxes(rx, ry, rz float64) (vec3, vec3, vec3) {
	rot := func(v vec3) vec3 {
		// x
		c, s := math.Cos(rx), math.Sin(rx)
		v = vec3{v.x, c*v.y - s*v.z, s*v.y + c*v.z}
		c, s = math.Cos(ry), math.Sin(ry)
		v = vec3{c*v.x + s*v.z, v.y, -s*v.x + c*v.z}
		c, s = math.Cos(rz), math.Sin(rz)
		return vec3{c*v.x - s*v.y, s*v.x + c*v.y, v.z}
	}
	return rot(vec3{1, 0, 0}), rot(vec3{0, 1, 0}), rot(vec3{0, 0, 1})
}

// local maps a world point to the ellipsoid's unit-sphere coordinates.
func (p *prim) local(w vec3) vec3 {
	d := w.sub(p.c)
	return vec3{d.dot(p.ax[0]), d.dot(p.ax[1]), d.dot(p.ax[2])}
}

// intersect returns the entry and exit distances of ray o+t·d, ok=false on a miss.
func (p *prim) intersect(o, d vec3) (t0, t1 float64, ok bool) {
	if p.kind == kindCapsule {
		return capsuleHit(o, d, p.c, p.b, p.r)
	}
	oc := o.sub(p.c)
	lo := vec3{oc.dot(p.ax[0]), oc.dot(p.ax[1]), oc.dot(p.ax[2])}
	ld := vec3{d.dot(p.ax[0]), d.dot(p.ax[1]), d.dot(p.ax[2])}
	a := ld.dot(ld)
	b := lo.dot(ld)
	c := lo.dot(lo) - 1
	disc := b*b - a*c
	if disc < 0 {
		return 0, 0, false
	}
	s := math.Sqrt(disc)
	return (-b - s) / a, (-b + s) / a, true
}

// normal is the outward unit normal at world point w on the prim's surface.
func (p *prim) normal(w vec3) vec3 {
	if p.kind == kindCapsule {
		ba := p.b.sub(p.c)
		h := clamp(w.sub(p.c).dot(ba)/ba.dot(ba), 0, 1)
		return w.sub(p.c.add(ba.mul(h))).norm()
	}
	l := p.local(w)
	return p.ax[0].mul(l.x).add(p.ax[1].mul(l.y)).add(p.ax[2].mul(l.z)).norm()
}

// field is a signed pseudo-distance (cm) from w to the surface, negative
// inside; used to blend normals across neighbouring skin prims.
func (p *prim) field(w vec3) float64 {
	if p.kind == kindCapsule {
		ba := p.b.sub(p.c)
		h := clamp(w.sub(p.c).dot(ba)/ba.dot(ba), 0, 1)
		return w.sub(p.c.add(ba.mul(h))).len() - p.r
	}
	l := p.local(w)
	return (l.len() - 1) * (p.radii.x + p.radii.y + p.radii.z) / 3
}

// capsuleHit intersects a ray with a capsule (after Inigo Quilez), returning
// only the entry distance twice: capsules here are thin and never clipped.
func capsuleHit(ro, rd, pa, pb vec3, r float64) (float64, float64, bool) {
	ba := pb.sub(pa)
	oa := ro.sub(pa)
	baba := ba.dot(ba)
	bard := ba.dot(rd)
	baoa := ba.dot(oa)
	rdoa := rd.dot(oa)
	oaoa := oa.dot(oa)
	a := baba - bard*bard
	b := baba*rdoa - baoa*bard
	c := baba*oaoa - baoa*baoa - r*r*baba
	h := b*b - a*c
	if h >= 0 && a != 0 {
		t := (-b - math.Sqrt(h)) / a
		y := baoa + t*bard
		if y > 0 && y < baba {
			return t, t, true
		}
		// caps
		oc := oa
		if y > 0 {
			oc = ro.sub(pb)
		}
		b = rd.dot(oc)
		c = oc.dot(oc) - r*r
		h = b*b - c
		if h > 0 {
			t = -b - math.Sqrt(h)
			return t, t, true
		}
	}
	return 0, 0, false
}

// hash helpers: deterministic, allocation-free noise for textures.
func hash3(x, y, z int32) float64 {
	h := uint32(x)*0x8da6b343 ^ uint32(y)*0xd8163841 ^ uint32(z)*0xcb1ab31f
	h ^= h >> 13
	h *= 0x5bd1e995
	h ^= h >> 15
	return float64(h&0xffffff) / float64(0x1000000)
}

// noise2 is smooth value noise in [0,1).
func noise2(x, y float64, seed int32) float64 {
	fx, fy := math.Floor(x), math.Floor(y)
	ix, iy := int32(fx), int32(fy)
	tx, ty := x-fx, y-fy
	tx = tx * tx * (3 - 2*tx)
	ty = ty * ty * (3 - 2*ty)
	a := hash3(ix, iy, seed)
	b := hash3(ix+1, iy, seed)
	c := hash3(ix, iy+1, seed)
	d := hash3(ix+1, iy+1, seed)
	return a + (b-a)*tx + (c-a)*ty + (a-b-c+d)*tx*ty
}
