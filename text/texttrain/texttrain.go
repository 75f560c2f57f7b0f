// Package texttrain trains the text encoder contrastively (CLIP-style:
// captions against a small image tower) on the shared run loop
// (ddgi/train), scores caption↔image retrieval on held-out pairs into the
// run's eval/ sub-run, writes per-attribute probes and exports the text
// tower alone.
package texttrain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/synthface"
	"ddgi/text"
	"ddgi/torch"
	"ddgi/train"
)

// What --tune moves.
const (
	TuneAll       = "all"
	TuneNewTokens = "new-tokens" // only the embeddings of tokens no photo caption uses
)

// Options configure a run. Preset, Embed, ImageWidths, Seed, Init, Tune
// and the art mix are fixed when the run starts: a resumed run keeps
// its own (the checkpoint's state.json); Init and Tune must match it.
type Options struct {
	Preset      string // text encoder preset (text.EncoderPreset)
	Tokenizer   string // vocabulary (text.LoadVocab)
	Size        int    // image side
	Embed       int64  // shared embedding width
	ImageWidths []int64

	Steps     int64
	Batch     int     // pairs a step: the contrastive negatives
	LR        float64 // peak AdamW learning rate (warm-up, then cosine)
	EvalEvery int64   // steps between bench retrieval scores
	Seed      uint64
	// Init starts the text tower from an exported encoder; Tune says which
	// of its weights train (TuneAll or TuneNewTokens).
	Init string
	Tune string
	// ArtProb is the share of SynthFace pairs drawn as artworks in Arts'
	// styles (style-naming captions, paper Sec. 4.4).
	ArtProb float64
	Arts    []synthface.Art

	// Data opens the images (nil: SynthFace). Samples training and Bench
	// held-out pairs are read once and held in memory (a folder gives at
	// most that many; its bench is its --val part).
	Data    imagebatch.Source
	Samples int
	Bench   int
	Workers int

	CheckpointEvery time.Duration
	// Export, when set, receives the text tower alone (fp16) once the run
	// is complete, re-scored from the written file.
	Export   string
	MaxSteps int64 // pause after this many steps in this process (tests)
	// Group, when set, makes this process one rank of a data-parallel run
	// (rank 0 alone writes the run folder and scores the bench).
	Group train.Group
	Quiet bool      // no progress or messages
	Out   io.Writer // messages (nil: stderr)
}

// State is a run's state.json, saved in every checkpoint.
type State struct {
	Step   int64           `json:"step"`
	Seed   uint64          `json:"seed"`
	Config text.CLIPConfig `json:"config"`
	// Fine-tuning: the exported encoder the text tower started from, and
	// which of its weights train (all or new-tokens).
	Init string `json:"init,omitempty"`
	Tune string `json:"tune,omitempty"`
	// Share of pairs drawn as artworks, and their styles.
	ArtProb float64  `json:"art_prob,omitempty"`
	Arts    []string `json:"arts,omitempty"`
}

// Files of the run folder; a checkpoint holds train.FileModel (the CLIP,
// text and image towers), train.FileOptim and train.StateFile.
const (
	FileProbe = "probe.txt" // the probe table of the finished run
	EvalDir   = "eval"      // the retrieval sub-run (log.jsonl, loss.png)
)

// Train trains into the run folder dir, resuming from its newest complete
// checkpoint; once the run is complete it writes the probe report and,
// when o.Export is set, the exported tower. A cancelled ctx checkpoints
// and returns *train.Interrupted.
func Train(ctx context.Context, dir string, o Options) error {
	run, err := train.OpenRank(dir, o.Group)
	if err != nil {
		return err
	}
	j, err := New(ctx, run, o)
	if err != nil {
		return err
	}
	if err := j.Loop().Run(ctx, run, j); err != nil {
		return err
	}
	if j.st.Step < o.Steps || !j.root() {
		return nil // paused (MaxSteps), or a rank that does not write
	}
	return j.Finish(run)
}

// Loop is the run loop for this job, configured from its options.
func (j *Job) Loop() *train.Loop {
	return &train.Loop{Label: "train text", Total: j.o.Steps, CheckpointEvery: j.o.CheckpointEvery,
		MaxSteps: j.o.MaxSteps, Quiet: j.o.Quiet, Out: j.o.Out, Group: j.o.Group}
}

