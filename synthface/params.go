package synthface

import (
	"math"
	"math/rand/v2"
)

// Identity is what stays fixed for one person: head and face geometry
// (factors around 1 unless noted) and colouring. Attributes derived from it
// (Big_Nose, Oval_Face, Young, …) are recomputed whenever attributes are.
type Identity struct {
	ID             int64      `json:"id"`
	Male           bool       `json:"male"`
	Age            float64    `json:"age"` // 0 = 18 years … 1 = 75 years
	HeadWidth      float64    `json:"head_width"`
	HeadHeight     float64    `json:"head_height"`
	HeadDepth      float64    `json:"head_depth"`
	FaceLength     float64    `json:"face_length"`
	JawWidth       float64    `json:"jaw_width"`
	ChinWidth      float64    `json:"chin_width"`
	ChinLength     float64    `json:"chin_length"`
	Cheeks         float64    `json:"cheeks"`      // fullness; > 1.25 reads as chubby
	Cheekbones     float64    `json:"cheekbones"`  // prominence
	EyeSpacing     float64    `json:"eye_spacing"` // centre distance, cm
	EyeSize        float64    `json:"eye_size"`
	EyeOpen        float64    `json:"eye_open"`   // lid opening; < 0.8 reads as narrow eyes
	EyeHeight      float64    `json:"eye_height"` // cm above head centre
	EyeTilt        float64    `json:"eye_tilt"`   // radians, outer corner up
	NoseLength     float64    `json:"nose_length"`
	NoseWidth      float64    `json:"nose_width"`
	NoseTip        float64    `json:"nose_tip"`        // tip bulb size
	NoseProjection float64    `json:"nose_projection"` // how far the tip stands out
	MouthWidth     float64    `json:"mouth_width"`
	LipFullness    float64    `json:"lip_fullness"`
	BrowHeight     float64    `json:"brow_height"`
	BrowThickness  float64    `json:"brow_thickness"`
	BrowArch       float64    `json:"brow_arch"`
	EarSize        float64    `json:"ear_size"`
	NeckWidth      float64    `json:"neck_width"`
	EyeBags        float64    `json:"eye_bags"` // 0…1
	Skin           [3]float64 `json:"skin"`     // sRGB 0…1
	Iris           [3]float64 `json:"iris"`
	BrowColor      [3]float64 `json:"brow_color"` // natural hair colour
}

// Hair styles and colours.
const (
	HairShort    = "short"
	HairStraight = "straight"
	HairWavy     = "wavy"
	HairLong     = "long"
	HairPonytail = "ponytail"
	HairBun      = "bun"
	HairBald     = "bald"

	ColorBlack = "black"
	ColorBrown = "brown"
	ColorBlond = "blond"
	ColorGray  = "gray"
	ColorRed   = "red"
)

