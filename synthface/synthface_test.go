package synthface

import (
	"bytes"
	"math"
	"regexp"
	"strings"
	"testing"
)

func TestRenderDeterministic(t *testing.T) {
	a := Render(SampleParams(7), 32)
	b := Render(SampleParams(7), 32)
	if !bytes.Equal(a.Image, b.Image) || !bytes.Equal(a.Mask, b.Mask) || !bytes.Equal(a.Scribble, b.Scribble) {
		t.Fatal("same seed rendered differently")
	}
	if strings.Join(a.Captions, "|") != strings.Join(b.Captions, "|") {
		t.Fatal("same seed captioned differently")
	}
	c := Render(SampleParams(8), 32)
	if bytes.Equal(a.Image, c.Image) {
		t.Fatal("different seeds rendered the same image")
	}
	if len(a.Image) != 32*32*3 || len(a.Mask) != 32*32 || len(a.Scribble) != 32*32 || len(a.Depth) != 32*32 {
		t.Fatalf("buffer sizes %d %d %d %d", len(a.Image), len(a.Mask), len(a.Scribble), len(a.Depth))
	}
	if f := Render(SampleParams(1), 0); f.Size != 0 || f.Image != nil {
		t.Fatal("size 0 should give an empty face")
	}
}

func count(mask []uint8) (n [NumClasses]int) {
	for _, c := range mask {
		n[c]++
	}
	return n
}

// Captions name an accessory exactly when its class is in the mask.
func TestCaptionsMatchMask(t *testing.T) {
	n := 120
	if testing.Short() {
		n = 50
	}
	checks := []struct {
		re    *regexp.Regexp
		class int
	}{
		{regexp.MustCompile(`\b(eyeglasses|glasses|spectacles|sunglasses)\b`), EyeG},
		{regexp.MustCompile(`\b(hat|cap)\b`), Hat},
		{regexp.MustCompile(`\bearrings\b`), EarR},
		{regexp.MustCompile(`\bnecklace\b`), NeckL},
	}
	he := regexp.MustCompile(`\b(He|man|gentleman|guy)\b`)
	she := regexp.MustCompile(`\b(She|woman|lady|girl)\b`)
	for i := 0; i < n; i++ {
		seed := int64(1000 + i)
		f := Render(SampleParams(seed), 64)
		if len(f.Captions) < 5 || len(f.Captions) > 10 {
			t.Fatalf("seed %d: %d captions", seed, len(f.Captions))
		}
		all := strings.Join(f.Captions, " ")
		low := strings.ToLower(all)
		cnt := count(f.Mask)
		for _, c := range checks {
			said := c.re.MatchString(low)
			shown := cnt[c.class] > 0
			if said != shown {
				t.Errorf("seed %d: caption mentions %s=%v but mask has %d %s pixels:\n%s", seed, c.re, said, cnt[c.class], Classes[c.class], strings.Join(f.Captions, "\n"))
			}
		}
		if f.Attrs.Male && she.MatchString(all) || !f.Attrs.Male && he.MatchString(all) {
			t.Errorf("seed %d: captions disagree with Male=%v: %q", seed, f.Attrs.Male, f.Captions)
		}
		if cnt[Skin] == 0 || cnt[Nose] == 0 {
			t.Errorf("seed %d: no skin or nose in mask", seed)
		}
	}
}

func TestAllClassesReachable(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 160
	}
	var seen [NumClasses]int
	for i := 0; i < n; i++ {
		c := count(Render(SampleParams(int64(i)), 32).Mask)
		for k, v := range c {
			if v > 0 {
				seen[k]++
			}
		}
	}
	for k, v := range seen {
		if v == 0 {
			t.Errorf("class %d %s never rendered in %d samples", k, Classes[k], n)
		}
	}
	t.Logf("samples showing each class: %v", seen)
}

