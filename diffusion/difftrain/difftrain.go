// Package difftrain trains the latent diffusion model on the shared run
// loop (ddgi/train): the base U-Net on captions, or one ControlNet branch
// (mask or scribble) on a frozen base, with an EMA of the trained weights
// for previews and export.
package difftrain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/imagebatch"
	"ddgi/kinds"
	"ddgi/synthface"
	"ddgi/torch"
	"ddgi/train"
)

// The two training stages (ControlNet's recipe: the base on text first,
// then each branch with the base frozen).
const (
	StageBase    = "base"
	StageControl = "control"
)

// PreviewSamples is how many bench samples the preview grid shows.
const PreviewSamples = 8

// Options configure a run. Stage, Cond, Preset, Latent, Init, Seed and the
// art mix are fixed when the run starts: a resumed run keeps its own (the
// checkpoint's state.json) and only Stage and Cond are checked against it.
type Options struct {
	Stage  string     // StageBase or StageControl
	Cond   kinds.Cond // control stage only
	Preset string     // U-Net preset of a new base run
	// Latent is the latent space of a new base run: "vae", "patch", or
	// "auto" (vae when Files.VAE exists).
	Latent string
	Base   string // control stage: the trained base U-Net
	Init   string // base stage: start from these U-Net weights (fine-tuning)
	// Files name the tokenizer, the text encoder (frozen when its weights
	// exist, else a fresh TextPreset encoder trained jointly, base stage
	// only) and the VAE.
	Files encoder.Files

	Steps int64 // total optimizer steps
	Batch int
	LR    float64 // AdamW of the U-Net or branch
	// TextLR is the Adam learning rate of a jointly trained text encoder.
	TextLR float64
	EMA    float64 // EMA decay of the trained weights
	// DropText is the probability of the empty prompt (classifier-free
	// guidance); < 0: 0.1 for the base, 0.5 for a branch (ControlNet).
	DropText float64
	DropCond float64 // control stage: probability of a zero condition
	Seed     uint64

	// ArtProb is the share of SynthFace samples drawn as artworks in Arts'
	// styles (synthface.WithArt): stylised prompts for style transfer.
	ArtProb float64
	Arts    []synthface.Art
	// Data opens the training and preview images (cmd/ddgi passes its
	// --data/--val/--on-bad opener); nil: SynthFace.
	Data    imagebatch.Source
	Samples int // training samples: SynthFace renders this many, a folder uses at most this many
	Workers int // data workers

	CheckpointEvery time.Duration
	PreviewEvery    int64 // steps between preview grids
	PreviewSteps    int   // DDIM steps of the preview samples
	// Export, when set, receives the EMA weights in fp16 once the run is
	// complete (and a jointly trained text encoder beside them).
	Export string

	// Group, when set, makes this process one rank of a data-parallel run
	// (package dist): rank 0 writes the run folder and the export.
	Group train.Group

	MaxSteps int64     // pause after this many steps in this process (tests)
	Quiet    bool      // no progress or messages
	Out      io.Writer // messages (nil: stderr)
}

// State is a run's state.json, saved in every checkpoint.
type State struct {
	Step  int64      `json:"step"`
	Seed  uint64     `json:"seed"`
	Stage string     `json:"stage"`
	Cond  kinds.Cond `json:"cond,omitempty"`
	Joint bool       `json:"joint_text"` // text encoder trained with the U-Net
	// TextPreset builds a jointly trained text encoder again on resume
	// (its weights come from the checkpoint).
	TextPreset string `json:"text_preset,omitempty"`
	// Share of training samples drawn as artworks, and their styles
	// (synthface.WithArt): stylised prompts for style transfer.
	ArtProb float64          `json:"art_prob,omitempty"`
	Arts    []string         `json:"arts,omitempty"`
	Init    string           `json:"init,omitempty"` // base stage: fine-tuned from these weights
	Model   diffusion.Config `json:"config"`
}

// Files of a checkpoint folder besides train.FileModel (the trained store:
// a base U-Net or a branch), train.FileOptim (its AdamW) and
// train.StateFile.
const (
	FileEMA       = "ema.safetensors"        // EMA of the trained store
	FileText      = "text.safetensors"       // a jointly trained text encoder
	FileOptimText = "optim_text.safetensors" // its Adam state
)

