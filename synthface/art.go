package synthface

import (
	"fmt"
	"math"
	"strings"
)

// Art is how a head is depicted: as a photo, or as an artwork of the same
// head (same geometry, mask and camera). The styles give the diffusion
// model stylised prompts to learn, which the paper's style transfer
// (Sec. 4.4: "face → Greek statue") needs and SynthFace photos lack.
type Art uint8

const (
	ArtPhoto   Art = iota // the default render
	ArtStatue             // white marble: one stone material, blank eyes
	ArtBronze             // cast bronze: dark metal with coloured highlights
	ArtCartoon            // flat colours in three light bands, ink outlines
	ArtSketch             // pencil on paper: grey tones, hatching, outlines
)

// ArtNames are the names ParseArt accepts, in Art order.
var ArtNames = []string{"photo", "statue", "bronze", "cartoon", "sketch"}

// Arts are the artwork styles (every Art but ArtPhoto).
var Arts = []Art{ArtStatue, ArtBronze, ArtCartoon, ArtSketch}

func (a Art) String() string {
	if int(a) < len(ArtNames) {
		return ArtNames[a]
	}
	return fmt.Sprintf("art(%d)", a)
}

// ParseArt reads an art style name.
func ParseArt(s string) (Art, error) {
	for i, n := range ArtNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Art(i), nil
		}
	}
	return 0, fmt.Errorf("unknown art style %q (want one of %s)", s, strings.Join(ArtNames, ", "))
}

