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
	var w []float32
	for _, name := range j.store.Names() {
		w = append(w, j.store.Get(name).Float32s()...)
	}
	return w, nil
}

// Two ranks of 2 images each train the autoencoder as one process with
// batches of 4 does: each takes its rows of the step's images and of the
// whole batch's posterior noise.
func TestTwoRanksTrainLikeOneProcess(t *testing.T) {
	d := disttest.Compare(t, parallelTrain, 2)
	t.Logf("max |Δw| = %.3g against one process", d)
	if d > 1e-5 {
		t.Fatalf("weights differ from one process by %g", d)
	}
}
