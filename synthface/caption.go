package synthface

import (
	"math/rand/v2"
	"strings"
)

const streamCaption = 0xc4

// phrase is one fact with interchangeable wordings.
type phrase struct {
	kind  byte // 'h' has, 'w' wears, 'i' is
	words []string
	key   string
}

// facts lists what a caption may say about a, all of it true.
func facts(a Attributes, r *rand.Rand) []phrase {
	var ps []phrase
	hasP := func(key string, w ...string) { ps = append(ps, phrase{'h', w, key}) }
	wearP := func(key string, w ...string) { ps = append(ps, phrase{'w', w, key}) }
	isP := func(key string, w ...string) { ps = append(ps, phrase{'i', w, key}) }

	if !a.Bald && a.HairColor != "" {
		var adj []string
		if a.LongHair && r.IntN(2) == 0 {
			adj = append(adj, "long")
		}
		if a.HairStyle == HairShort && r.IntN(3) == 0 {
			adj = append(adj, "short")
		}
		switch {
		case a.WavyHair:
			adj = append(adj, []string{"wavy", "wavy", "curly"}[r.IntN(3)])
		case a.StraightHair:
			adj = append(adj, "straight")
		}
		col := map[string][]string{
			ColorBlack: {"black", "dark"}, ColorBrown: {"brown", "brunette"},
			ColorBlond: {"blond", "blonde", "golden"}, ColorGray: {"gray", "grey", "silver"},
			ColorRed: {"red", "ginger", "auburn"},
		}[a.HairColor]
		if r.IntN(5) > 0 && !a.colorless {
			adj = append(adj, col[r.IntN(len(col))])
		}
		if len(adj) > 0 {
			hasP("hair", strings.Join(adj, " ")+" hair")
		}
	}
	if a.HairUp {
		if a.HairStyle == HairBun {
			hasP("bun", "a bun", "a hair bun")
		} else {
			hasP("ponytail", "a ponytail")
		}
	}
	flag := func(on bool, add func(string, ...string), key string, w ...string) {
		if on {
			add(key, w...)
		}
	}
	flag(a.Bangs, hasP, "bangs", "bangs", "a fringe")
	flag(a.ArchedEyebrows, hasP, "arched", "arched eyebrows", "arched brows")
	flag(a.BushyEyebrows, hasP, "bushy", "bushy eyebrows", "thick eyebrows")
	flag(a.BigNose, hasP, "bignose", "a big nose", "a large nose")
	flag(a.PointyNose, hasP, "pointy", "a pointy nose", "a pointed nose")
	flag(a.BigLips, hasP, "biglips", "big lips", "full lips")
	flag(a.NarrowEyes, hasP, "narrow", "narrow eyes", "small eyes")
	flag(a.HighCheekbones, hasP, "cheekbones", "high cheekbones")
	flag(a.OvalFace, hasP, "oval", "an oval face")
	flag(a.DoubleChin, hasP, "doublechin", "a double chin")
	flag(a.BagsUnderEyes, hasP, "bags", "bags under the eyes", "bags under eyes")
	flag(a.RosyCheeks, hasP, "rosy", "rosy cheeks", "pink cheeks")
	flag(a.PaleSkin, hasP, "pale", "pale skin", "fair skin")
	flag(a.RecedingHairline, hasP, "receding", "a receding hairline")
	flag(a.Sideburns, hasP, "sideburns", "sideburns")
	flag(a.Beard, hasP, "beard", "a beard", "a full beard")
	flag(a.Mustache && !a.Beard, hasP, "mustache", "a mustache", "a moustache")
	flag(a.Goatee, hasP, "goatee", "a goatee")
	flag(a.FiveOClockShadow, hasP, "stubble", "a 5 o'clock shadow", "stubble")
	flag(a.MouthSlightlyOpen && !a.Smiling, hasP, "open", "mouth slightly open", "a slightly open mouth")
	flag(a.Sunglasses, wearP, "glasses", "sunglasses")
	flag(a.Eyeglasses && !a.Sunglasses, wearP, "glasses", "eyeglasses", "glasses", "spectacles")
	flag(a.WearingHat, wearP, "hat", "a hat", "a cap", "a hat")
	flag(a.WearingEarrings, wearP, "earrings", "earrings")
	flag(a.WearingNecklace, wearP, "necklace", "a necklace")
	flag(a.HeavyMakeup, wearP, "makeup", "heavy makeup", "a lot of makeup")
	flag(a.WearingLipstick && !a.HeavyMakeup, wearP, "lipstick", "lipstick")
	flag(a.WearingNecktie, wearP, "necktie", "a necktie", "a tie")
	flag(a.Smiling, isP, "smiling", "smiling")
	flag(a.Young, isP, "young", "young")
	flag(!a.Young, isP, "older", "middle-aged", "older")
	flag(a.Bald, isP, "bald", "bald")
	flag(a.Chubby, isP, "chubby", "chubby")
	flag(a.Attractive, isP, "attractive", "attractive")
	return ps
}

