package synthface

import "math"

// part is a renderer material; several map to one mask class.
type part uint8

const (
	partNone part = iota
	partHead      // skin-covered head and face (brows, beard, makeup are decals)
	partNose
	partEyeL
	partEyeR
	partEarL
	partEarR
	partLips // split into u_lip / l_lip / mouth by the lip outline
	partBeard
	partHair
	partHat
	partLensL
	partLensR
	partFrame
	partEarring
	partNeck
	partTorso
)

// blends reports parts whose normals are smoothed across neighbours so the
// union of ellipsoids shades like one surface.
func (p part) blends() bool { return p == partHead || p == partNose || p == partNeck }

// scene is a built head: primitives plus the landmarks decals need.
type scene struct {
	p     *Params
	prims []prim

	eyeY, eyeZ, eyeR   float64
	eyeX               float64 // half the eye spacing
	eyeW, eyeUp, eyeLo float64
	eyeTilt            float64
	browY              float64
	noseBaseY          float64
	mouthY, mouthZ     float64
	mouthW             float64
	lipUp, lipLo       float64
	gap, smile         float64
	crc                vec3 // cranium centre
	crr                vec3 // cranium radii
	hairline           float64
	earY               float64
	neckR              float64
	hairTop            float64
	necklaceY          float64
	hatY               float64
	hairVol            float64 // scalp hair thickness, cm
}

