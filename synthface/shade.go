package synthface

import "math"

// shader holds the per-render lighting setup.
type shader struct {
	s                 *scene
	v                 *view
	ldir              vec3
	lcol, sky, ground vec3
	hairLin, browLin  vec3
	skinLin           vec3
	skinLuma          float64 // the sculpture styles' reference brightness
	fineHair          float64 // strand frequency scale, higher at larger sizes
}

func lin(c [3]float64) vec3 { return vec3{c[0] * c[0], c[1] * c[1], c[2] * c[2]} }

func newShader(s *scene, v *view) *shader {
	l := &s.p.Light
	sh := &shader{s: s, v: v,
		ldir:    v3(l.Dir[0], l.Dir[1], l.Dir[2]).norm(),
		lcol:    lin(l.Color).mul(l.Intensity),
		sky:     lin(l.Ambient),
		ground:  lin(l.Ground),
		skinLin: lin(s.p.Identity.Skin),
	}
	hc := s.p.Style.HairColor
	if s.p.Attrs.Bald {
		hc = s.p.Identity.BrowColor
	}
	sh.skinLuma = sh.skinLin.luma()
	sh.hairLin = lin(hc)
	sh.browLin = lin(mix3(s.p.Identity.BrowColor, hc, 0.4)).mul(0.7)
	sh.fineHair = float64(v.res) / 128
	return sh
}

type material struct {
	albedo vec3
	wrap   float64 // wrap lighting, a cheap subsurface look
	spec   float64
	shiny  float64
	metal  bool // highlights take the albedo's colour
}

