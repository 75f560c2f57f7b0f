package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"ddgi/auxnets"
	"ddgi/auxnets/auxtrain"
	"ddgi/data"
	"ddgi/train"
)

func init() {
	registerIn("train", command{name: "aux", summary: "train an auxiliary net (identity, parser, perceptual, attributes, fid, art) on SynthFace or a dataset folder (resumable)", run: runTrainAux})
}

// auxDefaults are per-net defaults: steps, batch, cached training samples.
var auxDefaults = map[string][3]int{
	auxnets.NetParser:     {1500, 16, 6000},
	auxnets.NetAttributes: {1500, 32, 8000},
	auxnets.NetFID:        {1200, 32, 8000},
	auxnets.NetIdentity:   {3000, 32, 6000},
	auxnets.NetPerceptual: {300, 8, 1600},
	auxnets.NetArt:        {1000, 32, 6000},
}

func runTrainAux(args []string) error {
	fs := newFlags("train aux", "--net identity|parser|perceptual|attributes|fid|art [flags]")
	net := fs.String("net", "", "which net: identity, parser, perceptual, attributes, fid or art (depiction style, for style transfer); parser, attributes and fid also learn from a --data folder, the others need SynthFace's labels")
	preset := fs.String("preset", "small64", "config preset: tiny or small64")
	steps := fs.Int("steps", 0, "training steps (0: the net's default)")
	batch := fs.Int("batch", 0, "batch size (0: the net's default)")
	samples := fs.Int("samples", 0, "training samples rendered (SynthFace) or read (--data folder; default: all) once and cached (0: the net's default)")
	df := addDataFlags(fs)
	per := fs.Int("per-identity", 20, "identity: renders per person (people = samples/per-identity)")
	margin := fs.Float64("margin", 0.2, "identity: ArcFace additive angular margin (ramped up over the first 40%)")
	lr := fs.Float64("lr", 2e-3, "Adam learning rate (linear decay over the last 30%)")
	evalN := fs.Int("eval", 1000, "SynthFace-bench samples for the held-out accuracy (a --data folder: at most this many of its --val samples)")
	dir := fs.String("run", "", "run folder (default runs/aux_<net>); resumes from its newest checkpoint (<run>/latest/)")
	out := fs.String("out", "", "shipped fp16 weights (default weights/aux_<net>.safetensors; \"-\" skips)")
	backbone := fs.String("backbone", "weights/aux_attributes.safetensors", "perceptual: attribute-net weights whose encoder F uses")
	balance := fs.Bool("balance", true, "attributes/fid: weight rare attributes' positives by √(neg/pos), clamped to [1,5]")
	seed := fs.Int64("seed", 1, "seed")
	workers := fs.Int("workers", min(2, runtime.NumCPU()), "render workers")
	quiet := &quietFlag // every command has --quiet (newFlags)
	ckptEvery := ckptEveryFlag(fs, 3*time.Minute, nil)
	distF := addDistFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	every, err := ckptEvery()
	if err != nil {
		return err
	}
	d, ok := auxDefaults[*net]
	if !ok {
		fs.Usage()
		return fmt.Errorf("--net must be identity, parser, perceptual, attributes, fid or art (got %q)", *net)
	}
	o := auxtrain.Options{Net: *net, Preset: *preset, Steps: pick(*steps, d[0]), Batch: pick(*batch, d[1]),
		Samples: pick(*samples, d[2]), PerIdentity: *per, Margin: *margin, LR: *lr, EvalSamples: *evalN, Backbone: *backbone,
		Seed: *seed, Balance: *balance, Workers: *workers, Quiet: *quiet, Checkpoint: every,
		Dir: *dir, Out: *out}
	if o.Dir == "" {
		o.Dir = filepath.Join("runs", "aux_"+*net)
	}
	switch o.Out {
	case "":
		o.Out = filepath.Join("weights", "aux_"+*net+".safetensors")
	case "-":
		o.Out = ""
	}
	if *net == auxnets.NetPerceptual && o.LR == 2e-3 {
		o.LR = 2e-2
	}
	if !isSynthFace(*df.spec) {
		// parser, attributes and fid learn a folder's masks and attribute
		// labels; its --val samples are the held-out set.
		if err := auxtrain.FolderNet(*net); err != nil {
			return err
		}
		if *df.val < 2 {
			return fmt.Errorf("--data %s: hold out samples for the final evaluation with --val N (N ≥ 2)", *df.spec)
		}
		n := o.Samples
		if !flagSet(fs, "samples") {
			n = 0 // the whole folder
		}
		var err error
		if o.Data, err = df.open(data.Train, auxnets.InputSize, n, nil); err != nil {
			return err
		}
		if o.Bench, err = df.open(data.Bench, auxnets.InputSize, o.EvalSamples, nil); err != nil {
			return err
		}
	}
	ctx, stop := train.SignalContext(context.Background())
	defer stop()
	group, leave, launched, err := distF.start(ctx, append([]string{"train", "aux"}, args...))
	if launched || err != nil {
		return err
	}
	defer leave()
	o.Group = group
	res, err := auxtrain.Train(ctx, o)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(os.Stdout, "%s\t%.4f\n", k, res[k])
	}
	return nil
}

func pick(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