// root is whether this process writes: one process, or rank 0.
func (j *Job) root() bool { return j.o.Group == nil || j.o.Group.Rank() == 0 }

// Distribute makes the job one rank of a data-parallel run
// (train.Distributed): each rank embeds its rows of every batch, the
// embeddings are gathered so the contrastive loss sees the whole batch's
// negatives, and the ranks' gradients are added.
func (j *Job) Distribute(s train.Shard) error {
	if err := s.Check(j.o.Batch); err != nil {
		return err
	}
	j.shard = s
	return nil
}

// Replicated lists the CLIP's tensors and the optimizer's moments
// (train.Distributed).
func (j *Job) Replicated() []*torch.Tensor {
	var ts []*torch.Tensor
	for _, name := range j.store.Names() {
		ts = append(ts, j.store.Get(name))
	}
	return append(ts, j.opt.Moments()...)
}

func (o *Options) check() error {
	switch {
	case o.Tune != TuneAll && o.Tune != TuneNewTokens:
		return fmt.Errorf("--tune %q: want all or new-tokens", o.Tune)
	case o.Tune == TuneNewTokens && o.Init == "":
		return errors.New("--tune new-tokens needs --init (new words behind a frozen random tower learn nothing useful)")
	case o.Batch < 2 || o.Samples < o.Batch || o.Bench < 5 || o.Bench > data.BenchSize:
		return errors.New("need --batch ≥ 2, --n ≥ --batch, 5 ≤ --bench ≤ 2000")
	case o.Steps < 1 || o.EvalEvery < 1:
		return errors.New("need --steps ≥ 1 and --eval-every ≥ 1")
	case o.ArtProb < 0 || o.ArtProb > 1:
		return fmt.Errorf("--art-prob %g: want 0…1", o.ArtProb)
	case o.Size < 8:
		return fmt.Errorf("--size %d: want ≥ 8", o.Size)
	}
	for _, w := range o.ImageWidths {
		if w < 4 {
			return fmt.Errorf("image tower widths %v: want integers ≥ 4", o.ImageWidths)
		}
	}
	return nil
}

// startState is the state of a new run from the options.
func (o *Options) startState() (State, error) {
	enc, err := text.EncoderPreset(o.Preset)
	if err != nil {
		return State{}, err
	}
	st := State{Seed: o.Seed, Config: text.CLIPConfig{Encoder: enc, ImageWidths: o.ImageWidths, Embed: o.Embed}, Init: o.Init, Tune: o.Tune}
	if o.ArtProb > 0 {
		st.ArtProb = o.ArtProb
		for _, a := range o.Arts {
			st.Arts = append(st.Arts, a.String())
		}
	}
	return st, nil
}

// Job is one text-encoder run for train.Loop.
type Job struct {
	o   Options
	st  State
	out io.Writer

	tok     text.Vocab
	store   *nn.Store
	model   *text.CLIP
	opt     *optim.Adam
	newRows *torch.Tensor // [Vocab,1]: 1 for tokens no photo caption uses (--tune new-tokens)

	trainSet, bench *imagebatch.Held
	evalRun         *train.Run // <run>/eval: retrieval rows (a run's plot needs uniform rows)
	evalTrimmed     bool       // eval rows past the resume point dropped
	shard           train.Shard
}

// State is the job's state (its Step counts the steps done).
func (j *Job) State() State { return j.st }

