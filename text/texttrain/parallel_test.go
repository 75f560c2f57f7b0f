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
	return disttest.Weights(j.store), nil
}

// Two ranks of 3 rows each train the CLIP as one process with batches of 6
// does: the embeddings are gathered, so the contrastive loss sees all six
// pairs' negatives on every rank, and the towers' gradients (each rank's
// rows' share) are added while the temperature's (whole on every rank) is
// averaged. Measured: 1.6e-6 after 1 step, 7.5e-5 after 20 (the warm-up
// takes the learning rate to 0.1): the embeddings are unit-normalised, so
// the weights' scale directions get gradients at float-noise level, which
// Adam turns into steps. Summing the temperature's gradient instead gives
// 7.9e-2, no synchronisation 0.8.
func TestTwoRanksTrainLikeOneProcess(t *testing.T) {
	disttest.CheckLikeOneProcess(t, parallelTrain, 2, 2e-4)
}
