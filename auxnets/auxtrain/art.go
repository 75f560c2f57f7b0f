package auxtrain

import (
	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/synthface"
	"ddgi/torch"
	"ddgi/train"
)

// artShare is the share of artworks in the art net's train and bench data:
// every style then appears as often as photos.
const artShare = 0.8

// artJob trains the depiction-style classifier: softmax over photo and
// SynthFace's artwork styles, the judge of style transfer.
type artJob struct {
	base
	net *auxnets.Classifier
}

func (j *artJob) dataset(o Options) data.Dataset {
	return data.NewSynthFaceArt(data.Train, auxnets.InputSize, o.Samples, artShare, synthface.Arts)
}

// styleLabels are the samples' styles as int64 class indices.
func styleLabels(ss []*data.Sample) *torch.Tensor {
	v := make([]int64, len(ss))
	for i, s := range ss {
		v[i] = int64(s.Art)
	}
	return torch.FromInt64(v, int64(len(ss)))
}

func (j *artJob) step(ss []*data.Sample, _ []int, g *torch.Generator, frac float64, sh train.Shard) float64 {
	// Photometric augmentation and blur: generated images are softer
	// than renders, and style must be told from shading, not sharpness.
	x, rows := rankRows(auxnets.Augment(imagebatch.SampleImages(ss), g, true), ss, sh)
	loss := torch.CrossEntropy(j.net.Logits(x), styleLabels(rows), nil, -100, 0, torch.ReduceMean)
	sh.Backward(loss, j.net.Store.Trainable())
	update(j.adam, j.net.Store, j.lr, frac)
	return loss.Item()
}

// eval reports accuracy on held-out bench renders, per true style and
// overall, clean and augmented.
func (j *artJob) eval(o Options) (Result, error) {
	bench, err := renderAll(data.NewSynthFaceArt(data.Bench, auxnets.InputSize, o.EvalSamples, artShare, synthface.Arts), o.Workers, o.Quiet, "render bench")
	if err != nil {
		return nil, err
	}
	k := len(synthface.ArtNames)
	hits, n := make([]float64, k), make([]float64, k)
	var augHits float64
	g := torch.NewGenerator(7)
	inBatches(bench, 64, func(_ int, b []*data.Sample) {
		x := imagebatch.SampleImages(b)
		pred := j.net.StyleProbs(x).Argmax(1, false).Int64s()
		aug := j.net.StyleProbs(auxnets.Augment(x, g, true)).Argmax(1, false).Int64s()
		for i, s := range b {
			n[s.Art]++
			if pred[i] == int64(s.Art) {
				hits[s.Art]++
			}
			if aug[i] == int64(s.Art) {
				augHits++
			}
		}
	})
	res := Result{}
	var all, total float64
	for a, name := range synthface.ArtNames {
		if n[a] > 0 {
			res["acc_"+name] = hits[a] / n[a]
		}
		all += hits[a]
		total += n[a]
	}
	res["style_acc"], res["style_acc_augmented"] = all/total, augHits/total
	return res, nil
}
