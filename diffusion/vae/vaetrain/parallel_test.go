package vaetrain

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

// parallelTrain runs 4 steps of the tiny autoencoder (global batch 4) in
// dir as one rank of group (nil: one process) and returns its weights.
func parallelTrain(dir string, group train.Group) ([]float32, error) {
	torch.SetThreads(1)
	o := tinyOptions(4)
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

// Two ranks of 2 images each train the autoencoder as one process with
// batches of 4 does: each takes its rows of the step's images and of the
// whole batch's posterior noise. On an AMD EPYC (AVX-512) two weights end
// 1.2e-5 and 7.6e-5 (0.025·lr) away, both from the first step: one in the
// decoder's mid attention to_k (softmax ignores a shift shared by a query's
// logits, so that direction's gradient is zero up to rounding), one in the
// mid block's conv; every other weight is within 1e-5. On earlier machines
// all were.
func TestTwoRanksTrainLikeOneProcess(t *testing.T) {
	disttest.CheckLikeOneProcessUpToNoise(t, parallelTrain, 2, 1e-5, 3e-4, 8)
}