// New builds the CLIP, optimizer and held pairs of a run in run's folder:
// a new run from o, or the run its newest checkpoint holds (whose weights
// the loop then loads through Load).
func New(ctx context.Context, run *train.Run, o Options) (*Job, error) {
	if o.Tune == "" {
		o.Tune = TuneAll
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Group != nil && o.Group.Rank() != 0 {
		o.Quiet = true // rank 0 speaks for the run
	}
	o.Out = train.Messages(o.Out, o.Quiet)
	var st State
	resumed, err := run.ResumeState(&st)
	if err != nil {
		return nil, err
	}
	if !resumed {
		if st, err = o.startState(); err != nil {
			return nil, err
		}
	} else if st.Init != o.Init || st.Tune != o.Tune {
		return nil, fmt.Errorf("%s was started with --init %q --tune %s; resume it with the same flags", run.Dir, st.Init, st.Tune)
	}
	j := &Job{o: o, st: st, out: o.Out}
	if j.root() {
		if j.evalRun, err = train.Open(run.Path(EvalDir)); err != nil {
			return nil, err
		}
	}
	if terr := torch.Try(func() { err = j.build(resumed) }); terr != nil {
		err = terr
	}
	if err != nil {
		return nil, err
	}
	if err := j.hold(ctx); err != nil {
		return nil, err
	}
	return j, nil
}

// build makes the tokenizer, networks and optimizer; a new fine-tuning
// run starts its text tower from st.Init.
func (j *Job) build(resumed bool) error {
	st, enc := &j.st, j.st.Config.Encoder
	var err error
	if j.tok, err = text.LoadVocab(j.o.Tokenizer); err != nil {
		return err
	}
	if int64(j.tok.VocabSize()) > enc.Vocab {
		return fmt.Errorf("tokenizer has %d tokens, the encoder embeds only %d", j.tok.VocabSize(), enc.Vocab)
	}
	j.store = nn.NewStore(torch.CPU, st.Seed)
	j.model = text.NewCLIP(j.store.Root(), st.Config)
	if err := j.model.Text.UseVocab(j.tok); err != nil {
		return err
	}
	// An embeddings-only fine-tune keeps the encoder's space: no weight
	// decay, which would shrink every trained token's embedding.
	wd := 0.1
	if st.Tune == TuneNewTokens {
		wd = 0
	}
	j.opt = optim.NewAdam(optim.AdamConfig{LR: j.o.LR, Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: wd, Decoupled: true})
	if !resumed && st.Init != "" {
		if err := initTextTower(j.store, st.Init, enc, j.out); err != nil {
			return err
		}
	}
	if st.Tune == TuneNewTokens {
		j.store.Freeze("text")
		j.store.Unfreeze("text.embeddings.token_embedding")
		var n int
		if j.newRows, n, err = unusedTokenRows(j.tok, enc.Vocab); err != nil {
			return err
		}
		fmt.Fprintf(j.out, "tuning the embeddings of %d of %d tokens (those no photo caption uses)\n", n, enc.Vocab)
	}
	fmt.Fprintf(j.out, "text encoder: %d parameters (with image tower and projections)\n", j.store.NumParams())
	return nil
}

// hold reads the training and bench pairs (SynthFace mixes in the run's
// artworks).
func (j *Job) hold(ctx context.Context) error {
	var synth func(data.Split, int, int) data.Dataset
	if j.st.ArtProb > 0 {
		arts, err := synthface.ParseArts(strings.Join(j.st.Arts, ","))
		if err != nil {
			return fmt.Errorf("state.json: %w", err)
		}
		fmt.Fprintf(j.out, "artworks: %.0f%% of SynthFace training and bench pairs, styles %v\n", 100*j.st.ArtProb, arts)
		synth = func(split data.Split, size, n int) data.Dataset {
			return data.NewSynthFaceArt(split, size, n, j.st.ArtProb, arts)
		}
	}
	var err error
	j.trainSet, j.bench, err = imagebatch.HoldSplits(ctx, j.o.Data, synth, j.o.Samples, j.o.Bench, j.o.Size,
		imagebatch.HoldOptions{Workers: j.o.Workers, Label: "read", Out: j.out, Quiet: j.o.Quiet})
	if err != nil {
		return err
	}
	switch {
	case j.trainSet.Len() < j.o.Batch:
		return fmt.Errorf("the data holds %d training pairs, fewer than --batch %d", j.trainSet.Len(), j.o.Batch)
	case j.bench.Len() < 5:
		return fmt.Errorf("the data holds %d bench pairs; retrieval needs ≥ 5", j.bench.Len())
	}
	for _, h := range []*imagebatch.Held{j.trainSet, j.bench} {
		for i, c := range h.Captions {
			if len(c) == 0 {
				return fmt.Errorf("sample %d has no caption: the text encoder learns from image–caption pairs", i)
			}
		}
	}
	return nil
}

// Load restores a checkpoint written by Save (train.Job). The run it
// belongs to must be the one New built the job for.
func (j *Job) Load(dir string) error {
	return train.LoadModel(dir, j.store, j.opt, &j.st, func(saved State) bool {
		saved.Step = j.st.Step
		return reflect.DeepEqual(saved, j.st)
	})
}

// Save writes the CLIP (config in its metadata), the optimizer and
// state.json into a checkpoint folder (train.Job).
func (j *Job) Save(dir string) error {
	return train.SaveModel(dir, j.store, j.st.Config, j.opt, j.st)
}
