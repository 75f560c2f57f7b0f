package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"ddgi/data"
	"ddgi/diffusion/difftrain"
	"ddgi/imagebatch"
	"ddgi/kinds"
	"ddgi/train"
)

func init() {
	registerIn("train", command{name: "diffusion", summary: "train the latent U-Net (--stage base) or a ControlNet branch (--stage control --cond mask|scribble); resumable", run: runTrainDiffusion})
}

func runTrainDiffusion(args []string) error {
	fs := newFlags("train diffusion", "--stage base|control [--cond mask|scribble] --out runs/diff_… [flags]")
	stage := fs.String("stage", difftrain.StageBase, "base (U-Net on text) or control (a ControlNet branch, base frozen)")
	cond := fs.String("cond", "mask", "control stage: mask or scribble")
	preset := fs.String("preset", "small64", "U-Net preset (tiny, small64)")
	out := fs.String("out", "", "run folder (resumes from its newest checkpoint)")
	base := fs.String("base", "weights/diffusion_small64.safetensors", "control stage: trained base U-Net")
	steps := fs.Int64("steps", 20000, "total optimizer steps")
	batch := fs.Int("batch", 16, "batch size")
	lr := fs.Float64("lr", 2e-4, "Adam learning rate")
	textLR := fs.Float64("text-lr", 5e-5, "learning rate of a jointly trained text encoder")
	ema := fs.Float64("ema", 0.999, "EMA decay of the trained weights (previews and export use the EMA)")
	dropText := fs.Float64("drop-text", -1, "probability of the empty prompt (default 0.1 base, 0.5 control as ControlNet)")
	dropCond := fs.Float64("drop-cond", 0, "control stage: probability of a zero condition")
	nData := fs.Int("samples", 50000, "training samples: SynthFace renders this many on the fly; a --data folder uses at most this many")
	workers := fs.Int("workers", 1, "data workers")
	seed := fs.Uint64("seed", 1, "seed")
	ckptEvery := ckptEveryFlag(fs, 4*time.Minute, nil)
	sampleEvery := fs.Int64("sample-every", 1000, "steps between preview grids (preview-<step>.png: 8 bench samples; a --data folder with --val 0 shows its first training samples)")
	sampleSteps := fs.Int("sample-steps", 20, "DDIM steps of the preview samples")
	latent := fs.String("latent", "auto", "latent space: vae, patch, or auto (vae when --vae exists)")
	export := fs.String("export", "", "at the end write the EMA weights here (fp16), e.g. weights/diffusion_small64.safetensors")
	artF := addArtFlags(fs, "share of training samples drawn as artworks with style-naming captions (style transfer, paper Sec. 4.4); kept in the run's state")
	initFrom := fs.String("init", "", "base stage: start from these trained U-Net weights (fine-tuning, e.g. on --art-prob data) instead of random ones")
	lw := addEncoderFlags(fs)
	df := addDataFlags(fs)
	distF := addDistFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	every, err := ckptEvery()
	if err != nil {
		return err
	}
	switch {
	case *out == "":
		return errors.New("--out is required")
	case *stage != difftrain.StageBase && *stage != difftrain.StageControl:
		return fmt.Errorf("--stage %q: base or control", *stage)
	case *batch < 1 || *steps < 1:
		return errors.New("--batch and --steps must be ≥ 1")
	}
	df.needMasks = *stage == difftrain.StageControl && kinds.Cond(*cond) == kinds.Mask
	artProb, arts, err := artF.parse()
	if err != nil {
		return err
	}
	o := difftrain.Options{
		Stage: *stage, Cond: kinds.Cond(*cond), Preset: *preset, Latent: *latent, Base: *base, Init: *initFrom, Files: *lw,
		Steps: *steps, Batch: *batch, LR: *lr, TextLR: *textLR, EMA: *ema, DropText: *dropText, DropCond: *dropCond, Seed: *seed,
		Samples: *nData, Workers: *workers, Data: previewFallback(df),
		CheckpointEvery: every, PreviewEvery: *sampleEvery, PreviewSteps: *sampleSteps, Export: *export,
	}
	if artProb > 0 {
		o.ArtProb, o.Arts = artProb, arts
	}
	ctx, stop := train.SignalContext(context.Background())
	defer stop()
	group, leave, launched, err := distF.start(ctx, append([]string{"train", "diffusion"}, args...))
	if launched || err != nil {
		return err
	}
	defer leave()
	o.Group = group
	return difftrain.Train(ctx, *out, o)
}

// previewFallback is the data flags' opener, except that a folder without
// a validation split (--val 0) lends its first training samples to the
// previews.
func previewFallback(df *dataFlags) imagebatch.Source {
	folder := *df.spec != "" && !strings.EqualFold(*df.spec, data.SynthFaceSource)
	return func(split data.Split, size, n int, synth func(data.Split, int, int) data.Dataset) (data.Dataset, error) {
		if split == data.Bench && folder && *df.val == 0 {
			fmt.Fprintf(os.Stderr, "note: --val 0: previews show the first training samples of %s\n", *df.spec)
			split = data.Train
		}
		return df.open(split, size, n, synth)
	}
}