// Captions writes 5–10 captions in Multi-Modal CelebA-HQ style: each a
// random subset of true facts, synonyms and sentence order varied. Every
// visible accessory is named in at least one caption.
func Captions(a Attributes, seed int64) []string {
	r := newRand(seed, streamCaption)
	n := 5 + r.IntN(6)
	out := make([]string, n)
	force := map[string]int{}
	for _, k := range []string{"glasses", "hat", "earrings", "necklace", "bald", "beard"} {
		force[k] = r.IntN(n)
	}
	for c := 0; c < n; c++ {
		ps := facts(a, r)
		var chosen []phrase
		for _, p := range ps {
			if f, ok := force[p.key]; (ok && f == c) || r.Float64() < 0.45 {
				chosen = append(chosen, p)
			}
		}
		for len(chosen) < 2 && len(chosen) < len(ps) {
			p := ps[r.IntN(len(ps))]
			if !hasKey(chosen, p.key) {
				chosen = append(chosen, p)
			}
		}
		out[c] = sentence(a, chosen, r)
	}
	return out
}

func hasKey(ps []phrase, k string) bool {
	for _, p := range ps {
		if p.key == k {
			return true
		}
	}
	return false
}

// sentence renders chosen facts as one to three sentences.
func sentence(a Attributes, ps []phrase, r *rand.Rand) string {
	var nouns []string
	pron := "She"
	if a.Male {
		pron = "He"
		nouns = []string{"The man", "This man", "The gentleman", "This guy", "The person", "This person"}
	} else {
		nouns = []string{"The woman", "This woman", "The lady", "This lady", "The person", "This person"}
		if a.Young {
			nouns = append(nouns, "The girl")
		}
	}
	groups := map[byte][]string{}
	for _, p := range ps {
		groups[p.kind] = append(groups[p.kind], p.words[r.IntN(len(p.words))])
	}
	for _, k := range []byte{'h', 'w', 'i'} {
		g := groups[k]
		r.Shuffle(len(g), func(i, j int) { g[i], g[j] = g[j], g[i] })
	}
	order := []byte{'h', 'w', 'i'}
	r.Shuffle(3, func(i, j int) { order[i], order[j] = order[j], order[i] })
	var sents []string
	subj := nouns[r.IntN(len(nouns))]
	if len(ps) == 0 {
		return "A face of " + strings.ToLower(subj[4:]) + "."
	}
	// Sometimes one noun phrase: "A smiling woman with wavy hair and earrings."
	if r.IntN(5) == 0 && len(groups['h'])+len(groups['w']) > 0 {
		noun := "woman"
		if a.Male {
			noun = "man"
		}
		pre := ""
		if len(groups['i']) > 0 {
			pre = groups['i'][0] + " "
		}
		pre = article(pre+noun) + " " + pre
		with := append(append([]string{}, groups['h']...), groups['w']...)
		return pre + noun + " with " + list(with, r) + "."
	}
	for _, k := range order {
		g := groups[k]
		if len(g) == 0 {
			continue
		}
		s := subj
		if len(sents) > 0 {
			s = pron
		}
		switch k {
		case 'h':
			sents = append(sents, s+" has "+list(g, r)+".")
		case 'w':
			verb := []string{" wears ", " is wearing ", " has on "}[r.IntN(3)]
			sents = append(sents, s+verb+list(g, r)+".")
		case 'i':
			if len(g) == 1 && g[0] != "smiling" && r.IntN(2) == 0 {
				sents = append(sents, s+" looks "+g[0]+".")
			} else {
				sents = append(sents, s+" is "+list(g, r)+".")
			}
		}
	}
	return strings.Join(sents, " ")
}

func article(w string) string {
	if strings.ContainsRune("aeiou", rune(w[0])) {
		return "An"
	}
	return "A"
}

// list joins items as "a", "a and b" or "a, b, and c" (Oxford comma optional).
func list(items []string, r *rand.Rand) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	case 2:
		return items[0] + " and " + items[1]
	}
	sep := " and "
	if r.IntN(2) == 0 {
		sep = ", and "
	}
	return strings.Join(items[:len(items)-1], ", ") + sep + items[len(items)-1]
}