// Train trains into the run folder dir, resuming from its newest complete
// checkpoint, and exports when the run is complete and o.Export is set.
// A cancelled ctx checkpoints and returns *train.Interrupted.
func Train(ctx context.Context, dir string, o Options) error {
	run, err := train.OpenRank(dir, o.Group)
	if err != nil {
		return err
	}
	j, err := New(run, o)
	if err != nil {
		return err
	}
	defer j.Close()
	if err := j.Loop().Run(ctx, run, j); err != nil {
		return err
	}
	if o.Export == "" || j.st.Step < o.Steps || (o.Group != nil && o.Group.Rank() != 0) {
		return nil // paused (MaxSteps) or nothing to export
	}
	if err := j.Export(o.Export); err != nil {
		return err
	}
	fmt.Fprintf(j.out, "exported %s\n", o.Export)
	return nil
}

// Loop is the run loop for this job, configured from its options.
func (j *Job) Loop() *train.Loop {
	label := "diffusion " + j.st.Stage
	if j.st.Cond != "" {
		label += "/" + string(j.st.Cond)
	}
	return &train.Loop{Label: label, Total: j.o.Steps, CheckpointEvery: j.o.CheckpointEvery,
		PreviewEvery: j.o.PreviewEvery, MaxSteps: j.o.MaxSteps, Quiet: j.o.Quiet, Out: j.o.Out, Group: j.o.Group}
}

func (o *Options) check() error {
	switch {
	case o.Stage != StageBase && o.Stage != StageControl:
		return fmt.Errorf("stage %q: base or control", o.Stage)
	case o.Stage == StageControl && o.Cond != kinds.Mask && o.Cond != kinds.Scribble:
		return fmt.Errorf("condition %q: mask or scribble", o.Cond)
	case o.Latent != "vae" && o.Latent != "patch" && o.Latent != "auto":
		return fmt.Errorf("latent space %q: vae, patch or auto", o.Latent)
	case o.Batch < 1 || o.Steps < 1:
		return errors.New("batch and steps must be ≥ 1")
	case o.Samples < 1:
		return errors.New("samples must be ≥ 1")
	case o.PreviewSteps < 1:
		return errors.New("preview sampler steps must be ≥ 1")
	case o.ArtProb < 0 || o.ArtProb > 1:
		return fmt.Errorf("art share %g: want 0…1", o.ArtProb)
	case o.Init != "" && o.Stage != StageBase:
		return errors.New("--init is for the base stage (a branch starts from its base's encoder)")
	}
	return nil
}

// startState is the state of a new run from the options.
func (o *Options) startState() State {
	st := State{Seed: o.Seed, Stage: o.Stage, Init: o.Init}
	if o.ArtProb > 0 {
		st.ArtProb = o.ArtProb
		for _, a := range o.Arts {
			st.Arts = append(st.Arts, a.String())
		}
	}
	if o.Stage == StageControl {
		st.Cond = o.Cond
	}
	return st
}

// New builds the networks, data and optimizers of a run in run's folder:
// a new run from o, or the run its newest checkpoint holds (whose weights
// the loop then loads through Load).
func New(run *train.Run, o Options) (*Job, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.DropText < 0 {
		o.DropText = 0.1
		if o.Stage == StageControl {
			o.DropText = 0.5
		}
	}
	o.Out = train.Messages(o.Out, o.Quiet)
	var st State
	resumed, err := run.ResumeState(&st)
	if err != nil {
		return nil, err
	}
	if !resumed {
		st = o.startState()
	} else if st.Stage != o.Stage || (o.Stage == StageControl && st.Cond != o.Cond) {
		return nil, fmt.Errorf("%s holds a %s/%s run, not %s/%s", run.Dir, st.Stage, st.Cond, o.Stage, o.Cond)
	}
	j := &Job{o: o, st: st, out: o.Out}
	if terr := torch.Try(func() { err = j.build(resumed) }); terr != nil {
		err = terr
	}
	if err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}