// The subject's left (l_*) is +x: a frontal view shows it on the image's
// right, and turning the camera toward +x shows more of it.
func TestLeftRightConvention(t *testing.T) {
	p := SampleParams(3)
	p.Attrs.Eyeglasses, p.Attrs.Sunglasses, p.Attrs.WearingHat = false, false, false
	p.Attrs.HairStyle, p.Attrs.LongHair, p.Attrs.Bangs = HairShort, false, false
	p.Camera = OrbitCamera(0, 0, DefaultRadius, DefaultFocal)
	f := Render(p, 64)
	cx := func(class int) float64 {
		s, n := 0.0, 0.0
		for i, c := range f.Mask {
			if int(c) == class {
				s += float64(i % 64)
				n++
			}
		}
		return s / n
	}
	if !(cx(LEye) > 32 && cx(REye) < 32 && cx(LBrow) > 32 && cx(RBrow) < 32) {
		t.Fatalf("frontal eye/brow centroids l=%.1f r=%.1f, lb=%.1f rb=%.1f", cx(LEye), cx(REye), cx(LBrow), cx(RBrow))
	}
	p.Camera = OrbitCamera(40*math.Pi/180, 0, DefaultRadius, DefaultFocal)
	c := count(Render(p, 64).Mask)
	if c[LEar] <= c[REar] || c[LEye] <= c[REye] {
		t.Fatalf("yaw +40°: l_ear %d r_ear %d l_eye %d r_eye %d", c[LEar], c[REar], c[LEye], c[REye])
	}
}

func TestCameraRoundTrip(t *testing.T) {
	for i := 0; i < 50; i++ {
		p := SampleParams(int64(i))
		v := p.Camera.EG3D()
		if v != CameraFromEG3D(v).EG3D() {
			t.Fatalf("seed %d: EG3D round trip changed the camera", i)
		}
		if err := CameraFromEG3D(v).Validate(); err != nil {
			t.Fatal(err)
		}
		if v[16] != float32(DefaultFocal) || v[18] != 0.5 || v[21] != 0.5 || v[24] != 1 || v[15] != 1 {
			t.Fatalf("intrinsics %v", v[16:])
		}
		if y := p.Camera.Yaw(); math.Abs(y) > 50*math.Pi/180+1e-9 {
			t.Fatalf("yaw %.1f° out of range", y*180/math.Pi)
		}
		if pt := p.Camera.Pitch(); math.Abs(pt) > 20*math.Pi/180+1e-9 {
			t.Fatalf("pitch %.1f° out of range", pt*180/math.Pi)
		}
	}
	c := OrbitCamera(0.3, -0.1, DefaultRadius, DefaultFocal)
	if math.Abs(c.Yaw()-0.3) > 1e-9 || math.Abs(c.Pitch()+0.1) > 1e-9 {
		t.Fatalf("orbit angles: yaw %g pitch %g", c.Yaw(), c.Pitch())
	}
	// Frontal camera sits on +z looking at -z, OpenCV y down (EG3D).
	f := OrbitCamera(0, 0, DefaultRadius, DefaultFocal)
	if f.CamToWorld[2][3] < 2.6 || f.CamToWorld[2][2] > -0.99 || f.CamToWorld[1][1] > -0.99 || f.CamToWorld[0][0] < 0.99 {
		t.Fatalf("frontal cam2world %v", f.CamToWorld)
	}
	if CameraFromEG3D([25]float32{}).Validate() == nil {
		t.Fatal("zero camera validated")
	}
}