// Attributes describe one picture of a person. The CelebA-named booleans are
// the attribute vector (see AttributeNames); the rest say how to draw them.
type Attributes struct {
	FiveOClockShadow  bool `json:"5_o_Clock_Shadow"`
	ArchedEyebrows    bool `json:"Arched_Eyebrows"`
	Attractive        bool `json:"Attractive"`
	BagsUnderEyes     bool `json:"Bags_Under_Eyes"`
	Bald              bool `json:"Bald"`
	Bangs             bool `json:"Bangs"`
	BigLips           bool `json:"Big_Lips"`
	BigNose           bool `json:"Big_Nose"`
	BlackHair         bool `json:"Black_Hair"`
	BlondHair         bool `json:"Blond_Hair"`
	Blurry            bool `json:"Blurry"`
	BrownHair         bool `json:"Brown_Hair"`
	BushyEyebrows     bool `json:"Bushy_Eyebrows"`
	Chubby            bool `json:"Chubby"`
	DoubleChin        bool `json:"Double_Chin"`
	Eyeglasses        bool `json:"Eyeglasses"` // any glasses, as in CelebA
	Goatee            bool `json:"Goatee"`
	GrayHair          bool `json:"Gray_Hair"`
	HeavyMakeup       bool `json:"Heavy_Makeup"`
	HighCheekbones    bool `json:"High_Cheekbones"`
	Male              bool `json:"Male"`
	MouthSlightlyOpen bool `json:"Mouth_Slightly_Open"`
	Mustache          bool `json:"Mustache"`
	NarrowEyes        bool `json:"Narrow_Eyes"`
	NoBeard           bool `json:"No_Beard"`
	OvalFace          bool `json:"Oval_Face"`
	PaleSkin          bool `json:"Pale_Skin"`
	PointyNose        bool `json:"Pointy_Nose"`
	RecedingHairline  bool `json:"Receding_Hairline"`
	RosyCheeks        bool `json:"Rosy_Cheeks"`
	Sideburns         bool `json:"Sideburns"`
	Smiling           bool `json:"Smiling"`
	StraightHair      bool `json:"Straight_Hair"`
	WavyHair          bool `json:"Wavy_Hair"`
	WearingEarrings   bool `json:"Wearing_Earrings"`
	WearingHat        bool `json:"Wearing_Hat"`
	WearingLipstick   bool `json:"Wearing_Lipstick"`
	WearingNecklace   bool `json:"Wearing_Necklace"`
	WearingNecktie    bool `json:"Wearing_Necktie"`
	Young             bool `json:"Young"`
	// Extras beyond CelebA's 40.
	Sunglasses bool `json:"Sunglasses"`
	LongHair   bool `json:"Long_Hair"`
	HairUp     bool `json:"Hair_Up"` // ponytail or bun
	RedHair    bool `json:"Red_Hair"`
	Beard      bool `json:"Beard"` // full beard
	TeethShown bool `json:"Teeth_Visible"`

	HairStyle string `json:"hair_style"`
	HairColor string `json:"hair_color"`

	colorless bool // a monochrome artwork: captions name no colours
}

// AttributeNames is the order of Attributes.Vector: CelebA's 40 attributes
// in list_attr_celeba.txt order, then SynthFace's extras.
var AttributeNames = []string{
	"5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald",
	"Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
	"Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
	"Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
	"Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
	"Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
	"Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
	"Wearing_Necklace", "Wearing_Necktie", "Young",
	"Sunglasses", "Long_Hair", "Hair_Up", "Red_Hair", "Beard", "Teeth_Visible",
}

func (a *Attributes) flags() []*bool {
	return []*bool{
		&a.FiveOClockShadow, &a.ArchedEyebrows, &a.Attractive, &a.BagsUnderEyes, &a.Bald,
		&a.Bangs, &a.BigLips, &a.BigNose, &a.BlackHair, &a.BlondHair, &a.Blurry, &a.BrownHair,
		&a.BushyEyebrows, &a.Chubby, &a.DoubleChin, &a.Eyeglasses, &a.Goatee, &a.GrayHair,
		&a.HeavyMakeup, &a.HighCheekbones, &a.Male, &a.MouthSlightlyOpen, &a.Mustache,
		&a.NarrowEyes, &a.NoBeard, &a.OvalFace, &a.PaleSkin, &a.PointyNose,
		&a.RecedingHairline, &a.RosyCheeks, &a.Sideburns, &a.Smiling, &a.StraightHair,
		&a.WavyHair, &a.WearingEarrings, &a.WearingHat, &a.WearingLipstick,
		&a.WearingNecklace, &a.WearingNecktie, &a.Young,
		&a.Sunglasses, &a.LongHair, &a.HairUp, &a.RedHair, &a.Beard, &a.TeethShown,
	}
}

// Vector returns the attributes as 0/1 in AttributeNames order.
func (a Attributes) Vector() []float32 {
	f := a.flags()
	v := make([]float32, len(f))
	for i, p := range f {
		if *p {
			v[i] = 1
		}
	}
	return v
}