// buildScene turns parameters into primitives, in centimetres.
func buildScene(p *Params) *scene {
	id, a, st := &p.Identity, &p.Attrs, &p.Style
	s := &scene{p: p}
	W, H, D := id.HeadWidth, id.HeadHeight, id.HeadDepth
	FL := id.FaceLength
	smile := st.Smile
	s.smile = smile

	// Skull and face masses. Lower-face landmarks scale with FL about the
	// eye line so long and short faces keep their features in proportion.
	s.eyeY = id.EyeHeight
	ly := func(y float64) float64 { return s.eyeY + (y-s.eyeY)*FL }
	s.crc = v3(0, 2.6*H, -1.2)
	s.crr = v3(7.3*W, 9.0*H, 9.7*D)
	add := func(q prim) { s.prims = append(s.prims, q) }
	add(ellipsoid(partHead, s.crc, s.crr, 0, 0, 0))
	jw := 0.55 + 0.45*id.JawWidth
	add(ellipsoid(partHead, v3(0, ly(-2.5), -0.5), v3(6.3*W*jw, 8.0*FL, 9.6*D), 0, 0, 0))
	add(ellipsoid(partHead, v3(0, ly(-6.5), 4.4*D), v3(3.1*jw, 4.2*FL, 4.2), 0, 0, 0))
	add(ellipsoid(partHead, v3(0, ly(-6.6), 0.6), v3(5.5*id.JawWidth*W, 3.8*FL, 6.6), 0, 0, 0))
	chinY := ly(-9.2 - 0.3*(id.ChinLength-1))
	add(ellipsoid(partHead, v3(0, chinY, 5.9*D), v3(2.3*id.ChinWidth, 1.6*id.ChinLength, 2.1), 0.3, 0, 0))
	for _, sx := range []float64{-1, 1} {
		ch := id.Cheeks
		add(ellipsoid(partHead, v3(sx*3.3*W, ly(-2.6)+0.5*smile, 4.4+0.9*(ch-1)+0.25*smile), v3(2.4*ch, 2.4*ch, 2.8), 0, sx*0.3, 0))
		cb := id.Cheekbones
		add(ellipsoid(partHead, v3(sx*3.9*W, -0.4, 3.4+0.5*cb), v3(1.8, 1.4*cb, 2.6), 0, sx*0.2, 0))
	}
	if a.DoubleChin {
		add(ellipsoid(partHead, v3(0, chinY-1.0, 3.5), v3(3.6, 2.0, 3.4), 0.5, 0, 0))
	}

	// Eyes sit in the skull's front, the brow ridge above them.
	s.eyeX = id.EyeSpacing / 2
	s.eyeR = 1.2 * id.EyeSize
	s.eyeZ = 7.15*D - 0.1
	s.eyeW = 1.42 * id.EyeSize
	open := id.EyeOpen * (1 - 0.2*smile)
	s.eyeUp = 0.6 * open * id.EyeSize
	s.eyeLo = 0.42 * open * id.EyeSize
	s.eyeTilt = id.EyeTilt
	s.browY = s.eyeY + 1.75*id.BrowHeight + 0.2
	add(ellipsoid(partHead, v3(0, s.browY+0.2, 6.2*D), v3(5.0*W, 1.6, 2.4), 0, 0, 0))
	for _, sx := range []float64{-1, 1} {
		pt := partEyeL
		if sx < 0 {
			pt = partEyeR
		}
		e := ellipsoid(pt, v3(sx*s.eyeX, s.eyeY, s.eyeZ), v3(s.eyeR, s.eyeR, s.eyeR), 0, 0, 0)
		e.accept = s.eyeAccept(sx)
		add(e)
	}

	// Nose: bridge, tip bulb, wings.
	NL, NW := id.NoseLength, id.NoseWidth
	s.noseBaseY = s.eyeY - 4.4*NL*FL
	tipZ := 8.9*D + 1.4*id.NoseProjection
	add(ellipsoid(partNose, v3(0, s.eyeY-1.6*NL, 7.95*D+0.5*id.NoseProjection), v3(0.8*NW, 2.7*NL, 1.2), -0.35*id.NoseProjection, 0, 0))
	tr := 0.95 * id.NoseTip
	add(ellipsoid(partNose, v3(0, s.noseBaseY+0.75, tipZ-tr), v3(tr*(0.85+0.2*NW), tr*0.95, tr), 0, 0, 0))
	for _, sx := range []float64{-1, 1} {
		add(ellipsoid(partNose, v3(sx*1.05*NW, s.noseBaseY+0.55, tipZ-2.0), v3(0.85*NW, 0.75, 0.95), 0, 0, 0))
	}

	// Mouth: one lip volume clipped to the lip outline.
	s.mouthY = s.noseBaseY - 1.8*FL
	s.mouthW = 2.35 * id.MouthWidth * (1 + 0.15*smile)
	s.lipUp = 0.5 * id.LipFullness
	s.lipLo = 0.68 * id.LipFullness
	s.gap = st.MouthOpen
	s.mouthZ = 7.35*D + 1.55 + 0.25*id.LipFullness
	lips := ellipsoid(partLips, v3(0, s.mouthY, 7.35*D), v3(s.mouthW*1.05, 1.6+s.gap/2, 1.55+0.25*id.LipFullness), 0, 0, 0)
	lips.accept = s.lipAccept
	add(lips)

	// Ears: flattened, flared, on the skull's sides.
	s.earY = s.eyeY - 0.8
	for _, sx := range []float64{-1, 1} {
		pt := partEarL
		if sx < 0 {
			pt = partEarR
		}
		es := id.EarSize
		add(ellipsoid(pt, v3(sx*6.95*W, s.earY, -0.8), v3(0.85, 2.9*es, 1.8*es), 0.1, sx*0.45, sx*0.12))
	}

	// Neck and shoulders.
	s.neckR = 5.0 * id.NeckWidth
	add(capsule(partNeck, v3(0, -5, -2.0), v3(0, -20, -2.6), s.neckR))
	add(ellipsoid(partTorso, v3(0, -25, -3.0), v3(17*id.NeckWidth, 9, 10), 0, 0, 0))
	s.necklaceY = -13.8

	if a.Beard {
		b := ellipsoid(partBeard, v3(0, chinY+0.6, 4.4), v3(4.9*id.JawWidth*W, 3.2, 5.0), 0.3, 0, 0)
		b.accept = func(q vec3) bool { return s.beardRegion(q) && q.z > 0 }
		add(b)
	}

	s.addHair()
	s.addAccessories()
	return s
}

// eyeAccept keeps the part of an eyeball inside the almond lid opening.
func (s *scene) eyeAccept(sx float64) func(q vec3) bool {
	cx := sx * s.eyeX
	return func(q vec3) bool {
		if q.z < s.eyeZ {
			return false
		}
		u, v := s.eyeUV(q, cx, sx)
		if u <= -1 || u >= 1 {
			return false
		}
		k := 1 - u*u
		if v >= 0 {
			return v < s.eyeUp*math.Pow(k, 0.75)
		}
		return -v < s.eyeLo*math.Pow(k, 0.9)
	}
}

// eyeUV maps q to the almond's frame: u in (-1,1) from inner to outer corner,
// v in cm above the eye's axis (tilted outer corner up).
func (s *scene) eyeUV(q vec3, cx, sx float64) (float64, float64) {
	dx := (q.x - cx) * sx // + toward the outer corner
	dy := q.y - s.eyeY
	c, sn := math.Cos(s.eyeTilt), math.Sin(s.eyeTilt)
	u := (c*dx + sn*dy) / s.eyeW
	v := -sn*dx + c*dy
	// The almond's peak sits toward the inner corner, as in real lids.
	return u, v + 0.08*s.eyeUp*u
}

