package texttrain

import "ddgi/synthface"

// Corpus returns the captions of SynthFace training seeds 0…n-1, drawn from
// the sampled attributes without rendering (the renderer only hides a few
// occluded accessories; the wording is the same). `ddgi train tokenizer`
// learns the vocabulary from it, and --tune new-tokens calls a token new
// when no caption of Corpus(20000) uses it.
func Corpus(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		p := synthface.SampleParams(int64(i))
		out = append(out, synthface.Captions(p.Attrs, p.Seed)...)
	}
	return out
}