// Style holds the continuous look of one picture that the attribute
// booleans leave open: colours, shapes of accessories, background.
type Style struct {
	HairColor   [3]float64 `json:"hair_color"`
	HairVolume  float64    `json:"hair_volume"` // cm of hair over the scalp
	HairPart    float64    `json:"hair_part"`   // parting offset, -1…1
	HairSeed    int32      `json:"hair_seed"`
	Hairline    float64    `json:"hairline"`   // cm above the brows
	Smile       float64    `json:"smile"`      // 0…1
	MouthOpen   float64    `json:"mouth_open"` // lip gap, cm
	LipColor    [3]float64 `json:"lip_color"`
	EyeShadow   [3]float64 `json:"eye_shadow"`
	Blush       float64    `json:"blush"`
	GazeX       float64    `json:"gaze_x"`
	GazeY       float64    `json:"gaze_y"`
	GlassesRim  [3]float64 `json:"glasses_rim"`
	GlassesW    float64    `json:"glasses_w"`
	GlassesH    float64    `json:"glasses_h"`
	HatColor    [3]float64 `json:"hat_color"`
	HatBrim     bool       `json:"hat_brim"`
	MetalColor  [3]float64 `json:"metal_color"` // earrings and necklace
	EarringDrop bool       `json:"earring_drop"`
	ClothColor  [3]float64 `json:"cloth_color"`
	ClothColor2 [3]float64 `json:"cloth_color2"`
	ClothStripe bool       `json:"cloth_stripe"`
	VNeck       bool       `json:"v_neck"`
	TieColor    [3]float64 `json:"tie_color"`
	BgTop       [3]float64 `json:"bg_top"`
	BgBottom    [3]float64 `json:"bg_bottom"`
	BgSeed      int32      `json:"bg_seed"`
}

// Params is everything a render needs. Identity, Attributes+Style, and
// Camera+Light vary independently (see SampleParamsForIdentity,
// ResampleAttributes, ResampleCamera).
type Params struct {
	Seed     int64      `json:"seed"`
	Identity Identity   `json:"identity"`
	Attrs    Attributes `json:"attributes"`
	Style    Style      `json:"style"`
	Camera   Camera     `json:"camera"`
	Light    Light      `json:"light"`
	Art      Art        `json:"art,omitempty"` // photo unless set (WithArt)
}

// rng streams: each aspect draws from its own stream so changing how one is
// sampled never shifts another.
const (
	streamIdentity = 0x1d
	streamAttrs    = 0xa7
	streamCamera   = 0xca
)

func newRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed)*0x9e3779b97f4a7c15+stream, stream*0xbf58476d1ce4e5b9^uint64(seed)))
}

// SampleParams draws a full sample; the identity id equals the seed, so
// different seeds are different people.
func SampleParams(seed int64) Params {
	return SampleParamsForIdentity(seed, seed)
}

// SampleParamsForIdentity draws attributes, style, camera and light from
// seed for the person with the given identity id.
func SampleParamsForIdentity(identity, seed int64) Params {
	p := Params{Seed: seed, Identity: SampleIdentity(identity)}
	p = ResampleAttributes(p, seed)
	return ResampleCamera(p, seed)
}

func gauss(r *rand.Rand, mean, sd, lo, hi float64) float64 {
	return clamp(mean+sd*r.NormFloat64(), lo, hi)
}

func bern(r *rand.Rand, p float64) bool { return r.Float64() < p }

func mix3(a, b [3]float64, t float64) [3]float64 {
	return [3]float64{a[0] + (b[0]-a[0])*t, a[1] + (b[1]-a[1])*t, a[2] + (b[2]-a[2])*t}
}

func jitter3(r *rand.Rand, c [3]float64, s float64) [3]float64 {
	for i := range c {
		c[i] = clamp(c[i]*(1+s*r.NormFloat64()), 0, 1)
	}
	return c
}

