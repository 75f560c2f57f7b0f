package synthface

import (
	"regexp"
	"strings"
)

// Mention is one attribute a caption states, with its stated value.
type Mention struct {
	Index int // into AttributeNames
	Value bool
}

// captionRule maps a phrase of SynthFace's caption vocabulary (see
// Captions) to the attributes it asserts: the parse lives next to the
// phrases it must cover.
type captionRule struct {
	re    *regexp.Regexp
	attrs map[string]bool
}

func rule(pattern string, attrs map[string]bool) captionRule {
	return captionRule{re: regexp.MustCompile(`\b(?:` + pattern + `)\b`), attrs: attrs}
}

func on(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// captionRules covers every phrase Captions can emit.
var captionRules = []captionRule{
	rule(`man|gentleman|guy|he`, on("Male")),
	rule(`woman|lady|girl|she`, map[string]bool{"Male": false}),
	rule(`young`, on("Young")),
	rule(`middle-aged|older`, map[string]bool{"Young": false}),
	rule(`(?:black|dark)(?: \w+){0,3} hair`, on("Black_Hair")),
	rule(`(?:brown|brunette)(?: \w+){0,3} hair`, on("Brown_Hair")),
	rule(`(?:blond|blonde|golden)(?: \w+){0,3} hair`, on("Blond_Hair")),
	rule(`(?:gray|grey|silver)(?: \w+){0,3} hair`, on("Gray_Hair")),
	rule(`(?:red|ginger|auburn)(?: \w+){0,3} hair`, on("Red_Hair")),
	rule(`(?:wavy|curly)(?: \w+){0,3} hair`, on("Wavy_Hair")),
	rule(`straight(?: \w+){0,3} hair`, on("Straight_Hair")),
	rule(`long(?: \w+){0,3} hair`, on("Long_Hair")),
	rule(`bun|ponytail`, on("Hair_Up")),
	rule(`bangs|fringe`, on("Bangs")),
	rule(`arched (?:eyebrows|brows)`, on("Arched_Eyebrows")),
	rule(`(?:bushy|thick) eyebrows`, on("Bushy_Eyebrows")),
	rule(`(?:big|large) nose`, on("Big_Nose")),
	rule(`(?:pointy|pointed) nose`, on("Pointy_Nose")),
	rule(`(?:big|full) lips`, on("Big_Lips")),
	rule(`(?:narrow|small) eyes`, on("Narrow_Eyes")),
	rule(`high cheekbones`, on("High_Cheekbones")),
	rule(`oval face`, on("Oval_Face")),
	rule(`double chin`, on("Double_Chin")),
	rule(`bags under`, on("Bags_Under_Eyes")),
	rule(`(?:rosy|pink) cheeks`, on("Rosy_Cheeks")),
	rule(`(?:pale|fair) skin`, on("Pale_Skin")),
	rule(`receding hairline`, on("Receding_Hairline")),
	rule(`sideburns`, on("Sideburns")),
	rule(`beard`, on("Beard")),
	rule(`mustache|moustache`, on("Mustache")),
	rule(`goatee`, on("Goatee")),
	rule(`5 o'clock shadow|stubble`, on("5_o_Clock_Shadow")),
	rule(`mouth slightly open|slightly open mouth`, on("Mouth_Slightly_Open")),
	rule(`sunglasses`, on("Sunglasses", "Eyeglasses")),
	rule(`eyeglasses|glasses|spectacles`, on("Eyeglasses")),
	rule(`hat|cap`, on("Wearing_Hat")),
	rule(`earrings`, on("Wearing_Earrings")),
	rule(`necklace`, on("Wearing_Necklace")),
	rule(`heavy makeup|a lot of makeup`, on("Heavy_Makeup")),
	rule(`lipstick`, on("Wearing_Lipstick")),
	rule(`necktie|tie`, on("Wearing_Necktie")),
	rule(`smiling`, on("Smiling")),
	rule(`bald`, on("Bald")),
	rule(`chubby`, on("Chubby")),
	rule(`attractive`, on("Attractive")),
}

// AttributeIndex is name's place in AttributeNames, matched without
// regard to case ("smiling" finds "Smiling"), or −1.
func AttributeIndex(name string) int {
	if i, ok := attrIndex[strings.ToLower(name)]; ok {
		return i
	}
	return -1
}

// attrIndex maps each lower-cased attribute name to its place.
var attrIndex = func() map[string]int {
	m := map[string]int{}
	for i, n := range AttributeNames {
		m[strings.ToLower(n)] = i
	}
	return m
}()

// CaptionAttributes returns the attributes a caption states, in
// AttributeNames order: the text side of attribute accuracy. Attributes the
// caption does not mention are absent (SynthFace captions never negate).
func CaptionAttributes(caption string) []Mention {
	c := strings.ToLower(caption)
	got := map[int]bool{}
	for _, r := range captionRules {
		if !r.re.MatchString(c) {
			continue
		}
		for name, v := range r.attrs {
			got[AttributeIndex(name)] = v
		}
	}
	out := make([]Mention, 0, len(got))
	for i := range AttributeNames {
		if v, ok := got[i]; ok {
			out = append(out, Mention{Index: i, Value: v})
		}
	}
	return out
}
