package metrics

import (
	"ddgi/synthface"
	"ddgi/torch"
)

// MentionHits counts the attributes a caption states (synthface.
// CaptionAttributes) that the classifier's probabilities p (one image,
// AttributeNames order) agree with at 0.5.
func MentionHits(p []float32, ms []synthface.Mention) float64 {
	var h float64
	for _, m := range ms {
		if (p[m.Index] > 0.5) == m.Value {
			h++
		}
	}
	return h
}

// AttributeAccuracy is ddgi's text-consistency score: over all images, the
// fraction of attributes named in each image's prompt that the attribute
// classifier finds in the image. probs is [N, NumAttributes].
func AttributeAccuracy(probs *torch.Tensor, prompts []string) (hits, mentions float64) {
	k := int(probs.Size(1))
	p := probs.Float32s()
	for i, c := range prompts {
		ms := synthface.CaptionAttributes(c)
		hits += MentionHits(p[i*k:(i+1)*k], ms)
		mentions += float64(len(ms))
	}
	return hits, mentions
}

// Rows copies a [N,D] tensor to float64 rows.
func Rows(t *torch.Tensor) [][]float64 {
	n, d := int(t.Size(0)), int(t.Size(1))
	v := t.Detach().To(torch.Float64).Float64s()
	out := make([][]float64, n)
	for i := range out {
		out[i] = v[i*d : (i+1)*d]
	}
	return out
}