// SampleIdentity draws the fixed traits of person id.
func SampleIdentity(id int64) Identity {
	r := newRand(id, streamIdentity)
	m := bern(r, 0.45)
	id0 := Identity{ID: id, Male: m}
	sex := 0.0
	if m {
		sex = 1
	}
	// Ages skew young as in CelebA (~77 % "Young").
	id0.Age = clamp(math.Pow(r.Float64(), 2.2), 0, 1)
	id0.HeadWidth = gauss(r, 1+0.03*sex, 0.04, 0.88, 1.12)
	id0.HeadHeight = gauss(r, 1, 0.04, 0.88, 1.12)
	id0.HeadDepth = gauss(r, 1, 0.04, 0.9, 1.1)
	id0.FaceLength = gauss(r, 1+0.04*sex, 0.05, 0.86, 1.16)
	id0.JawWidth = gauss(r, 0.95+0.1*sex, 0.07, 0.78, 1.22)
	id0.ChinWidth = gauss(r, 0.95+0.1*sex, 0.12, 0.65, 1.3)
	id0.ChinLength = gauss(r, 1, 0.1, 0.75, 1.3)
	id0.Cheeks = gauss(r, 1, 0.15, 0.75, 1.5)
	id0.Cheekbones = gauss(r, 1, 0.2, 0.6, 1.4)
	id0.EyeSpacing = gauss(r, 6.2, 0.3, 5.4, 7.0)
	id0.EyeSize = gauss(r, 1, 0.07, 0.85, 1.18)
	id0.EyeOpen = gauss(r, 1, 0.16, 0.6, 1.3)
	id0.EyeHeight = gauss(r, 0.6, 0.35, -0.3, 1.5)
	id0.EyeTilt = gauss(r, 0.04, 0.06, -0.1, 0.18)
	id0.NoseLength = gauss(r, 1+0.05*sex, 0.08, 0.8, 1.25)
	id0.NoseWidth = gauss(r, 1+0.08*sex, 0.12, 0.75, 1.4)
	id0.NoseTip = gauss(r, 1, 0.13, 0.7, 1.35)
	id0.NoseProjection = gauss(r, 1, 0.1, 0.75, 1.3)
	id0.MouthWidth = gauss(r, 1, 0.07, 0.82, 1.2)
	id0.LipFullness = gauss(r, 1-0.1*sex, 0.18, 0.55, 1.55)
	id0.BrowHeight = gauss(r, 1, 0.15, 0.6, 1.4)
	id0.BrowThickness = gauss(r, 0.9+0.25*sex, 0.2, 0.5, 1.6)
	id0.BrowArch = gauss(r, 0.9-0.4*sex, 0.35, 0, 1.6)
	id0.EarSize = gauss(r, 1, 0.08, 0.8, 1.2)
	id0.NeckWidth = gauss(r, 0.92+0.14*sex, 0.06, 0.78, 1.2)
	id0.EyeBags = clamp(0.6*id0.Age+0.25*r.Float64()+0.1*r.NormFloat64(), 0, 1)
	// Skin: a light-to-dark axis plus undertone; Pale_Skin is the light tail.
	tone := clamp(r.Float64()*0.75+0.12*r.NormFloat64(), -0.1, 1)
	if bern(r, 0.05) {
		tone = -0.15 - 0.1*r.Float64()
	}
	light := [3]float64{0.96, 0.80, 0.70}
	dark := [3]float64{0.36, 0.22, 0.15}
	switch {
	case tone < 0:
		id0.Skin = mix3(light, [3]float64{1, 0.92, 0.88}, -tone*4)
	default:
		id0.Skin = mix3(light, dark, tone)
	}
	id0.Skin = jitter3(r, id0.Skin, 0.03)
	irises := [][3]float64{{0.30, 0.18, 0.08}, {0.18, 0.10, 0.05}, {0.25, 0.45, 0.65}, {0.35, 0.45, 0.30}, {0.45, 0.35, 0.20}, {0.35, 0.40, 0.45}}
	w := []float64{0.35, 0.25, 0.13, 0.1, 0.1, 0.07}
	if tone > 0.45 {
		w = []float64{0.4, 0.55, 0.01, 0.01, 0.02, 0.01}
	}
	id0.Iris = jitter3(r, irises[pick(r, w)], 0.12)
	hairs := [][3]float64{{0.05, 0.04, 0.035}, {0.22, 0.13, 0.07}, {0.75, 0.60, 0.38}, {0.45, 0.18, 0.08}}
	hw := []float64{0.4, 0.4, 0.15, 0.05}
	if tone > 0.45 {
		hw = []float64{0.85, 0.15, 0, 0}
	}
	id0.BrowColor = jitter3(r, hairs[pick(r, hw)], 0.1)
	return id0
}

