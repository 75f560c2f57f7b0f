package auxtrain

import (
	"context"
	"os"
	"path/filepath"
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

const (
	netEnv      = "DDGI_AUXTEST_NET"
	backboneEnv = "DDGI_AUXTEST_BACKBONE" // the perceptual net's attribute weights
)

// parallelTrain trains the net netEnv names for 4 steps of global batch 4
// in dir as one rank of group (nil: one process) and returns its weights.
func parallelTrain(dir string, group train.Group) ([]float32, error) {
	torch.SetThreads(1)
	o := Options{Net: os.Getenv(netEnv), Preset: "tiny", Steps: 4, Batch: 4, LR: 2e-3, Samples: 8, EvalSamples: 8,
		Dir: dir, Seed: 3, Balance: true, Workers: 1, Quiet: true, Checkpoint: time.Hour, Group: group,
		Backbone: os.Getenv(backboneEnv)}
	r, run, err := prepare(o)
	if err != nil {
		return nil, err
	}
	if err := r.loop().Run(context.Background(), run, r); err != nil {
		return nil, err
	}
	return disttest.Weights(r.j.stores()["model"]), nil
}

// Two ranks of 2 rows each train the parser, the FID net (a classifier
// with class areas and balanced positives) and the perceptual net's
// calibration (distortions of each pair ranked) as one process with
// batches of 4 does: augmentations and distortions are drawn for the whole
// batch and each rank keeps its rows.
func TestTwoRanksTrainLikeOneProcess(t *testing.T) {
	for _, net := range []string{auxnets.NetParser, auxnets.NetFID, auxnets.NetPerceptual} {
		t.Run(net, func(t *testing.T) {
			t.Setenv(netEnv, net)
			if net == auxnets.NetPerceptual {
				t.Setenv(backboneEnv, tinyBackbone(t))
			}
			disttest.CheckLikeOneProcess(t, parallelTrain, 2, 1e-5)
		})
	}
}

// The identity net, whose batch norm couples a batch's rows, refuses to
// split it.
func TestCoupledNetsRefuseRanks(t *testing.T) {
	for _, net := range []string{auxnets.NetIdentity} {
		r := &runner{o: Options{Net: net, Batch: 4}}
		err := r.Distribute(train.Shard{Rank: 0, Size: 2})
		if err == nil || !strings.Contains(err.Error(), "cannot run on several ranks") {
			t.Errorf("%s: %v", net, err)
		}
	}
}

// tinyBackbone trains a tiny attribute net for one step and returns its
// weights file (the perceptual net calibrates on its features).
func tinyBackbone(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "aux_attributes.safetensors")
	o := Options{Net: auxnets.NetAttributes, Preset: "tiny", Steps: 1, Batch: 4, LR: 2e-3, Samples: 8, EvalSamples: 8,
		Dir: filepath.Join(dir, "run"), Out: out, Seed: 1, Balance: true, Workers: 1, Quiet: true, Checkpoint: time.Hour}
	if _, err := Train(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return out
}
