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
	for _, net := range []string{auxnets.NetParser, auxnets.NetAttributes, auxnets.NetFID, auxnets.NetIdentity, auxnets.NetPerceptual, auxnets.NetArt} {
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

// TestArtNetLearnsStyles: a tiny style classifier trained briefly on
// artworks tells styles apart on held-out bench renders far above chance
// (1 in 5), and the shipped file loads as an art net.
func TestArtNetLearnsStyles(t *testing.T) {
	dir := t.TempDir()
	o := Options{Net: auxnets.NetArt, Preset: "tiny", Steps: 120, Batch: 16, LR: 5e-3, Samples: 160, EvalSamples: 100,
		Dir: filepath.Join(dir, "run"), Out: filepath.Join(dir, "aux_art.safetensors"), Seed: 1, Workers: 2, Quiet: true, Checkpoint: time.Hour}
	res, err := Train(o)
	if err != nil {
		t.Fatal(err)
	}
	if res["style_acc"] < 0.35 {
		t.Errorf("style accuracy %.2f after 120 tiny steps (chance 0.2): %v", res["style_acc"], res)
	}
	c, err := auxnets.LoadClassifier(o.Out, auxnets.NetArt)
	if err != nil {
		t.Fatal(err)
	}
	if c.Config.Outputs() != 5 {
		t.Errorf("art net has %d outputs", c.Config.Outputs())
	}
}
