package synthface

import "testing"

// Every attribute a SynthFace caption states must agree with the render's
// attributes, and most attributes in the vocabulary must be found.
func TestCaptionAttributesMatchTruth(t *testing.T) {
	seen := map[int]bool{}
	for seed := int64(0); seed < 400; seed++ {
		p := SampleParams(seed)
		v := p.Attrs.Vector()
		for _, c := range Captions(p.Attrs, seed) {
			for _, m := range CaptionAttributes(c) {
				seen[m.Index] = true
				if (v[m.Index] > 0.5) != m.Value {
					t.Fatalf("seed %d caption %q: %s stated %v, truth %v", seed, c, AttributeNames[m.Index], m.Value, v[m.Index])
				}
			}
		}
	}
	if len(seen) < 38 {
		t.Errorf("only %d attributes ever recognised", len(seen))
	}
}
