package inversion

import (
	"context"
	"path/filepath"
	"testing"

	"ddgi/data"
	"ddgi/dist/disttest"
	"ddgi/torch"
	"ddgi/train"
)

// The ranks of TestTwoRanksTrainLikeOneProcess are this test binary run
// again (disttest.Main).
func TestMain(m *testing.M) { disttest.Main(m, parallelTrain) }

// parallelTrain runs both stages of a tiny inversion (global batch 4, the
// full method: stage 2 trains against cached I^d_0) in dir as one rank of
// group (nil: one process) and returns M and T's weights.
func parallelTrain(dir string, group train.Group) ([]float32, error) {
	torch.SetThreads(1)
	c := Tiny()
	g := newLinearG(c, 32)
	m, _ := NewModel(c, torch.CPU, 5)
	m.Mapping.SetMeanLatent(g.MeanLatent())
	run, err := train.OpenRank(dir, group)
	if err != nil {
		return nil, err
	}
	tc := tinyTrain(3, 3)
	tc.Batch = 4
	tr := &Trainer{Cfg: tc, Model: m, G: g, E: newFakeEncoder(c), Data: data.NewSynthFace(data.Train, 32, 8),
		Cache: &D0Cache{Dir: filepath.Join(dir, "d0")}, Dev: torch.CPU}
	l := quietLoop()
	l.Group = group
	if err := tr.Train(context.Background(), run, l); err != nil {
		return nil, err
	}
	return disttest.Weights(m.Store), nil
}

// Two ranks of 2 rows each over loopback Gloo train M and T as one process
// with batches of 4 does: the trainer takes its rows of each batch, with
// the timesteps, noise and I^d_0 seeds one process gives those rows.
func TestTwoRanksTrainLikeOneProcess(t *testing.T) {
	disttest.CheckLikeOneProcess(t, parallelTrain, 2, 1e-5)
}
