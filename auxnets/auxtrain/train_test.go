package auxtrain

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/torch"
	"ddgi/train"
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
		res, err := Train(context.Background(), opts(net, 2))
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
	if _, err := Train(context.Background(), opts(auxnets.NetParser, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := auxnets.LoadParser(opts(auxnets.NetParser, 4).Out, torch.CPU); err != nil {
		t.Fatal(err)
	}
	if _, err := auxnets.LoadPerceptual(opts(auxnets.NetPerceptual, 2).Out, torch.CPU); err != nil {
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
	res, err := Train(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res["style_acc"] < 0.35 {
		t.Errorf("style accuracy %.2f after 120 tiny steps (chance 0.2): %v", res["style_acc"], res)
	}
	c, err := auxnets.LoadClassifier(o.Out, auxnets.NetArt, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if c.Config.Outputs() != 5 {
		t.Errorf("art net has %d outputs", c.Config.Outputs())
	}
}

// TestParserLossFallsAndResumes: a tiny parser's logged loss falls over 30
// steps, and a run paused at step 12 (MaxSteps) and resumed ends with
// weights bit-identical to the uninterrupted run's.
func TestParserLossFallsAndResumes(t *testing.T) {
	dir := t.TempDir()
	o := Options{Net: auxnets.NetParser, Preset: "tiny", Steps: 30, Batch: 4, LR: 5e-3, Samples: 16, EvalSamples: 8,
		Seed: 1, Workers: 1, Quiet: true, Checkpoint: time.Hour}
	o.Dir = filepath.Join(dir, "whole")
	if _, err := Train(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	run, err := train.Open(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	steps, vals, err := run.ReadLog()
	if err != nil {
		t.Fatal(err)
	}
	if l := vals["loss"]; len(steps) != 3 || !(l[2] < 0.9*l[0]) {
		t.Fatalf("logged loss %v at steps %v, want 3 rows and a clear fall", l, steps)
	}

	p := o
	p.Dir, p.MaxSteps = filepath.Join(dir, "paused"), 12
	if res, err := Train(context.Background(), p); err != nil || res != nil {
		t.Fatalf("paused run: result %v, err %v; want neither", res, err)
	}
	p.MaxSteps = 0
	if res, err := Train(context.Background(), p); err != nil || res["bench_acc"] <= 0 {
		t.Fatalf("resumed run: result %v, err %v", res, err)
	}
	a, err := os.ReadFile(filepath.Join(o.Dir, "latest", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(p.Dir, "latest", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the resumed parser's weights differ from the uninterrupted run's")
	}
}

// TestFolderNeedsLabels: nets whose labels only SynthFace renders refuse
// a dataset folder with one line, and a folder lacking the labels a net
// learns is named before training.
func TestFolderNeedsLabels(t *testing.T) {
	for _, net := range []string{auxnets.NetIdentity, auxnets.NetPerceptual, auxnets.NetArt} {
		if err := FolderNet(net); err == nil {
			t.Errorf("%s accepted a folder", net)
		}
	}
	plain := make([]*data.Sample, 2)
	for i := range plain {
		plain[i] = &data.Sample{Image: make([]uint8, 8*8*3), Size: 8, Mask: make([]uint8, 64)}
	}
	if err := checkLabels(auxnets.NetParser, plain); err != nil {
		t.Errorf("parser: %v", err)
	}
	if err := checkLabels(auxnets.NetAttributes, plain); err == nil {
		t.Error("attributes accepted samples without attribute labels")
	}
}

// TestIdentityPeopleCount: the last person may have fewer renders than
// --per-identity (its label must still name a class), and fewer than two
// people is refused before training.
func TestIdentityPeopleCount(t *testing.T) {
	c, err := auxnets.Preset(auxnets.NetIdentity, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	j, err := newJob(c, Options{Net: auxnets.NetIdentity, Samples: 30, PerIdentity: 20, LR: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	if n := j.(*identityJob).head.Weight.Size(0); n != 2 {
		t.Errorf("30 samples at 20 a person: %d classes, want 2", n)
	}
	if _, err := newJob(c, Options{Net: auxnets.NetIdentity, Samples: 20, PerIdentity: 20, LR: 1e-3}); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Errorf("one person: %v", err)
	}
}