// ParseArts reads a comma-separated list of art styles; "all" is every
// artwork style.
func ParseArts(s string) ([]Art, error) {
	if strings.TrimSpace(s) == "all" {
		return append([]Art(nil), Arts...), nil
	}
	var out []Art
	for _, f := range strings.Split(s, ",") {
		a, err := ParseArt(f)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// monochrome styles hide colours, so captions must not name them.
func (a Art) monochrome() bool { return a == ArtStatue || a == ArtBronze || a == ArtSketch }

// phrases name the style at the start of a caption.
var artPhrases = map[Art][]string{
	ArtStatue:  {"A marble statue.", "A white marble sculpture.", "A statue carved in marble."},
	ArtBronze:  {"A bronze statue.", "A bronze sculpture.", "A bust cast in bronze."},
	ArtCartoon: {"A cartoon drawing.", "A cartoon illustration.", "A cartoon portrait."},
	ArtSketch:  {"A pencil sketch.", "A pencil drawing.", "A graphite sketch."},
}

// Phrase is the first way captions name a (empty for a photo): a prompt
// prefix the art text encoder learned, for front ends offering a style.
func (a Art) Phrase() string {
	if ps := artPhrases[a]; len(ps) > 0 {
		return ps[0]
	}
	return ""
}

// streamArt draws the art style and its caption phrasing.
const streamArt = 0xa8

// WithArt gives p an artwork style with probability prob, picked uniformly
// from arts, drawn from p.Seed's own stream (the photo parameters do not
// move). prob ≤ 0 or no arts leave p a photo.
func WithArt(p Params, prob float64, arts []Art) Params {
	p.Art = ArtPhoto
	if prob <= 0 || len(arts) == 0 {
		return p
	}
	r := newRand(p.Seed, streamArt)
	if r.Float64() < prob {
		p.Art = arts[r.IntN(len(arts))]
	}
	return p
}

// artCaptions prefixes each caption with a phrase naming the style.
func artCaptions(caps []string, art Art, seed int64) []string {
	ps := artPhrases[art]
	if len(ps) == 0 {
		return caps
	}
	r := newRand(seed, streamArt+1)
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = ps[r.IntN(len(ps))] + " " + c
	}
	return out
}

// artAttrs clears the attributes a monochrome artwork cannot show
// (colours of hair, skin and make-up) and marks hair colour unsayable.
func artAttrs(a Attributes, art Art) Attributes {
	if !art.monochrome() {
		return a
	}
	a.BlackHair, a.BlondHair, a.BrownHair, a.GrayHair, a.RedHair = false, false, false, false, false
	a.HeavyMakeup, a.WearingLipstick, a.RosyCheeks, a.PaleSkin = false, false, false, false
	a.colorless = true
	return a
}

var (
	marbleLin = lin([3]float64{0.93, 0.91, 0.87})
	bronzeLin = lin([3]float64{0.62, 0.43, 0.24})
)

// artMaterial replaces a surface's material for the sculpture styles: one
// stone or metal for every part, modulated a little by how dark the
// painted surface was, so carved features (brows, hair strands, pupils)
// keep a trace.
func (sh *shader) artMaterial(m material) material {
	k := 0.72 + 0.28*smoothstep(0, sh.skinLuma, m.albedo.luma())
	switch sh.s.p.Art {
	case ArtStatue:
		return material{albedo: marbleLin.mul(k), wrap: 0.45, spec: 0.1, shiny: 14}
	case ArtBronze:
		return material{albedo: bronzeLin.mul(k), wrap: 0, spec: 0.7, shiny: 28, metal: true}
	}
	return m
}

// toonBand quantises diffuse light into three flat bands (the cartoon
// look).
func toonBand(diff float64) float64 {
	switch {
	case diff > 0.55:
		return 1
	case diff > 0.15:
		return 0.62
	}
	return 0.3
}

// artBackground desaturates the backdrop of the sculpture styles, as a
// gallery wall.
func (sh *shader) artBackground(c vec3) vec3 {
	switch sh.s.p.Art {
	case ArtStatue, ArtBronze:
		y := c.luma()
		return v3(y, y, y).lerp(c, 0.15)
	}
	return c
}

// artFinish applies the drawing styles' 2D passes to the final sRGB image:
// ink outlines on class boundaries (cartoon), or pencil tones, hatching
// and outlines on paper (sketch).
func artFinish(img, mask []uint8, size int, art Art) {
	if art != ArtCartoon && art != ArtSketch {
		return
	}
	edge := maskEdges(mask, size)
	for i := 0; i < size*size; i++ {
		r, g, b := float64(img[3*i])/255, float64(img[3*i+1])/255, float64(img[3*i+2])/255
		switch art {
		case ArtCartoon:
			// Push saturation up, then ink the outlines.
			y := 0.299*r + 0.587*g + 0.114*b
			r, g, b = y+1.35*(r-y), y+1.35*(g-y), y+1.35*(b-y)
			if edge[i] {
				r, g, b = r*0.15, g*0.15, b*0.15
			}
		case ArtSketch:
			y := 0.299*r + 0.587*g + 0.114*b
			tone := 0.97 - 0.6*(1-y)*(1-y) // pencil lays down less than black
			x, yy := i%size, i/size
			if y < 0.45 && (x+yy)%3 == 0 { // diagonal hatching in the shadows
				tone -= 0.18
			}
			if edge[i] {
				tone = math.Min(tone, 0.3)
			}
			r, g, b = tone, tone, tone*0.97
		}
		img[3*i] = uint8(clamp(r, 0, 1)*255 + 0.5)
		img[3*i+1] = uint8(clamp(g, 0, 1)*255 + 0.5)
		img[3*i+2] = uint8(clamp(b, 0, 1)*255 + 0.5)
	}
}

// maskEdges marks pixels whose right or lower neighbour has another class
// (background to cloth and cloth to neck included: they are outlines too).
func maskEdges(mask []uint8, size int) []bool {
	e := make([]bool, size*size)
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			i := y*size + x
			if x+1 < size && mask[i] != mask[i+1] {
				e[i] = true
			}
			if y+1 < size && mask[i] != mask[i+size] {
				e[i] = true
			}
		}
	}
	return e
}

// MarshalText writes the style's name (params JSON).
func (a Art) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads a style name.
func (a *Art) UnmarshalText(b []byte) error {
	v, err := ParseArt(string(b))
	*a = v
	return err
}
