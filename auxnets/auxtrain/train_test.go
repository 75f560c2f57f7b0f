package auxtrain

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"ddgi/auxnets"
)

// Every net trains a few tiny steps end to end, ships weights that load,
// and resumes from its checkpoint.
func TestTrainEveryNetTiny(t *testing.T) {
	dir := t.TempDir()
	opts := func(net string, steps int) Options {
		return Options{Net: net, Preset: "tiny", Steps: steps, Batch: 4, LR: 2e-3, Samples: 16, PerIdentity: 4,
			EvalSamples: 16, Dir: filepath.Join(dir, "run_"+net), Out: filepath.Join(dir, "aux_"+net+".safetensors"),
			Backbone: filepath.Join(dir, "aux_attributes.safetensors"), Seed: 1, Balance: true, Margin: 0.2, Workers: 1, Quiet: true, Checkpoint: time.Hour}
	}
	for _, net := range []string{auxnets.NetParser, auxnets.NetAttributes, auxnets.NetFID, auxnets.NetIdentity, auxnets.NetPerceptual} {
		res, err := Train(opts(net, 2))
		if err != nil {
			t.Fatalf("%s: %v", net, err)
		}
		if len(res) < 2 {
			t.Errorf("%s: result %v", net, res)
		}
		if _, err := os.Stat(opts(net, 2).Out); err != nil {
			t.Error(err)
		}
	}
	// Resume the parser to step 4 from its step-2 checkpoint.
	if _, err := Train(opts(auxnets.NetParser, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := auxnets.LoadParser(opts(auxnets.NetParser, 4).Out); err != nil {
		t.Fatal(err)
	}
	if _, err := auxnets.LoadPerceptual(opts(auxnets.NetPerceptual, 2).Out); err != nil {
		t.Fatal(err)
	}
}
