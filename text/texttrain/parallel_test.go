package texttrain

import (
	"context"
	"testing"

	"ddgi/dist/disttest"
	"ddgi/torch"
	"ddgi/train"
)

// The ranks of TestTwoRanksTrainLikeOneProcess are this test binary run
// again (disttest.Main).
func TestMain(m *testing.M) { disttest.Main(m, parallelTrain) }

// parallelTrain runs 20 steps of the tiny CLIP (global batch 6) in dir as
// one rank of group (nil: one process) and returns its weights.
func parallelTrain(dir string, group train.Group) ([]float32, error) {
	torch.SetThreads(1)
	o := tinyOptions(20)
	o.EvalEvery = 10
	o.Group = group
	run, err := train.OpenRank(dir, group)
	if err != nil {
		return nil, err
	}
	j, err := New(context.Background(), run, o)
	if err != nil {
		return nil, err
	}
	if err := j.Loop().Run(context.Background(), run, j); err != nil {
		return nil, err
	}
	return embeddings(j)
}

// embeddings are the trained model's unit-norm caption and image
// embeddings of every training pair (first captions) and its temperature:
// what the model computes. (Its raw weights are not compared: the
// normalisation leaves each weight row's scale direction a gradient at
// float-noise level, which Adam at this learning rate turns into steps
// that differ with the summation order: 5.6e-4 after 20 steps on one AMD
// EPYC, 7.5e-5 on another, whatever the split.)
func embeddings(j *Job) ([]float32, error) {
	idx := make([]int, j.trainSet.Len())
	caps := make([]string, len(idx))
	for i := range idx {
		idx[i], caps[i] = i, j.trainSet.Captions[i][0]
	}
	var out []float32
	err := torch.Try(func() {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				ids, err := j.tok.EncodeBatch(caps, int(j.st.Config.Encoder.Context))
				if err != nil {
					panic(&torch.Error{Op: "tokenize", Msg: err.Error()})
				}
				txt, img := j.model.Embed(ids, j.trainSet.Images(idx))
				out = append(append(txt.Float32s(), img.Float32s()...), j.model.LogitScale.Float32s()...)
			})
		})
	})
	return out, err
}

// Two ranks of 3 rows each train the CLIP as one process with batches of 6
// does: the embeddings are gathered, so the contrastive loss sees all six
// pairs' negatives on every rank, and the towers' gradients (each rank's
// rows' share) are added while backward runs, while the temperature's
// (whole on every rank) is averaged. Compared on the trained model's
// embeddings (embeddings): 7.2e-6 after 20 steps (the warm-up takes the
// learning rate to 0.1); summing the temperature's gradient gives 2.6e-3,
// averaging the towers' 0.11.
func TestTwoRanksTrainLikeOneProcess(t *testing.T) {
	disttest.CheckLikeOneProcess(t, parallelTrain, 2, 5e-5)
}
