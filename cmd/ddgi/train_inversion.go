package main

import (
	"context"
	"ddgi/dist"
	"errors"
	"fmt"
	"time"

	"ddgi/face"
	"ddgi/inversion"
	"ddgi/inversion/invtrain"
	"ddgi/kinds"
	"ddgi/torch"
	"ddgi/train"
)

func init() {
	registerIn("train", command{name: "inversion", summary: "train the mapping network M and AbSMNet T (two stages, multi-step)", run: runTrainInversion})
}

func runTrainInversion(args []string) error {
	fs := newFlags("train inversion", "--gan stylegan2|eg3d --cond mask|scribble [--ablation m-only|no-attn|gt-only|d0-only] --out runs/inv [flags]")
	gan := fs.String("gan", "stylegan2", "GAN to invert into: stylegan2 or eg3d; with --generator, read from that file")
	generator := fs.String("generator", "", "invert into this generator instead of the model set's (e.g. a `ddgi convert`ed public one, any resolution: W+ size from its config, renders resized for the losses)")
	cond := fs.String("cond", "mask", "visual condition: mask or scribble")
	ablation := fs.String("ablation", "", "Table 2 ablation: m-only, no-attn, gt-only, d0-only (empty: the full method)")
	out := fs.String("out", "", "run folder (resumes when it holds a checkpoint)")
	export := fs.String("export", "", "write the trained M and T (fp16) here when done, e.g. weights/inversion_stylegan2_mask.safetensors")
	weights := fs.String("weights", "weights", "folder with the trained E, G and auxiliary networks")
	steps1 := fs.Int("steps1", 3000, "stage-1 steps (M, Eq. 6)")
	steps2 := fs.Int("steps2", 3000, "stage-2 steps (T, Eq. 7)")
	batch := fs.Int("batch", 8, "batch size")
	lr := fs.Float64("lr", 5e-4, "Adam learning rate (5e-4: lowest stage-1 loss of 1e-4, 5e-4, 2e-3 over 150 steps; docs/inversion.md)")
	width := fs.Int64("width", 128, "hidden width of M and T")
	textPath := fs.Bool("text-path", false, "give M the prompt's pooled text embedding beside h_t (ddgi's addition to Eq. 2: the one pass on z_T sees the prompt only faintly through h_t); --init may name an inversion without one")
	n := fs.Int("n", 50000, "training samples cycled through: SynthFace renders this many; a --data folder uses at most this many")
	df := addDataFlags(fs)
	distF := addDistFlags(fs)
	tmin := fs.Int("tmin", 0, "smallest denoising step sampled")
	tmax := fs.Int("tmax", -1, "largest denoising step sampled (-1: T−1)")
	lamL2 := fs.Float64("l2", 1, "λ0: pixel L2 weight")
	lamLPIPS := fs.Float64("lpips", 0.8, "λ1: perceptual (F) weight; 0 skips F")
	lamID := fs.Float64("id", 0.1, "λ2: identity (R) weight; 0 skips R")
	anchor := fs.Float64("anchor", 0, "ddgi's fidelity anchor for stage 2: the share of Eq. 7's L2 and LPIPS taken against the ground truth instead of I^d_0, in [0, 1] (docs/inversion.md)")
	lamReg := fs.Float64("reg", 0.005, "λ3: ‖w − w̄‖ weight")
	lamAttr := fs.Float64("attr", 0, "weight of ddgi's prompt-attribute term (not in the paper): BCE of an attribute critic's logits on each render against the attributes the prompt states; 0 skips it")
	attrFocus := fs.String("attr-focus", "", "weights of single attributes inside --attr, e.g. Smiling=3,Young=3,Eyeglasses=3 (CelebA names; the rest weigh 1): more of each image's term for attributes the model follows least")
	attrNet := fs.String("attr-net", "", "attribute critic for --attr (default: the model set's aux_attributes.safetensors, which ddgi eval also scores with; a separately trained net keeps the eval's attribute accuracy an independent check)")
	every := fs.Int("checkpoint-every", 200, "steps between preview grids (preview-NNNNNNNNN.png: six held-out rows, SynthFace-bench or the --val part of a --data folder, else the first training samples; also at each stage's end)")
	ckptEvery := ckptEveryFlag(fs, 4*time.Minute, nil)
	d0Steps := fs.Int("d0-steps", 20, "DDIM steps of each I^d_0 sample (each step is one U-Net pass per guidance term: three with the default guidance)")
	pool := fs.Int("d0-pool", 2000, "training pairs of the I^d_0 stages (each costs one full diffusion sample, cached); 0: all")
	textPathOnly := fs.Bool("text-path-only", false, "stage 1 trains only M's text path, rendering through T as inference does (with --text-path and --init; M's code from h_t and T stay as --init gave them): teach the prompt's offset, e.g. with --attr, without moving the code T was trained with")
	swapPrompts := fs.Float64("swap-prompts", 0, "share of rows whose caption is replaced by a counterfactual one (one of smiling, age, heavy makeup, lipstick set against the truth), for --attr to ask for what the condition does not show; in the stages trained against the ground truth (stage 1, and stage 2 of --ablation gt-only); 0: the data's captions")
	pairNoise := fs.Bool("pair-noise", false, "the I^d_0 stages feed E, at t = T−1, the z_T each pair's I^d_0 was sampled from (what inference with that seed sees) instead of the noised ground truth (ddgi's; docs/inversion.md)")
	seed := fs.Uint64("seed", 1, "seed of the step and noise draws")
	stage1From := fs.String("stage1-from", "", "take M from this stage-1 model (a full run's latest/stage1_m-only.safetensors, same stage-1 flags) and train stage 2 only: no-attn and gt-only share the full method's stage 1")
	initFrom := fs.String("init", "", "start M and T from this trained inversion (same GAN preset, width and condition), e.g. to follow a GAN trained further; w̄ is taken from the current GAN")
	devName := fs.String("device", "cpu", "cpu, cuda or cuda:N (with ranks, a bare cuda is cuda:LOCAL_RANK: one GPU per rank)")
	precision := precisionFlag(fs, "here the frozen encoder E's taps and I^d_0 samples (M and T train in fp32)")
	textGuidance := fs.Float64("text-guidance", face.SampleGuidance.Text, "classifier-free guidance scale on the text of the I^d_0 samples (stage 2 targets); higher draws a prompt's style more strongly")
	artF := addArtFlags(fs, "share of training pairs drawn as artworks with style-naming captions (style transfer, paper Sec. 4.4: use with --ablation d0-only and a diffusion model trained on artworks)")
	artModel := fs.Bool("art", false, "use the artwork-trained U-Net (weights/diffusion_small64_art.safetensors) as E, as ddgi generate --art does")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	artProb, arts, err := artF.parse()
	if err != nil {
		return err
	}
	ckpt, err := ckptEvery()
	if err != nil {
		return err
	}
	abl, err := inversion.ParseAblation(*ablation)
	if err != nil {
		return err
	}
	switch {
	case *out == "":
		return errors.New("--out is required")
	case *steps1 < 0 || *steps2 < 0 || *batch < 1 || *n < 1 || *every < 1:
		return errors.New("--steps1/--steps2 must be ≥ 0 and --batch, --n, --checkpoint-every ≥ 1")
	case !(*swapPrompts >= 0 && *swapPrompts <= 1):
		return fmt.Errorf("--swap-prompts %g: want a share in [0, 1]", *swapPrompts)
	case *swapPrompts > 0 && *lamAttr == 0:
		return errors.New("--swap-prompts needs --attr > 0: only the attribute term asks for what a swapped prompt says")
	case *lamAttr < 0:
		return fmt.Errorf("--attr %g: want ≥ 0", *lamAttr)
	case *attrNet != "" && *lamAttr == 0:
		return errors.New("--attr-net needs --attr > 0")
	case *attrFocus != "" && *lamAttr == 0:
		return errors.New("--attr-focus needs --attr > 0")
	case *d0Steps < 1:
		return fmt.Errorf("--d0-steps %d: want ≥ 1", *d0Steps)
	case *textGuidance <= 0:
		return fmt.Errorf("--text-guidance %g: want > 0", *textGuidance)
	}
	if c, inGroup, err := dist.FromEnv(); err == nil && inGroup {
		*devName = dist.RankDevice(*devName, c) // one GPU per rank: cuda → cuda:LOCAL_RANK
	}
	focus, err := inversion.ParseAttrFocus(*attrFocus)
	if err != nil {
		return fmt.Errorf("--attr-focus: %w", err)
	}
	dev, err := torch.ParseDevice(*devName)
	if err != nil {
		return err
	}
	prec, err := precision()
	if err != nil {
		return err
	}
	ctx, stop := train.SignalContext(context.Background())
	defer stop()
	group, leave, launched, err := distF.start(ctx, append([]string{"train", "inversion"}, args...))
	if launched || err != nil {
		return err
	}
	defer leave()
	return invtrain.Run(ctx, invtrain.Options{
		Out: *out, Export: *export,
		Face:  face.Options{Weights: *weights, GAN: kinds.GANArch(*gan), Cond: kinds.Cond(*cond), Device: dev, Art: *artModel, Generator: *generator, Precision: prec},
		Width: *width, TextPath: *textPath, Open: df.open, N: *n, ArtProb: artProb, Arts: arts,
		Train: inversion.TrainConfig{Stage1Steps: *steps1, Stage2Steps: *steps2, Batch: *batch, LR: *lr,
			Weights: inversion.Weights{L2: *lamL2, LPIPS: *lamLPIPS, ID: *lamID, Reg: *lamReg, Attr: *lamAttr, AttrFocus: focus, Anchor: *anchor}, Ablation: abl, Cond: kinds.Cond(*cond),
			Seed: *seed, TMin: *tmin, TMax: *tmax, D0Pool: *pool, PairNoise: *pairNoise, TextPathOnly: *textPathOnly, SwapPrompts: *swapPrompts, Init: *initFrom},
		Stage1From: *stage1From, AttrNet: *attrNet, TextGuidance: *textGuidance, D0Steps: *d0Steps,
		PreviewEvery: int64(*every), CheckpointEvery: ckpt, Group: group,
	})
}