// lipCurves gives, at x, the mouth line and the outer edges of both lips.
func (s *scene) lipCurves(x float64) (line, top, bot, gapTop, gapBot float64, ok bool) {
	u := x / s.mouthW
	if u <= -1 || u >= 1 {
		return 0, 0, 0, 0, 0, false
	}
	k := 1 - u*u
	line = s.mouthY + 0.55*s.smile*u*u - 0.1*(1-s.smile)*u*u
	g := s.gap * math.Pow(k, 0.6) * 0.5
	bow := 0.12 * s.lipUp * math.Exp(-u*u/0.02) // Cupid's bow dip
	top = line + g + s.lipUp*math.Pow(k, 0.55) + 0.12*math.Exp(-(math.Abs(u)-0.18)*(math.Abs(u)-0.18)/0.01) - bow
	bot = line - g - s.lipLo*math.Pow(k, 0.7)
	return line, top, bot, line + g, line - g, true
}

func (s *scene) lipAccept(q vec3) bool {
	if q.z < s.mouthZ-2.2 {
		return false
	}
	_, top, bot, _, _, ok := s.lipCurves(q.x)
	return ok && q.y < top && q.y > bot
}

// beardRegion is the full-beard area on the lower face, joined to sideburns.
func (s *scene) beardRegion(q vec3) bool {
	ax := math.Abs(q.x)
	top := s.noseBaseY - 0.35 - 2.4*smoothstep(1.2, 4.2, ax) + 5.0*smoothstep(5.0, 6.9, ax)
	return q.y < top && q.z > -1.5
}

// hairlineY is the lowest height the scalp hair reaches at azimuth phi
// (0 = front, ±π = back), as a function of the style.
func (s *scene) hairlineY(phi float64, x float64) float64 {
	a := math.Abs(phi)
	st := &s.p.Style
	front := s.browY + st.Hairline + 0.5*noise2(x*1.3, 0, st.HairSeed)
	if s.p.Attrs.RecedingHairline {
		front += 1.3 * smoothstep(0.12, 0.45, a) // M-shaped temples
	}
	if s.p.Attrs.Bangs {
		// A fringe down to the brows with a ragged edge.
		front = s.browY + 0.7 + 0.35*noise2(x*2.2, 0, st.HairSeed) + 0.8*smoothstep(0.3, 0.6, a)
	}
	temple := s.eyeY + 0.3
	above := s.earY + 3.3
	nape := -6.5
	switch {
	case a < 0.55:
		return front
	case a < 1.1:
		return front + (temple-front)*smoothstep(0.55, 1.1, a)
	case a < 1.3:
		return temple + (above-temple)*smoothstep(1.1, 1.3, a)
	case a < 2.1:
		return above
	default:
		return above + (nape-above)*smoothstep(2.1, 2.7, a)
	}
}

