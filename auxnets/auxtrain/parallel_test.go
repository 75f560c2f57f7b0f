package auxtrain

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"ddgi/auxnets"
	"ddgi/dist/disttest"
	"ddgi/torch"
	"ddgi/train"
)

// The ranks of TestTwoRanksTrainLikeOneProcess are this test binary run
// again (disttest.Main); the net they train is named by netEnv.
func TestMain(m *testing.M) { disttest.Main(m, parallelTrain) }

const netEnv = "DDGI_AUXTEST_NET"

// parallelTrain trains the net netEnv names for 4 steps of global batch 4
// in dir as one rank of group (nil: one process) and returns its weights.
func parallelTrain(dir string, group train.Group) ([]float32, error) {
	torch.SetThreads(1)
	o := Options{Net: os.Getenv(netEnv), Preset: "tiny", Steps: 4, Batch: 4, LR: 2e-3, Samples: 8, EvalSamples: 8,
		Dir: dir, Seed: 3, Balance: true, Workers: 1, Quiet: true, Checkpoint: time.Hour, Group: group}
	r, run, err := prepare(o)
	if err != nil {
		return nil, err
	}
	if err := r.loop().Run(context.Background(), run, r); err != nil {
		return nil, err
	}
	return disttest.Weights(r.j.stores()["model"]), nil
}

// Two ranks of 2 rows each train the parser and the FID net (a classifier
// with class areas and balanced positives) as one process with batches of
// 4 does: augmentations are drawn for the whole batch and each rank keeps
// its rows.
func TestTwoRanksTrainLikeOneProcess(t *testing.T) {
	for _, net := range []string{auxnets.NetParser, auxnets.NetFID} {
		t.Run(net, func(t *testing.T) {
			t.Setenv(netEnv, net)
			disttest.CheckLikeOneProcess(t, parallelTrain, 2, 1e-5)
		})
	}
}

// The nets whose loss couples a batch's rows refuse to split it.
func TestCoupledNetsRefuseRanks(t *testing.T) {
	for _, net := range []string{auxnets.NetIdentity, auxnets.NetPerceptual} {
		r := &runner{o: Options{Net: net, Batch: 4}}
		err := r.Distribute(train.Shard{Rank: 0, Size: 2})
		if err == nil || !strings.Contains(err.Error(), "cannot run on several ranks") {
			t.Errorf("%s: %v", net, err)
		}
	}
}
