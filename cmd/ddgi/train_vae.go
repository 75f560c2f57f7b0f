package main

import (
	"context"
	"time"

	"ddgi/diffusion/vae/vaetrain"
	"ddgi/train"
)

func init() {
	registerIn("train", command{name: "vae", summary: "train the latent KL autoencoder on SynthFace or a --data folder; resumable", run: runTrainVAE})
}

func runTrainVAE(args []string) error {
	fs := newFlags("train vae", "[flags]")
	preset := fs.String("preset", "small64", "autoencoder preset: tiny or small64")
	out := fs.String("out", "runs/vae", "run folder (resumes from its newest checkpoint; checkpoints/, latest/, log.jsonl, loss.png, eval/)")
	steps := fs.Int64("steps", 3000, "optimizer steps")
	batchSize := fs.Int("batch", 16, "images per step (a resumed run keeps its own)")
	lr := fs.Float64("lr", 5e-4, "peak learning rate (Adam, cosine decay)")
	klW := fs.Float64("kl", 1e-6, "KL weight (SD uses 1e-6)")
	nTrain := fs.Int("n", 6000, "training images read once and held in memory (SynthFace renders this many; a --data folder gives at most this many)")
	nBench := fs.Int("bench", 256, "held-out images for PSNR and the latent scale: SynthFace-bench, or at most this many of a --data folder's --val part (a folder needs --val ≥ 8)")
	ckptMin := fs.Float64("ckpt-minutes", 3, "old name of --ckpt-every, in minutes")
	ckptEvery := ckptEveryFlag(fs, 3*time.Minute, func() (time.Duration, bool) {
		return time.Duration(*ckptMin * float64(time.Minute)), flagSet(fs, "ckpt-minutes")
	})
	seed := fs.Uint64("seed", 1, "initialisation and sampling seed")
	export := fs.String("export", "", "also write the weights here at the end (fp16), e.g. weights/vae_small64.safetensors")
	grid := fs.String("grid", "", "also write a bench reconstruction grid here (originals above reconstructions)")
	workers := fs.Int("workers", 2, "data workers")
	df := addDataFlags(fs)
	distF := addDistFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	every, err := ckptEvery()
	if err != nil {
		return err
	}
	o := vaetrain.Options{
		Preset: *preset, Steps: *steps, Batch: *batchSize, LR: *lr, KL: *klW, Seed: *seed,
		Data: df.open, Samples: *nTrain, Bench: *nBench, Workers: *workers,
		CheckpointEvery: every, Export: *export, Grid: *grid,
	}
	ctx, stop := train.SignalContext(context.Background())
	defer stop()
	group, leave, launched, err := distF.start(ctx, append([]string{"train", "vae"}, args...))
	if launched || err != nil {
		return err
	}
	defer leave()
	o.Group = group
	return vaetrain.Train(ctx, *out, o)
}
