package inversion

import (
	"math/rand/v2"

	"ddgi/synthface"
)

// counterfactuals are the one-attribute prompt changes a swapped training
// row may ask for (the weak rows of ddgi eval's controllability report):
// each states, in the caption vocabulary the critic's targets are parsed
// from, an attribute value the truth does not have.
var counterfactuals = []struct {
	attr   string
	truth  bool // the change applies where the truth's attribute is this
	prompt func(p synthface.Person) string
}{
	{"Smiling", false, func(p synthface.Person) string {
		return synthface.Describe([]string{"smiling", p.Age}, p.Noun, []string{p.Hair})
	}},
	{"Young", false, func(p synthface.Person) string {
		return synthface.Describe([]string{"young"}, p.Noun, []string{p.Hair})
	}},
	{"Young", true, func(p synthface.Person) string {
		return synthface.Describe([]string{"older"}, p.Noun, []string{p.Hair})
	}},
	{"Heavy_Makeup", false, func(p synthface.Person) string {
		return synthface.Describe([]string{p.Age}, p.Noun, []string{p.Hair, "heavy makeup"})
	}},
	{"Wearing_Lipstick", false, func(p synthface.Person) string {
		return synthface.Describe([]string{p.Age}, p.Noun, []string{p.Hair, "lipstick"})
	}},
}

// CounterfactualPrompt describes a face (its attributes, AttributeNames
// order) as the truth has it except for one attribute, the pick-th of the
// changes that apply to it: "A smiling older woman with brown hair." for
// a woman who does not smile. Captions of the training data state what
// the mask already shows, so the text path can learn to follow them by
// echoing the mask; a counterfactual row asks for what the condition does
// not show, which is what a user's prompt does (ddgi's, not the paper's).
func CounterfactualPrompt(attrs []float32, pick uint64) string {
	p := synthface.PersonOf(attrs)
	var fit []func(synthface.Person) string
	for _, c := range counterfactuals {
		if synthface.HasAttribute(attrs, c.attr) == c.truth {
			fit = append(fit, c.prompt)
		}
	}
	return fit[pick%uint64(len(fit))](p) // Young always fits one way
}

// swapPrompts returns the batch's captions with a share of the rows (drawn
// per step from the run's seed, the same on every rank) replaced by
// counterfactual prompts (rows without attributes, as a --data folder may
// have, keep theirs); rows lo…lo+n of the global batch are this rank's.
func swapPrompts(captions []string, attrs [][]float32, share float64, seed uint64, step, batch, lo int) []string {
	if share <= 0 {
		return captions
	}
	r := rand.New(rand.NewPCG(seed, uint64(step)))
	out := append([]string(nil), captions...)
	for i := 0; i < batch; i++ {
		u, pick := r.Float64(), r.Uint64()
		if j := i - lo; j >= 0 && j < len(out) && u < share && len(attrs[j]) > 0 {
			out[j] = CounterfactualPrompt(attrs[j], pick)
		}
	}
	return out
}