// light applies the key light, hemispherical ambient and Blinn-Phong.
func (sh *shader) light(m material, n, d vec3) vec3 {
	art := sh.s.p.Art
	if art == ArtStatue || art == ArtBronze {
		m = sh.artMaterial(m)
	}
	ndl := n.dot(sh.ldir)
	diff := math.Max(0, (ndl+m.wrap)/(1+m.wrap))
	t := 0.5 + 0.5*n.y
	amb := sh.ground.lerp(sh.sky, t)
	if art == ArtCartoon {
		diff, amb = toonBand(diff), sh.ground.lerp(sh.sky, 0.5)
	}
	c := m.albedo.hadamard(amb.add(sh.lcol.mul(diff)))
	if m.spec > 0 && ndl > 0 {
		hv := sh.ldir.sub(d).norm()
		s := m.spec * math.Pow(math.Max(0, n.dot(hv)), m.shiny)
		if art == ArtCartoon {
			s = 0.6 * m.spec * float64(btoi(s > 0.4*m.spec)) // one hard highlight
		}
		hl := sh.lcol.mul(s)
		if m.metal {
			hl = hl.hadamard(m.albedo.mul(1.6))
		}
		c = c.add(hl)
	}
	return c
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (sh *shader) background(u, v float64) vec3 {
	st := &sh.s.p.Style
	top, bot := lin(st.BgTop), lin(st.BgBottom)
	c := top.lerp(bot, v)
	b := noise2(u*3, v*3, st.BgSeed)
	return sh.artBackground(c.mul(0.8 + 0.4*b))
}

// shade returns the linear colour and mask class of a hit.
func (sh *shader) shade(h hit, o, d vec3, list []uint16) (vec3, uint8) {
	s := sh.s
	p := &s.prims[h.idx]
	q := o.add(d.mul(h.t))
	n := p.normal(q)
	if h.inside {
		n = n.mul(-1)
	}
	if p.part.blends() {
		n = sh.blendNormal(q, n)
	}
	switch p.part {
	case partHead:
		return sh.skin(q, n, d)
	case partNose:
		m := material{albedo: sh.skinTint(q), wrap: 0.35, spec: 0.08, shiny: 24}
		// Nostrils: dark ovals on the underside.
		for _, sx := range []float64{-1, 1} {
			dx, dy := (q.x-sx*0.55*s.p.Identity.NoseWidth)/0.45, (q.y-s.noseBaseY-0.3)/0.3
			if dx*dx+dy*dy < 1 && n.y < 0.1 {
				m.albedo = m.albedo.mul(0.15)
			}
		}
		return sh.light(m, n, d), Nose
	case partEyeL, partEyeR:
		return sh.eye(p, q, n, d)
	case partEarL, partEarR:
		m := material{albedo: sh.skinLin.hadamard(v3(1.0, 0.9, 0.88)), wrap: 0.5, spec: 0.04, shiny: 16}
		l := p.local(q)
		if math.Abs(l.x) < 0.96 && l.y*l.y+l.z*l.z < 0.5 { // concha shadow
			m.albedo = m.albedo.mul(0.6)
		}
		if p.part == partEarL {
			return sh.light(m, n, d), LEar
		}
		return sh.light(m, n, d), REar
	case partLips:
		return sh.lips(q, n, d)
	case partBeard:
		return sh.light(material{albedo: sh.facialHair(q, 1), wrap: 0.2}, sh.hairNormal(q, n), d), Skin
	case partHair:
		return sh.hair(q, n, d), Hair
	case partHat:
		st := &s.p.Style
		k := 0.85 + 0.15*noise2(q.x*3, q.y*3+q.z*2, 5)
		return sh.light(material{albedo: lin(st.HatColor).mul(k), wrap: 0.1, spec: 0.03, shiny: 8}, n, d), Hat
	case partLensL, partLensR:
		return sh.lens(p, q, n, d, o, list)
	case partFrame:
		return sh.light(material{albedo: lin(s.p.Style.GlassesRim), spec: 0.5, shiny: 40}, n, d), EyeG
	case partEarring:
		return sh.light(material{albedo: lin(s.p.Style.MetalColor), spec: 1.2, shiny: 50}, n, d), EarR
	case partNeck:
		if c, ok := sh.necklace(q, n, d); ok {
			return c, NeckL
		}
		m := material{albedo: sh.skinLin.mul(0.92), wrap: 0.35, spec: 0.04, shiny: 16}
		return sh.light(m, n, d), Neck
	case partTorso:
		return sh.torso(q, n, d)
	}
	return v3(1, 0, 1), Background
}

// blendNormal smooths creases between overlapping skin prims by averaging
// nearby surfaces' normals, weighted by how close q is to each.
func (sh *shader) blendNormal(q, n vec3) vec3 {
	acc := n
	for i := range sh.s.prims {
		p := &sh.s.prims[i]
		if !p.part.blends() || p.accept != nil {
			continue
		}
		if q.sub(p.bc).len() > p.br+2.5 {
			continue
		}
		f := p.field(q)
		if f < -2.5 || f > 2.5 {
			continue
		}
		w := 1 - math.Abs(f)/2.5
		acc = acc.add(p.normal(q).mul(w * w))
	}
	return acc.norm()
}

// skinTint varies the base skin: warmer cheeks, nose and lips area.
func (sh *shader) skinTint(q vec3) vec3 {
	s := sh.s
	c := sh.skinLin
	red := 0.0
	for _, sx := range []float64{-1, 1} {
		dx, dy := q.x-sx*3.8, q.y+2.2
		red += math.Exp(-(dx*dx + dy*dy) / 3.5)
	}
	red *= 0.05 + 0.35*s.p.Style.Blush
	c = c.lerp(c.hadamard(v3(1.1, 0.55, 0.6)), red)
	return c.mul(0.96 + 0.06*noise2(q.x*1.3, q.y*1.3, 11))
}

func (sh *shader) skin(q, n, d vec3) (vec3, uint8) {
	s := sh.s
	id, a, st := &s.p.Identity, &s.p.Attrs, &s.p.Style
	if lab, ok := sh.brow(q); ok {
		return sh.light(material{albedo: sh.browLin.mul(0.8 + 0.4*noise2(q.x*8, q.y*2, 2)), wrap: 0.3}, n, d), lab
	}
	m := material{albedo: sh.skinTint(q), wrap: 0.35, spec: 0.06, shiny: 20}
	front := q.z > s.eyeZ-2.5
	// Eye surroundings: socket shade, lash line, shadow makeup, bags.
	for _, sx := range []float64{-1, 1} {
		if !front {
			break
		}
		u, v := s.eyeUV(q, sx*s.eyeX, sx)
		if math.Abs(u) > 1.5 || v > 2.5 || v < -2.2 {
			continue
		}
		k := math.Max(0, 1-u*u)
		upper := s.eyeUp * math.Pow(k, 0.75)
		if math.Abs(u) < 1.08 && v > upper-0.05 && v < upper+0.22+0.12*k {
			m.albedo = m.albedo.mul(0.18) // lashes
			continue
		}
		if a.HeavyMakeup && v > upper && v < upper+1.1 && math.Abs(u) < 1.2 {
			m.albedo = m.albedo.lerp(lin(st.EyeShadow), 0.5*(1-smoothstep(0.3, 1.1, v-upper)))
		}
		lower := -s.eyeLo * math.Pow(k, 0.9)
		if v < lower && v > lower-0.9 && math.Abs(u) < 1.1 {
			if id.EyeBags > 0.4 {
				m.albedo = m.albedo.mul(1 - 0.25*id.EyeBags*(1-smoothstep(0, 0.9, lower-v)))
			}
			if v > lower-0.12 {
				m.albedo = m.albedo.mul(0.7)
			}
		}
		// Socket: a soft darkening around the eye.
		r2 := u*u*0.6 + (v*v)/4
		m.albedo = m.albedo.mul(0.85 + 0.15*smoothstep(0.2, 1.2, r2))
	}
	// Laugh lines and forehead wrinkles with age or a smile.
	if front && (id.Age > 0.45 || s.smile > 0.5) {
		for _, sx := range []float64{-1, 1} {
			t := (s.noseBaseY + 0.3 - q.y) / (s.noseBaseY + 0.3 - (s.mouthY - 0.7))
			if t > 0 && t < 1 {
				x := sx * (1.8*id.NoseWidth + t*(s.mouthW+0.3-1.8*id.NoseWidth) + 0.5*math.Sin(t*math.Pi))
				if math.Abs(q.x-x) < 0.12 {
					m.albedo = m.albedo.mul(0.8)
				}
			}
		}
	}
	// Facial hair.
	if !a.NoBeard || a.Sideburns || a.FiveOClockShadow {
		if amt := sh.facialHairAmount(q); amt > 0 {
			m.albedo = m.albedo.lerp(sh.facialHair(q, amt), amt)
			n = sh.hairNormal(q, n).lerp(n, 1-amt).norm()
		}
	}
	return sh.light(m, n, d), Skin
}

// brow reports whether q lies on an eyebrow and which one.
func (sh *shader) brow(q vec3) (uint8, bool) {
	s := sh.s
	id := &s.p.Identity
	if q.z < s.eyeZ-2 || math.Abs(q.y-s.browY) > 2.2 {
		return 0, false
	}
	inner := 1.1
	length := s.eyeX + s.eyeW + 0.55 - inner
	t := (math.Abs(q.x) - inner) / length
	if t < 0 || t > 1 {
		return 0, false
	}
	arch := 0.12 + 0.4*id.BrowArch
	yc := s.browY + arch*math.Exp(-(t-0.6)*(t-0.6)/0.12) - 0.35*t*t
	th := id.BrowThickness * (0.66 - 0.34*t) * smoothstep(0, 0.1, t)
	if id.BrowThickness > 1.25 {
		th *= 1 + 0.3*noise2(q.x*5, q.y*5, 4)
	}
	if math.Abs(q.y-yc) > th/2 {
		return 0, false
	}
	if q.x > 0 {
		return LBrow, true
	}
	return RBrow, true
}

// facialHairAmount is the coverage (0…1) of beard, moustache, goatee,
// sideburns or stubble at q.
func (sh *shader) facialHairAmount(q vec3) float64 {
	s := sh.s
	a := &s.p.Attrs
	if q.z < -1.5 {
		return 0
	}
	ax := math.Abs(q.x)
	_, top, bot, _, _, onLip := s.lipCurves(q.x)
	amt := 0.0
	if a.Beard && s.beardRegion(q) {
		amt = 1
	}
	if a.Mustache && q.z > 6 && ax < s.mouthW+0.5 && q.y < s.noseBaseY-0.15 && (!onLip || q.y > top) && q.y > s.mouthY-0.2-0.9*smoothstep(s.mouthW-0.6, s.mouthW+0.4, ax) {
		amt = 1
	}
	if a.Goatee && q.z > 5 && ax < 1.9-0.3*(q.y-s.mouthY)*0 && q.y < s.mouthY-0.2 && (!onLip || q.y < bot) {
		amt = 1
	}
	if a.Sideburns && ax > 5.6 && q.z > -1.8 && q.z < 3 && q.y < s.eyeY+1.6 && q.y > s.earY-2.5 {
		amt = 1
	}
	if amt == 0 && a.FiveOClockShadow && s.beardRegion(q) {
		amt = 0.4 * (0.6 + 0.4*noise2(q.x*9, q.y*9, 8))
	}
	return amt
}

func (sh *shader) facialHair(q vec3, amt float64) vec3 {
	base := sh.hairLin
	if sh.s.p.Attrs.Bald || sh.s.p.Attrs.WearingHat {
		base = sh.browLin
	}
	k := 0.6 + 0.5*noise2(q.x*6*sh.fineHair, q.y*3*sh.fineHair, 12)
	return base.mul(k)
}

// hairNormal perturbs n to suggest strands.
func (sh *shader) hairNormal(q, n vec3) vec3 {
	f := 4 * sh.fineHair
	return n.add(v3(noise2(q.x*f, q.z*f, 21)-0.5, 0, noise2(q.y*f, q.x*f, 22)-0.5).mul(0.5)).norm()
}

func (sh *shader) hair(q, n, d vec3) vec3 {
	s := sh.s
	st := &s.p.Style
	phi := math.Atan2(q.x-st.HairPart*2, q.z+2)
	freq := 22 * math.Max(1, sh.fineHair)
	wave := 0.0
	if s.p.Attrs.WavyHair {
		wave = 0.5 * math.Sin(q.y*1.4+phi*3)
	}
	strand := noise2(phi*freq+wave*3, q.y*0.6, st.HairSeed)
	clump := noise2(phi*5+wave, q.y*0.25, st.HairSeed+1)
	k := 0.55 + 0.35*strand + 0.3*clump
	// Parting line: a thin dark groove on top.
	if math.Abs(q.x-st.HairPart*2) < 0.18 && q.y > s.crc.y+2 && q.z > s.crc.z-2 && !s.p.Attrs.Bangs {
		k *= 0.5
	}
	m := material{albedo: sh.hairLin.mul(k), wrap: 0.15, spec: 0.12 + 0.2*sh.hairLin.y, shiny: 12}
	nn := n.add(v3(math.Cos(phi), 0, -math.Sin(phi)).mul((strand - 0.5) * 0.8)).norm()
	return sh.light(m, nn, d)
}

func (sh *shader) eye(p *prim, q, n, d vec3) (vec3, uint8) {
	s := sh.s
	st := &s.p.Style
	dir := q.sub(p.c).norm()
	gaze := v3(st.GazeX, st.GazeY, 1).norm()
	ca := dir.dot(gaze)
	sx := 1.0
	if p.part == partEyeR {
		sx = -1
	}
	u, v := s.eyeUV(q, sx*s.eyeX, sx)
	white := lin([3]float64{0.86, 0.80, 0.78})
	var alb vec3
	switch {
	case ca > math.Cos(0.2):
		alb = v3(0.01, 0.01, 0.01)
	case ca > math.Cos(0.55):
		t := (math.Acos(ca) - 0.2) / 0.35
		alb = lin(s.p.Identity.Iris).mul(1.2 - 0.6*t)
	case ca > math.Cos(0.6):
		alb = lin(s.p.Identity.Iris).mul(0.35)
	default:
		alb = white
	}
	// Upper lid shadow falls over the top of the eye.
	k := math.Max(0, 1-u*u)
	gapTop := s.eyeUp*math.Pow(k, 0.75) - v
	alb = alb.mul(0.45 + 0.55*smoothstep(0, 0.35, gapTop))
	m := material{albedo: alb, wrap: 0.2, spec: 0.9, shiny: 90}
	c := sh.light(m, n, d)
	if p.part == partEyeL {
		return c, LEye
	}
	return c, REye
}

func (sh *shader) lips(q, n, d vec3) (vec3, uint8) {
	s := sh.s
	line, _, _, gTop, gBot, _ := s.lipCurves(q.x)
	if q.y < gTop && q.y > gBot {
		alb := v3(0.03, 0.01, 0.01)
		if s.p.Attrs.TeethShown && q.y > gTop-(gTop-gBot)*0.65 {
			alb = v3(0.62, 0.6, 0.52)
			if math.Mod(math.Abs(q.x)+0.22, 0.45) < 0.05 {
				alb = alb.mul(0.5)
			}
		}
		return alb.mul(0.6).add(alb.hadamard(sh.sky).mul(0.3)), Mouth
	}
	lc := lin(s.p.Style.LipColor)
	if q.y > line {
		m := material{albedo: lc.mul(0.82), wrap: 0.3, spec: 0.15, shiny: 30}
		return sh.light(m, n, d), ULip
	}
	m := material{albedo: lc, wrap: 0.3, spec: 0.3, shiny: 40}
	return sh.light(m, n, d), LLip
}

// lens shades a glasses lens: rim, opaque sunglasses, or clear glass through
// which the scene behind is traced again.
func (sh *shader) lens(p *prim, q, n, d, o vec3, list []uint16) (vec3, uint8) {
	s := sh.s
	l := p.local(q)
	r := math.Hypot(l.x, l.y)
	if r > 0.86 {
		return sh.light(material{albedo: lin(s.p.Style.GlassesRim), spec: 0.5, shiny: 40}, n, d), EyeG
	}
	refl := 0.1 * math.Pow(1-math.Abs(n.dot(d)), 2)
	if s.p.Attrs.Sunglasses {
		c := sh.light(material{albedo: v3(0.01, 0.012, 0.015), spec: 1.5, shiny: 60}, n, d)
		return c.add(sh.sky.mul(0.05 + refl + 0.08*smoothstep(-0.4, 0.8, l.y))), EyeG
	}
	t := q.sub(o).len()
	h := s.trace(o, d, list, t+1e-3, true)
	if h.idx < 0 {
		return sh.background(0.5, 0.5).mul(0.9), EyeG
	}
	c, lab := sh.shade(h, o, d, list)
	c = c.mul(0.9).add(sh.sky.mul(refl))
	// CelebAMask-HQ merges eye_g before eyes and brows, so those show through.
	if lab > EyeG {
		return c, lab
	}
	return c, EyeG
}

// necklace reports a chain hanging round the neck, lower in front.
func (sh *shader) necklace(q, n, d vec3) (vec3, bool) {
	s := sh.s
	if !s.p.Attrs.WearingNecklace {
		return vec3{}, false
	}
	z0 := -2.4
	plane := (q.y-s.necklaceY)*math.Cos(0.55) + (q.z-z0)*math.Sin(0.55)
	rad := math.Hypot(q.x, q.z-z0)
	if rad > s.neckR+3 || math.Abs(plane) > 0.28 {
		return vec3{}, false
	}
	bead := 0.8 + 0.2*math.Cos(math.Atan2(q.x, q.z-z0)*40)
	m := material{albedo: lin(s.p.Style.MetalColor).mul(bead), spec: 1.0, shiny: 40}
	return sh.light(m, n, d), true
}

func (sh *shader) torso(q, n, d vec3) (vec3, uint8) {
	s := sh.s
	st := &s.p.Style
	if c, ok := sh.necklace(q, n, d); ok {
		return c, NeckL
	}
	ax := math.Abs(q.x)
	if q.z > -2 {
		skin := q.y > -17.2+0.09*q.x*q.x
		if st.VNeck {
			skin = q.y > -21.5+1.3*ax && ax < s.neckR+1.5
		}
		if skin && !s.p.Attrs.WearingNecktie {
			m := material{albedo: sh.skinLin.mul(0.9), wrap: 0.35, spec: 0.04, shiny: 16}
			return sh.light(m, n, d), Neck
		}
	}
	alb := lin(st.ClothColor)
	if st.ClothStripe && math.Mod(q.y+40, 1.6) < 0.6 {
		alb = lin(st.ClothColor2)
	}
	if s.p.Attrs.WearingNecktie && q.z > 0 {
		if ax < 3.2-0.18*(q.y+16.5) && q.y > -24 { // shirt front
			alb = v3(0.8, 0.8, 0.82)
		}
		if ax < 0.55+0.1*(-16.8-q.y) && q.y < -16.6 {
			alb = lin(st.TieColor)
		}
	}
	alb = alb.mul(0.9 + 0.2*noise2(q.x*0.8, q.y*0.8, 31))
	return sh.light(material{albedo: alb, wrap: 0.2, spec: 0.02, shiny: 8}, n, d), Cloth
}