// pick returns an index drawn with the given weights.
func pick(r *rand.Rand, w []float64) int {
	s := 0.0
	for _, x := range w {
		s += x
	}
	u := r.Float64() * s
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

// deriveFromIdentity sets the attribute flags that the identity decides.
func deriveFromIdentity(a *Attributes, id Identity) {
	a.Male = id.Male
	a.Young = id.Age < 0.5
	a.BigNose = id.NoseLength*id.NoseWidth*id.NoseTip > 1.22
	a.PointyNose = !a.BigNose && id.NoseTip < 0.92 && id.NoseProjection > 1.0
	a.BigLips = id.LipFullness > 1.15
	a.NarrowEyes = id.EyeOpen < 0.8
	a.HighCheekbones = id.Cheekbones > 1.15
	a.Chubby = id.Cheeks > 1.28
	a.DoubleChin = id.Cheeks > 1.2 && id.Age > 0.3
	a.OvalFace = !a.Chubby && id.FaceLength/id.JawWidth > 1.06 && id.ChinWidth < 0.98
	lum := 0.3*id.Skin[0] + 0.59*id.Skin[1] + 0.11*id.Skin[2]
	a.PaleSkin = lum > 0.86
	a.BagsUnderEyes = id.EyeBags > 0.55
	a.ArchedEyebrows = id.BrowArch > 1.05
	a.BushyEyebrows = id.BrowThickness > 1.25
}

// ResampleAttributes keeps p's identity, camera and light and draws new
// attributes and style from seed.
func ResampleAttributes(p Params, seed int64) Params {
	r := newRand(seed, streamAttrs)
	id := p.Identity
	var a Attributes
	var s Style
	deriveFromIdentity(&a, id)
	male, age := id.Male, id.Age

	// Hair colour: gray with age, black for darker skin more often.
	lum := 0.3*id.Skin[0] + 0.59*id.Skin[1] + 0.11*id.Skin[2]
	cw := []float64{0.3, 0.34, 0.22, 0.04, 0.05} // black brown blond gray red
	if lum < 0.55 {
		cw = []float64{0.8, 0.15, 0.02, 0.03, 0}
	}
	if male {
		cw[2] *= 0.5
	}
	cw[3] += 2.5 * math.Max(0, age-0.55)
	colors := []string{ColorBlack, ColorBrown, ColorBlond, ColorGray, ColorRed}
	a.HairColor = colors[pick(r, cw)]
	rgb := map[string][3]float64{
		ColorBlack: {0.06, 0.05, 0.045}, ColorBrown: {0.28, 0.16, 0.08},
		ColorBlond: {0.82, 0.66, 0.40}, ColorGray: {0.66, 0.65, 0.64}, ColorRed: {0.55, 0.22, 0.09},
	}[a.HairColor]
	s.HairColor = jitter3(r, rgb, 0.04)
	for i, k := 0, gauss(r, 1, 0.12, 0.7, 1.3); i < 3; i++ {
		s.HairColor[i] = clamp(s.HairColor[i]*k, 0, 1)
	}

	// Style: men mostly short, women mostly long.
	var sw []float64 // short straight wavy long ponytail bun bald
	if male {
		sw = []float64{0.62, 0.1, 0.1, 0.05, 0.01, 0.01, 0.04 + 0.25*age}
	} else {
		sw = []float64{0.08, 0.24, 0.3, 0.18, 0.1, 0.08, 0.003}
	}
	styles := []string{HairShort, HairStraight, HairWavy, HairLong, HairPonytail, HairBun, HairBald}
	a.HairStyle = styles[pick(r, sw)]
	switch a.HairStyle {
	case HairBald:
		a.Bald = true
		a.HairColor = ""
	case HairStraight:
		a.StraightHair, a.LongHair = true, true
	case HairWavy:
		a.WavyHair, a.LongHair = true, true
	case HairLong:
		a.LongHair = true
		a.StraightHair = bern(r, 0.5)
		a.WavyHair = !a.StraightHair && bern(r, 0.3)
	case HairPonytail, HairBun:
		a.HairUp = true
	case HairShort:
		a.WavyHair = bern(r, 0.15)
		a.StraightHair = !a.WavyHair && bern(r, 0.2)
	}
	if !a.Bald {
		a.BlackHair = a.HairColor == ColorBlack
		a.BrownHair = a.HairColor == ColorBrown
		a.BlondHair = a.HairColor == ColorBlond
		a.GrayHair = a.HairColor == ColorGray
		a.RedHair = a.HairColor == ColorRed
	}
	a.Bangs = !a.Bald && bern(r, map[bool]float64{false: 0.24, true: 0.07}[male])
	a.RecedingHairline = !a.Bald && !a.Bangs && bern(r, map[bool]float64{false: 0.03, true: 0.1 + 0.35*age}[male])
	s.HairVolume = gauss(r, 1.4, 0.35, 0.7, 2.4)
	if a.WavyHair {
		s.HairVolume += 0.6
	}
	s.HairPart = gauss(r, 0, 0.5, -1, 1)
	s.HairSeed = int32(r.Uint32() >> 1)
	s.Hairline = gauss(r, 4.2, 0.4, 3.4, 5.2)
	if a.RecedingHairline {
		s.Hairline += 1.8
	}

	// Expression.
	a.Smiling = bern(r, 0.48)
	a.MouthSlightlyOpen = bern(r, 0.45)
	if a.Smiling {
		s.Smile = gauss(r, 0.75, 0.2, 0.4, 1)
		a.TeethShown = bern(r, 0.55)
	}
	if a.MouthSlightlyOpen || a.TeethShown {
		s.MouthOpen = gauss(r, 0.35, 0.1, 0.2, 0.6)
		if a.TeethShown {
			s.MouthOpen += 0.15
		}
	}
	a.MouthSlightlyOpen = s.MouthOpen > 0

	// Facial hair.
	if male {
		a.Beard = bern(r, 0.07)
		a.Goatee = !a.Beard && bern(r, 0.08)
		a.Mustache = a.Beard || (bern(r, 0.06) || (a.Goatee && bern(r, 0.6)))
		a.Sideburns = a.Beard || (!a.Bald && bern(r, 0.08))
		a.FiveOClockShadow = !a.Beard && !a.Goatee && bern(r, 0.2)
	}
	a.NoBeard = !a.Beard && !a.Goatee && !a.Mustache

	// Makeup.
	if !male {
		a.WearingLipstick = bern(r, 0.75)
		a.HeavyMakeup = a.WearingLipstick && bern(r, 0.6)
		a.RosyCheeks = bern(r, 0.12)
	}
	lips := [][3]float64{{0.75, 0.12, 0.18}, {0.62, 0.18, 0.22}, {0.80, 0.35, 0.40}, {0.50, 0.08, 0.12}, {0.72, 0.30, 0.28}}
	natural := [3]float64{id.Skin[0] * 0.86, id.Skin[1] * 0.56, id.Skin[2] * 0.58}
	s.LipColor = natural
	if a.WearingLipstick {
		s.LipColor = jitter3(r, lips[r.IntN(len(lips))], 0.08)
	}
	s.EyeShadow = jitter3(r, [][3]float64{{0.45, 0.30, 0.35}, {0.35, 0.25, 0.2}, {0.3, 0.3, 0.45}, {0.5, 0.35, 0.25}}[r.IntN(4)], 0.1)
	if a.RosyCheeks {
		s.Blush = gauss(r, 0.6, 0.15, 0.35, 0.9)
	} else if a.HeavyMakeup {
		s.Blush = 0.2
	}

	// Accessories.
	a.Eyeglasses = bern(r, 0.14+0.1*age)
	a.Sunglasses = a.Eyeglasses && bern(r, 0.22)
	s.GlassesRim = [][3]float64{{0.05, 0.05, 0.05}, {0.35, 0.2, 0.1}, {0.7, 0.6, 0.4}, {0.55, 0.55, 0.58}, {0.5, 0.1, 0.1}}[r.IntN(5)]
	s.GlassesW = gauss(r, 2.2, 0.2, 1.8, 2.7)
	s.GlassesH = gauss(r, 1.6, 0.2, 1.1, 2.0)
	a.WearingHat = bern(r, 0.07)
	s.HatBrim = bern(r, 0.6)
	s.HatColor = jitter3(r, [][3]float64{{0.1, 0.1, 0.12}, {0.6, 0.1, 0.1}, {0.15, 0.25, 0.5}, {0.75, 0.7, 0.6}, {0.3, 0.4, 0.25}, {0.85, 0.85, 0.85}}[r.IntN(6)], 0.1)
	a.WearingEarrings = bern(r, map[bool]float64{false: 0.38, true: 0.03}[male])
	s.EarringDrop = bern(r, 0.6)
	a.WearingNecklace = bern(r, map[bool]float64{false: 0.25, true: 0.04}[male])
	s.MetalColor = [][3]float64{{0.9, 0.75, 0.35}, {0.8, 0.8, 0.82}, {0.95, 0.93, 0.88}}[r.IntN(3)]
	a.WearingNecktie = male && bern(r, 0.13)
	s.ClothColor = [3]float64{r.Float64()*0.8 + 0.1, r.Float64()*0.8 + 0.1, r.Float64()*0.8 + 0.1}
	if bern(r, 0.35) { // dark or neutral clothes are common
		g := r.Float64()*0.5 + 0.05
		s.ClothColor = [3]float64{g, g, g * 1.05}
	}
	s.ClothColor2 = jitter3(r, mix3(s.ClothColor, [3]float64{0.95, 0.95, 0.95}, 0.6), 0.1)
	s.ClothStripe = bern(r, 0.2)
	s.VNeck = !a.WearingNecktie && bern(r, 0.4)
	s.TieColor = jitter3(r, [][3]float64{{0.5, 0.08, 0.1}, {0.1, 0.15, 0.4}, {0.2, 0.2, 0.22}}[r.IntN(3)], 0.15)

	s.GazeX = gauss(r, 0, 0.08, -0.2, 0.2)
	s.GazeY = gauss(r, 0, 0.05, -0.12, 0.12)
	a.Blurry = bern(r, 0.04)
	// CelebA's subjective label, made a fixed rule so it is learnable.
	a.Attractive = a.Young && !a.Chubby && !a.BagsUnderEyes && !a.DoubleChin && (a.HeavyMakeup || a.HighCheekbones || a.Smiling)

	// Background: soft two-tone gradient, studio or outdoor-ish colours.
	base := [3]float64{r.Float64(), r.Float64(), r.Float64()}
	base = mix3(base, [3]float64{0.6, 0.6, 0.6}, r.Float64()*0.6)
	s.BgTop = jitter3(r, base, 0.2)
	s.BgBottom = jitter3(r, mix3(base, [3]float64{0.2, 0.2, 0.2}, r.Float64()*0.6), 0.2)
	s.BgSeed = int32(r.Uint32() >> 1)

	p.Attrs, p.Style = a, s
	return p
}

// ResampleCamera keeps p's identity and attributes and draws a new camera
// and light: yaw within ±50° (mostly near frontal, as in FFHQ), pitch ±20°.
func ResampleCamera(p Params, seed int64) Params {
	r := newRand(seed, streamCamera)
	yaw := gauss(r, 0, 0.33, -MaxYaw, MaxYaw)
	pitch := gauss(r, 0, 0.12, -20*math.Pi/180, 20*math.Pi/180)
	radius := DefaultRadius * gauss(r, 1, 0.025, 0.93, 1.07)
	t := Pivot
	t[0] += 0.006 * r.NormFloat64()
	t[1] += 0.006 * r.NormFloat64()
	p.Camera = LookAtCamera(yaw, pitch, radius, DefaultFocal, t)

	// Light: a key from the front hemisphere plus sky/ground ambient.
	az := gauss(r, 0, 0.7, -1.4, 1.4)
	el := gauss(r, 0.45, 0.3, -0.1, 1.1)
	d := vec3{math.Sin(az) * math.Cos(el), math.Sin(el), math.Cos(az) * math.Cos(el)}
	warm := r.Float64()*0.3 - 0.1
	p.Light = Light{
		Dir:       [3]float64{d.x, d.y, d.z},
		Color:     [3]float64{1 + warm*0.5, 1, 1 - warm},
		Ambient:   jitter3(r, [3]float64{0.62, 0.62, 0.64}, 0.06),
		Ground:    jitter3(r, [3]float64{0.45, 0.40, 0.36}, 0.08),
		Softness:  r.Float64(),
		Intensity: gauss(r, 0.8, 0.15, 0.45, 1.1),
	}
	return p
}
