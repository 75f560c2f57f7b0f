// Package invtrain assembles `ddgi train inversion`: it loads the trained
// diffusion encoder E, the GAN G and the auxiliary nets F and R, opens the
// training data, builds M and T, and runs inversion.Trainer in a run folder
// under train.Loop. (It cannot live in package inversion: face, which
// loads E and G, imports inversion.)
package invtrain

import (
	"context"
	"ddgi/diffusion"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/face"
	"ddgi/inversion"
	"ddgi/synthface"
	"ddgi/train"
)

// Opener opens a split of the training source at size×size with n
// samples; synth builds the SynthFace variant when the source is
// SynthFace (the signature of cmd/ddgi's shared data flags).
type Opener func(split data.Split, size, n int, synth func(split data.Split, size, n int) data.Dataset) (data.Dataset, error)

// Options are one `ddgi train inversion` run.
type Options struct {
	Out    string // run folder; resumes from its newest checkpoint
	Export string // when set, M and T are written here in fp16 when done
	// Face names the trained E and G: weights folder, GAN, condition,
	// device, the artwork U-Net, another generator file.
	Face  face.Options
	Width int64 // hidden width of M and T
	// TextPath gives M the prompt's pooled embedding (inversion.TextPath).
	TextPath bool
	// Open opens the training data (nil: SynthFace only, data.Open's
	// default); N samples of it, SynthFace with ArtProb artworks of Arts.
	Open    Opener
	N       int
	ArtProb float64
	Arts    []synthface.Art
	// Train is the training config; Train.TMax < 0 means T−1, and
	// Train.ArtProb/Arts are recorded from the fields above.
	Train      inversion.TrainConfig
	Stage1From string
	// TextGuidance is the text guidance scale of the I^d_0 samples.
	TextGuidance float64
	// D0Steps is the sampler's step count for I^d_0 (0: the encoder's
	// default, 20 DDIM steps); part of the I^d_0 cache key.
	D0Steps int
	// PreviewEvery (steps) and CheckpointEvery (time) pace the run loop.
	PreviewEvery    int64
	CheckpointEvery time.Duration
	Log             io.Writer // notes and progress; nil: os.Stderr
	// AttrNet is the attribute critic of the prompt-attribute term (used
	// when Train.Weights.Attr ≠ 0; empty: the model set's
	// aux_attributes.safetensors, the same net ddgi eval scores with).
	AttrNet string
	// Group, when set, makes this process one rank of a data-parallel run
	// (package dist): rank 0 writes the run folder and the export.
	Group train.Group
}

// Run trains (or resumes) the inversion and exports it.
func Run(ctx context.Context, o Options) error {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	tr, err := Build(o)
	if err != nil {
		return err
	}
	run, err := train.OpenRank(o.Out, o.Group)
	if err != nil {
		return err
	}
	loop := train.Loop{PreviewEvery: o.PreviewEvery, CheckpointEvery: o.CheckpointEvery, Out: o.Log, Group: o.Group}
	if err := tr.Train(ctx, run, loop); err != nil {
		return err
	}
	if o.Export != "" && (o.Group == nil || o.Group.Rank() == 0) {
		if err := tr.Model.Save(o.Export, tr.Cfg, true); err != nil {
			return err
		}
		fmt.Fprintf(o.Log, "exported %s\n", o.Export)
	}
	return nil
}

