package difftrain

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

// parallelTrain runs 4 steps of the tiny U-Net with a jointly trained text
// encoder (global batch 4) in dir as one rank of group (nil: one process)
// and returns the U-Net's and the text encoder's weights.
func parallelTrain(dir string, group train.Group) ([]float32, error) {
	torch.SetThreads(1)
	o := tinyOptions("", 4)
	o.Batch, o.Group = 4, group
	run, err := train.OpenRank(dir, group)
	if err != nil {
		return nil, err
	}
	j, err := New(run, o)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	if err := j.Loop().Run(context.Background(), run, j); err != nil {
		return nil, err
	}
	return disttest.Weights(j.trained, j.textS), nil
}

// Two ranks of 2 rows each over loopback Gloo train the U-Net and the
// jointly trained text encoder as one process with batches of 4 does:
// every rank draws the whole batch's latents, drops, timesteps and noise
// and keeps its rows.
func TestTwoRanksTrainLikeOneProcess(t *testing.T) {
	d := disttest.Compare(t, parallelTrain, 2)
	// Adam's first step moves each weight by lr·g/(|g|+ε): by ±lr for a
	// clear gradient, by a rounding-sensitive fraction of lr for one near
	// zero. Summing the batch in another order gives the latter 2e-5 here
	// (the same after 1, 2 and 4 steps); a rank that trains on the wrong
	// rows moves weights by about lr (1e-3).
	t.Logf("max |Δw| = %.3g against one process (lr %g)", d, tinyOptions("", 1).LR)
	if d > 5e-5 {
		t.Fatalf("weights differ from one process by %g", d)
	}
}