// addHair adds the scalp shell, long-hair drape, clumps, ponytail or bun.
func (s *scene) addHair() {
	a, st := &s.p.Attrs, &s.p.Style
	add := func(q prim) { s.prims = append(s.prims, q) }
	vol := st.HairVolume
	switch a.HairStyle {
	case HairShort:
		vol *= 0.6
	case HairPonytail, HairBun:
		vol = 0.6
	}
	s.hairTop = s.crc.y + s.crr.y + vol
	s.hairVol = vol
	if a.Bald {
		if s.p.Identity.Age > 0.5 { // a fringe around the back
			f := ellipsoid(partHair, s.crc, s.crr.add(v3(0.4, 0.4, 0.4)), 0, 0, 0)
			f.accept = func(q vec3) bool {
				phi := math.Atan2(q.x, q.z)
				return math.Abs(phi) > 1.3 && q.y < s.crc.y+2 && q.y > s.hairlineY(phi, q.x)-1.5
			}
			add(f)
		}
		return
	}
	capR := s.crr.add(v3(vol, vol*1.1, vol))
	capC := s.crc.add(v3(0, 0.2*vol, -0.1*vol))
	hc := ellipsoid(partHair, capC, capR, 0, 0, 0)
	hc.accept = func(q vec3) bool {
		return q.y > s.hairlineY(math.Atan2(q.x, q.z-1.0), q.x)
	}
	add(hc)
	if a.LongHair {
		length := 14.0 + 4*noise2(float64(st.HairSeed%97), 0.5, 3)
		halfW := 6.6*s.p.Identity.HeadWidth + 0.2
		window := func(q vec3) bool {
			// Open in front of the face and neck so the drape frames them.
			if q.y > s.hairlineY(math.Atan2(q.x, q.z-1.0), q.x)+0.3 && q.y > s.browY {
				return true
			}
			return !(q.z > -0.5 && math.Abs(q.x) < halfW+0.15*math.Max(0, q.y-s.eyeY)) && q.y > -23
		}
		d := ellipsoid(partHair, v3(0, s.crc.y-length/2+2, -2.2), v3(s.crr.x+vol+0.6, s.crr.y+length/2, s.crr.z*0.9+vol*0.5), 0, 0, 0)
		d.accept = window
		add(d)
		if a.WavyHair { // full, uneven volume toward the ends
			for i := 0; i < 6; i++ {
				sx := float64(1 - 2*(i%2))
				j := noise2(float64(i)*1.7, float64(st.HairSeed%1000), 7)
				y := s.crc.y - 7 - float64(i/2)*3.5 - 2*j
				c := ellipsoid(partHair, v3(sx*(s.crr.x+vol-2.8+1.2*j), y, -3.0+1.5*j), v3(4.6+1.2*j, 5.0, 5.2), 0, 0, sx*0.2)
				c.accept = window
				add(c)
			}
		}
	}
	switch a.HairStyle {
	case HairPonytail:
		add(capsule(partHair, v3(0, s.crc.y+1, s.crc.z-s.crr.z-0.5), v3(0, s.crc.y-13, s.crc.z-s.crr.z-3), 2.1))
	case HairBun:
		add(ellipsoid(partHair, v3(0, s.crc.y+5.5, s.crc.z-s.crr.z+1.5), v3(3.6, 3.2, 3.4), 0, 0, 0))
	}
}

// addAccessories adds glasses, hat and earrings.
func (s *scene) addAccessories() {
	a, st := &s.p.Attrs, &s.p.Style
	add := func(q prim) { s.prims = append(s.prims, q) }
	if a.Eyeglasses {
		lz := s.eyeZ + s.eyeR + 1.1
		gw, gh := st.GlassesW, st.GlassesH
		cx := s.eyeX + 0.15
		ly := s.eyeY + 0.15
		for _, sx := range []float64{-1, 1} {
			pt := partLensL
			if sx < 0 {
				pt = partLensR
			}
			add(ellipsoid(pt, v3(sx*cx, ly, lz), v3(gw, gh, 0.25), 0, sx*0.12, 0))
			add(capsule(partFrame, v3(sx*(cx+gw*0.97), ly+0.3, lz-0.2), v3(sx*(6.9*s.p.Identity.HeadWidth+0.3), s.earY+1.9, -0.8), 0.16))
		}
		add(capsule(partFrame, v3(-(cx-gw*0.95), ly+0.35, lz), v3(cx-gw*0.95, ly+0.35, lz), 0.17))
	}
	if a.WearingHat {
		s.hatY = s.browY + 2.6
		hv := s.hairVol + 0.6 // the hat sits over the hair
		hr := s.crr.add(v3(hv, hv*1.1, hv))
		h := ellipsoid(partHat, s.crc.add(v3(0, 0.4, -0.3)), hr, 0, 0, 0)
		h.accept = func(q vec3) bool { return q.y > s.hatY-0.25*(s.crc.z-q.z) }
		add(h)
		if st.HatBrim {
			b := ellipsoid(partHat, v3(0, s.hatY+0.2, s.crc.z+s.crr.z*0.55), v3(s.crr.x+1.0, 0.35, s.crr.z*0.95), -0.12, 0, 0)
			b.accept = func(q vec3) bool { return q.z > s.crc.z+2 }
			add(b)
		}
	}
	if a.WearingEarrings {
		for _, sx := range []float64{-1, 1} {
			lobe := v3(sx*(6.95*s.p.Identity.HeadWidth+0.35), s.earY-2.5*s.p.Identity.EarSize, -0.3)
			add(ellipsoid(partEarring, lobe, v3(0.38, 0.38, 0.38), 0, 0, 0))
			if st.EarringDrop {
				drop := lobe.add(v3(0, -1.5, 0))
				add(capsule(partEarring, lobe, drop, 0.1))
				add(ellipsoid(partEarring, drop, v3(0.5, 0.6, 0.5), 0, 0, 0))
			}
		}
	}
}