// Build loads everything a run trains with, on o.Face.Device: E (U-Net,
// branch, text tower, VAE), G, F and R, a fresh M and T, and the data. The
// I^d_0 cache lives in the run folder o.Out.
func Build(o Options) (*inversion.Trainer, error) {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	abl := o.Train.Ablation
	fo := o.Face
	if o.TextGuidance > 0 && fo.Guidance == (diffusion.Guidance{}) {
		fo.Guidance = face.SampleGuidance
		fo.Guidance.Text = o.TextGuidance
	}
	if fo.Generator != "" {
		arch, err := face.GeneratorArch(fo.Generator)
		if err != nil {
			return nil, err
		}
		fo.GAN = arch
	}
	e, err := face.LoadEncoder(fo)
	if err != nil {
		return nil, err
	}
	if o.D0Steps > 0 {
		e.Steps = o.D0Steps
	}
	g, err := face.LoadGAN(fo.GAN, fo.Files()["gan"], fo.Device)
	if err != nil {
		return nil, err
	}
	cfg, err := e.InversionConfig(g.Styles(), g.StyleDim(), o.Width, fo.Cond)
	if err != nil {
		return nil, err
	}
	cfg.UseAttention = abl != inversion.NoAttn
	if o.TextPath {
		cfg.TextDim = e.Text.Enc.Config.Width()
	} else if o.Train.TextPathOnly {
		return nil, errors.New("--text-path-only needs --text-path")
	}
	if o.Train.SwapPrompts > 0 && !o.Train.TrainsAgainstTruth() {
		return nil, errors.New("--swap-prompts acts only in stages trained against the ground truth, and none runs here: give --steps1 > 0 (not with --ablation d0-only) or --steps2 > 0 with --ablation gt-only")
	}
	if o.Train.TextPathOnly && o.Train.Init == "" {
		return nil, errors.New("--text-path-only fine-tunes a trained inversion's text path through its T: give it with --init")
	}
	m, err := inversion.NewModel(cfg, fo.Device, o.Train.Seed)
	if err != nil {
		return nil, err
	}
	if err := m.Mapping.SetMeanLatent(g.MeanLatent()); err != nil {
		return nil, err
	}
	tc := o.Train
	if tc.TMax < 0 || tc.TMax >= e.Timesteps() {
		tc.TMax = e.Timesteps() - 1
	}
	if tc.TMin < 0 || tc.TMin > tc.TMax {
		return nil, fmt.Errorf("--tmin %d outside [0, %d]", tc.TMin, tc.TMax)
	}
	if a := tc.Weights.Anchor; !(a >= 0 && a <= 1) {
		return nil, fmt.Errorf("--anchor %g: want a share in [0, 1]", a)
	} else if a != 0 && (tc.Ablation == inversion.GTOnly || tc.Ablation == inversion.D0Only || tc.Ablation == inversion.MOnly) {
		return nil, fmt.Errorf("--anchor needs a stage 2 that learns from I^d_0 with I^gt beside it, which --ablation %s has not", tc.Ablation)
	}
	tc.ArtProb, tc.Arts = 0, nil
	if o.ArtProb > 0 {
		tc.ArtProb = o.ArtProb
		for _, a := range o.Arts {
			tc.Arts = append(tc.Arts, a.String())
		}
	}
	tr := &inversion.Trainer{Cfg: tc, Model: m, G: g, E: e, Dev: fo.Device,
		Cache:      &inversion.D0Cache{Dir: filepath.Join(o.Out, "d0cache")},
		Stage1From: o.Stage1From,
	}
	if tr.Data, tr.PreviewData, err = o.openData(face.SizeOf(e)); err != nil {
		return nil, err
	}
	if tc.Weights.LPIPS != 0 {
		f, err := auxnets.LoadPerceptual(filepath.Join(fo.Weights, "aux_perceptual.safetensors"), fo.Device)
		if err != nil {
			return nil, fmt.Errorf("perceptual net F: %w (or pass --lpips 0)", err)
		}
		f.Store.Freeze("")
		tr.F = f
	}
	if tc.Weights.ID != 0 {
		r, err := auxnets.LoadIdentity(filepath.Join(fo.Weights, "aux_identity.safetensors"), fo.Device)
		if err != nil {
			return nil, fmt.Errorf("identity net R: %w (or pass --id 0)", err)
		}
		r.Store.Freeze("")
		tr.R = r
	}
	if tc.Weights.Attr != 0 {
		path := o.AttrNet
		if path == "" {
			path = filepath.Join(fo.Weights, "aux_attributes.safetensors")
		}
		a, err := auxnets.LoadClassifier(path, auxnets.NetAttributes, fo.Device)
		if err != nil {
			return nil, fmt.Errorf("attribute critic: %w (or pass --attr 0)", err)
		}
		a.Store.Freeze("")
		tr.A = a
	}
	return tr, nil
}

// openData opens the training split and the held-out samples of the
// preview grids: SynthFace-bench, or a folder's --val part; without one
// the grids show the first training samples.
func (o Options) openData(size int) (train, preview data.Dataset, err error) {
	synth := func(split data.Split, size, n int) data.Dataset {
		return data.NewSynthFaceArt(split, size, n, o.ArtProb, o.Arts)
	}
	open := o.Open
	if open == nil {
		open = func(split data.Split, size, n int, synth func(data.Split, int, int) data.Dataset) (data.Dataset, error) {
			return data.Open(data.SynthFaceSource, data.OpenOptions{Size: size, Split: split, N: n, SynthFace: synth})
		}
	}
	if train, err = open(data.Train, size, o.N, synth); err != nil {
		return nil, nil, err
	}
	if preview, err = open(data.Bench, size, data.BenchSize, synth); err != nil {
		fmt.Fprintf(o.Log, "note: previews show the first training samples (%v)\n", err)
		preview = nil
	}
	return train, preview, nil
}