func TestIdentitySeparateFromAttributes(t *testing.T) {
	a := SampleParamsForIdentity(42, 1)
	b := SampleParamsForIdentity(42, 2)
	if a.Identity != b.Identity {
		t.Fatal("same identity id gave different identities")
	}
	if a.Camera == b.Camera && a.Attrs == b.Attrs {
		t.Fatal("different seeds gave the same attributes and camera")
	}
	if SampleParams(42).Identity != a.Identity {
		t.Fatal("SampleParams(42) should be identity 42")
	}
	c := ResampleCamera(a, 9)
	if c.Attrs != a.Attrs || c.Identity != a.Identity || c.Camera == a.Camera {
		t.Fatal("ResampleCamera must change only camera and light")
	}
	d := ResampleAttributes(a, 9)
	if d.Identity != a.Identity || d.Camera != a.Camera || d.Attrs.Male != a.Identity.Male {
		t.Fatal("ResampleAttributes must keep identity and camera")
	}
	if SampleIdentity(1) == SampleIdentity(2) {
		t.Fatal("different ids gave one identity")
	}
}

func TestAttributeVector(t *testing.T) {
	if len(AttributeNames) < 40 || AttributeNames[20] != "Male" || AttributeNames[39] != "Young" {
		t.Fatalf("AttributeNames must start with CelebA's 40 in order")
	}
	freq := make([]float64, len(AttributeNames))
	n := 400
	for i := 0; i < n; i++ {
		p := SampleParams(int64(i))
		v := p.Attrs.Vector()
		if len(v) != len(AttributeNames) {
			t.Fatalf("vector length %d, names %d", len(v), len(AttributeNames))
		}
		if (v[20] == 1) != p.Identity.Male {
			t.Fatal("Male flag does not follow identity")
		}
		for j, x := range v {
			freq[j] += float64(x) / float64(n)
		}
	}
	// Realistic frequencies: common attributes common, rare ones rare.
	want := map[string][2]float64{"Male": {0.35, 0.55}, "Smiling": {0.38, 0.58}, "Young": {0.6, 0.9},
		"No_Beard": {0.7, 0.95}, "Eyeglasses": {0.08, 0.3}, "Wearing_Hat": {0.02, 0.14}, "Bald": {0.005, 0.08}}
	for j, name := range AttributeNames {
		if r, ok := want[name]; ok && (freq[j] < r[0] || freq[j] > r[1]) {
			t.Errorf("%s frequency %.3f outside [%.2f, %.2f]", name, freq[j], r[0], r[1])
		}
	}
	var live int
	for _, f := range freq {
		if f > 0 {
			live++
		}
	}
	if live < 30 {
		t.Errorf("only %d attributes ever set", live)
	}
}

// Scribble strokes follow the rendered silhouette.
func TestScribbleTracesSilhouette(t *testing.T) {
	f := Render(SampleParams(11), 128)
	s := f.Size
	var edge, near, strokes int
	for y := 2; y < s-2; y++ {
		for x := 2; x < s-2; x++ {
			v := f.Scribble[y*s+x]
			if v != 0 && v != 255 {
				t.Fatalf("scribble value %d", v)
			}
			if v == 255 {
				strokes++
			}
			if (f.Mask[y*s+x] != Background) == (f.Mask[y*s+x+1] != Background) {
				continue
			}
			edge++
		search:
			for dy := -2; dy <= 2; dy++ {
				for dx := -2; dx <= 2; dx++ {
					if f.Scribble[(y+dy)*s+x+dx] == 255 {
						near++
						break search
					}
				}
			}
		}
	}
	if edge == 0 || float64(near)/float64(edge) < 0.6 {
		t.Fatalf("only %d of %d silhouette pixels have a stroke within 2 px", near, edge)
	}
	if frac := float64(strokes) / float64(s*s); frac < 0.02 || frac > 0.3 {
		t.Fatalf("stroke density %.3f", frac)
	}
}

func TestDepthMatchesMask(t *testing.T) {
	f := Render(SampleParams(5), 64)
	for i, c := range f.Mask {
		if (c != Background) != (f.Depth[i] > 0) {
			t.Fatalf("pixel %d: class %d but depth %g", i, c, f.Depth[i])
		}
		if f.Depth[i] > 0 && (f.Depth[i] < 2 || f.Depth[i] > 3.5) {
			t.Fatalf("pixel %d: depth %g outside the head's range", i, f.Depth[i])
		}
	}
}

