package auxtrain

import (
	"context"
	"os"
	"path/filepath"
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
// The identity net trains one step and returns Adam's moments instead,
// (1−β1)·g and (1−β2)·g², the averaged gradient itself: its batch norm
// removes any constant shift of the embedding, so the parameters that only
// shift it (fc.bias, a last-stage norm bias whose ReLU never closes) have
// gradients of 0 up to float noise, and Adam turns noise of either sign
// into a full ±lr step that one process and two ranks draw differently.
func parallelTrain(dir string, group train.Group) ([]float32, error) {
	torch.SetThreads(1)
	o := Options{Net: os.Getenv(netEnv), Preset: "tiny", Steps: 4, Batch: 4, LR: 2e-3, Samples: 8, EvalSamples: 8,
		Dir: dir, Seed: 3, Balance: true, Workers: 1, Quiet: true, Checkpoint: time.Hour, Group: group,
		PerIdentity: 2, Backbone: os.Getenv(backboneEnv)}
	if o.Net == auxnets.NetIdentity {
		o.Steps = 1
	}
	r, run, err := prepare(o)
	if err != nil {
		return nil, err
	}
	if err := r.loop().Run(context.Background(), run, r); err != nil {
		return nil, err
	}
	if o.Net != auxnets.NetIdentity {
		return disttest.Weights(r.j.stores()["model"]), nil
	}
	var w []float32
	for _, m := range r.j.opt().Moments() {
		w = append(w, m.Float32s()...)
	}
	return w, nil
}

// Two ranks of 2 rows each train the parser, the FID net (a classifier
// with class areas and balanced positives) and the perceptual net's
// calibration (distortions of each pair ranked) as one process with
// batches of 4 does: augmentations and distortions are drawn for the whole
// batch and each rank keeps its rows. The identity net's batch norm and
// ArcFace loss run on the gathered batch.
func TestTwoRanksTrainLikeOneProcess(t *testing.T) {
	for _, net := range []string{auxnets.NetParser, auxnets.NetFID, auxnets.NetPerceptual, auxnets.NetIdentity} {
		t.Run(net, func(t *testing.T) {
			t.Setenv(netEnv, net)
			if net == auxnets.NetPerceptual {
				t.Setenv(backboneEnv, tinyBackbone(t))
			}
			tol := 1e-5
			if net == auxnets.NetIdentity {
				tol = 5e-5 // moments reach 5.3 (ArcFace's scale 30): 1e-5 of that
			}
			disttest.CheckLikeOneProcess(t, parallelTrain, 2, tol)
		})
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