// TestWithSpreadYaw: share 0 leaves the camera alone; share 1 spreads the
// yaw over ±50° (far more side views than the default) and keeps pitch and
// distance to the pivot.
func TestWithSpreadYaw(t *testing.T) {
	dist := func(c Camera) float64 {
		p := c.Position()
		return math.Sqrt((p[0]-Pivot[0])*(p[0]-Pivot[0]) + (p[1]-Pivot[1])*(p[1]-Pivot[1]) + (p[2]-Pivot[2])*(p[2]-Pivot[2]))
	}
	side, sideDefault := 0, 0
	const n = 400
	for s := int64(0); s < n; s++ {
		p := SampleParams(s)
		if WithSpreadYaw(p, 0).Camera != p.Camera {
			t.Fatal("share 0 changed the camera")
		}
		q := WithSpreadYaw(p, 1)
		if math.Abs(q.Camera.Yaw()) > MaxYaw+1e-9 {
			t.Fatalf("seed %d: yaw %.1f° beyond ±50°", s, q.Camera.Yaw()*180/math.Pi)
		}
		if d := math.Abs(q.Camera.Pitch() - p.Camera.Pitch()); d > 1e-9 {
			t.Fatalf("seed %d: pitch moved by %g", s, d)
		}
		if d := math.Abs(dist(q.Camera) - dist(p.Camera)); d > 0.02 {
			t.Fatalf("seed %d: distance to the pivot moved by %g", s, d)
		}
		if math.Abs(q.Camera.Yaw()) > 35*math.Pi/180 {
			side++
		}
		if math.Abs(p.Camera.Yaw()) > 35*math.Pi/180 {
			sideDefault++
		}
	}
	// Uniform in ±50°: 30% beyond ±35°; the default σ = 19° gives ~7%.
	if side < n/5 || sideDefault*2 > side {
		t.Errorf("views beyond ±35°: %d of %d spread, %d default", side, n, sideDefault)
	}
}

// A smile is drawn into the mask, not only the shading: the lip line
// curves up and widens (scene.lipCurves), so a mask-conditioned model that
// keeps its mask's mouth cannot smile on a prompt's word alone (docs/eval.md,
// the smiling control). Same faces with and without a smile, 64², faces
// within ±30° of frontal: a smile must redraw a sizeable share of the
// mouth and lips.
func TestSmileShowsInTheMask(t *testing.T) {
	n, changed, mouth, area := 0, 0, 0, 0
	isMouth := func(l uint8) bool { return l == Mouth || l == ULip || l == LLip }
	for seed := int64(0); seed < 120; seed++ {
		p := SampleParams(seed)
		if y := p.Camera.Yaw(); y*y > 0.27 {
			continue
		}
		plain, smiling := p, p
		plain.Attrs.Smiling, plain.Style.Smile = false, 0
		smiling.Attrs.Smiling, smiling.Style.Smile = true, 0.75
		a, b := Render(plain, 64), Render(smiling, 64)
		for i := range a.Mask {
			if isMouth(a.Mask[i]) {
				area++
			}
			if a.Mask[i] != b.Mask[i] {
				changed++
				if isMouth(a.Mask[i]) || isMouth(b.Mask[i]) {
					mouth++
				}
			}
		}
		n++
	}
	per := func(v int) float64 { return float64(v) / float64(n) }
	t.Logf("%d faces: a smile changes %.1f mask pixels, %.1f of them mouth or lips (%.0f%% of the unsmiling mouth's %.1f)",
		n, per(changed), per(mouth), 100*per(mouth)/per(area), per(area))
	if n < 50 || per(mouth) < 0.2*per(area) {
		t.Errorf("a smile redraws %.1f of %.1f mouth pixels: the mask hardly shows it", per(mouth), per(area))
	}
}
