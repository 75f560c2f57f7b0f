// Package auxtrain trains and measures the aux nets: each net's step and
// held-out evaluation, run by train.Loop (samples rendered or read once
// into memory, batches seeded per step, checkpoints, log, loss plot).
package auxtrain

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/internal/imageio"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
	"ddgi/train"
)

// Options configure one training run.
type Options struct {
	Net, Preset string
	Steps       int
	Batch       int
	LR          float64
	// Samples are rendered once and cached (identity: Samples/PerIdentity people).
	Samples     int
	PerIdentity int
	// EvalSamples are SynthFace-bench samples for the final accuracy.
	EvalSamples int
	// Data and Bench replace SynthFace as the training and evaluation sets
	// (a dataset folder and its held-out split); nil: the net's SynthFace
	// variant. Only nets whose labels a folder holds take them (FolderNet).
	Data, Bench data.Dataset
	Dir         string // run folder
	Out         string // shipped weights (fp16); empty skips
	Backbone    string // perceptual: attribute weights to calibrate on
	// Margin is ArcFace's final additive angular margin (identity).
	Margin float64
	// Balance weights rare attributes' positives up (classifiers).
	Balance    bool
	Seed       int64
	Workers    int
	Quiet      bool
	Checkpoint time.Duration
	// MaxSteps pauses the run after this many steps in this call
	// (checkpointed; Train returns a nil Result): tests.
	MaxSteps int
	// Group runs the training data-parallel (package dist): each rank
	// computes its rows of every batch and rank 0 alone writes the run
	// folder, evaluates and ships.
	Group train.Group
}

// Result holds a net's held-out accuracy figures.
type Result map[string]float64

// job is one net's training: the stores to checkpoint, a step, the eval.
type job interface {
	stores() map[string]*nn.Store
	opt() *optim.Adam
	dataset(o Options) data.Dataset
	// step trains on the rows sh owns of the batch ss (augmentations are
	// drawn for the whole batch, so ranks see what one process would),
	// averaging gradients over the ranks before the update.
	step(ss []*data.Sample, idx []int, g *torch.Generator, frac float64, sh train.Shard) float64
	eval(o Options) (Result, error)
	ship() (*nn.Store, auxnets.Config)
}

// FolderNet says whether net can learn from a dataset folder: the parser
// from its masks, the attribute and FID nets from its attribute labels
// (and masks). The others need labels only SynthFace renders; the error
// says which.
func FolderNet(net string) error {
	switch net {
	case auxnets.NetParser, auxnets.NetAttributes, auxnets.NetFID:
		return nil
	case auxnets.NetIdentity:
		return fmt.Errorf("--net identity learns from person labels, which a dataset folder lacks: train it on synthface")
	case auxnets.NetPerceptual:
		return fmt.Errorf("--net perceptual learns from pairs of one face with resampled attributes, which only synthface renders")
	case auxnets.NetArt:
		return fmt.Errorf("--net art learns depiction styles, which only synthface labels")
	}
	return fmt.Errorf("unknown net %q", net)
}

// checkLabels reports the first sample that lacks a label net learns.
func checkLabels(net string, ss []*data.Sample) error {
	for i, s := range ss {
		switch {
		case (net == auxnets.NetParser || net == auxnets.NetFID) && len(s.Mask) == 0:
			return fmt.Errorf("sample %d has no mask, which --net %s learns", i, net)
		case (net == auxnets.NetAttributes || net == auxnets.NetFID) && len(s.Attrs) != int(auxnets.NumAttributes):
			return fmt.Errorf("sample %d has no attribute labels (%s or attributes/<i>.json), which --net %s learns", i, data.FileAttrAnno, net)
		}
	}
	return nil
}

// state is the resumable part of a run beside the weights (state.json in
// each checkpoint).
type state struct {
	Step int   `json:"step"`
	Seed int64 `json:"seed"`
}

// runner is a net's training as a train.Job over the cached samples.
type runner struct {
	j     job
	o     Options
	cfg   auxnets.Config
	cache []*data.Sample
	done  int         // steps done (after a Load: the checkpoint's)
	shard train.Shard // this rank's rows of every batch (one process: all)
}

// Step draws the step's seeded batch (indices, flips, augmentation) and
// trains on it.
func (r *runner) Step(_ context.Context, done int64) (train.Result, error) {
	o, step := r.o, int(done)
	rng := rand.New(rand.NewPCG(uint64(o.Seed), uint64(step)))
	idx := make([]int, o.Batch)
	ss := make([]*data.Sample, o.Batch)
	for i := range idx {
		idx[i] = rng.IntN(len(r.cache))
		ss[i] = r.cache[idx[i]]
		if rng.IntN(2) == 1 {
			ss[i] = data.Flip(ss[i])
		}
	}
	g := torch.NewGenerator(uint64(o.Seed)<<20 + uint64(step))
	frac := float64(step) / float64(o.Steps)
	var loss float64
	torch.Scoped(func() { loss = r.j.step(ss, idx, g, frac, r.shard) })
	r.done = step + 1
	return train.Result{Losses: map[string]float64{"loss": loss}, Info: map[string]float64{"lr": lrAt(o.LR, frac)}}, nil
}

// Distribute makes the run one rank of a data-parallel group
// (train.Distributed).
func (r *runner) Distribute(s train.Shard) error {
	r.shard = s
	return s.Check(r.o.Batch)
}

// Replicated is what every rank must hold alike (train.Distributed): the
// stores in name order and Adam's moments.
func (r *runner) Replicated() []*torch.Tensor {
	stores := r.j.stores()
	names := make([]string, 0, len(stores))
	for n := range stores {
		names = append(names, n)
	}
	sort.Strings(names)
	var ts []*torch.Tensor
	for _, n := range names {
		for _, t := range stores[n].Names() {
			ts = append(ts, stores[n].Get(t))
		}
	}
	return append(ts, r.j.opt().Moments()...)
}

// Save writes the net's stores, Adam and state.json into dir.
func (r *runner) Save(dir string) error {
	for name, s := range r.j.stores() {
		if err := s.Save(filepath.Join(dir, name+".safetensors"), nn.SaveOptions{Config: r.cfg}); err != nil {
			return err
		}
	}
	if err := r.j.opt().Save(filepath.Join(dir, "adam.safetensors")); err != nil {
		return err
	}
	b, err := json.MarshalIndent(state{Step: r.done, Seed: r.o.Seed}, "", "  ")
	if err != nil {
		return err
	}
	return imageio.WriteAtomic(filepath.Join(dir, "state.json"), b)
}

// Load restores a checkpoint Save wrote; the run keeps its seed.
func (r *runner) Load(dir string) error {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "state.json"), err)
	}
	for name, s := range r.j.stores() {
		if _, err := s.Load(filepath.Join(dir, name+".safetensors")); err != nil {
			return err
		}
	}
	if err := r.j.opt().Load(filepath.Join(dir, "adam.safetensors"), torch.CPU); err != nil {
		return err
	}
	r.o.Seed, r.done = st.Seed, st.Step
	return nil
}

// Train runs (or resumes) training of o.Net in o.Dir with train.Loop, then
// measures the net on held-out data (result.json in the run folder) and
// ships its fp16 weights to o.Out. A cancelled ctx checkpoints and returns
// *train.Interrupted.
func Train(ctx context.Context, o Options) (res Result, err error) {
	if terr := torch.Try(func() { res, err = trainNet(ctx, o) }); terr != nil {
		return res, terr
	}
	return res, err
}

func trainNet(ctx context.Context, o Options) (Result, error) {
	r, run, err := prepare(o)
	if err != nil {
		return nil, err
	}
	if err := r.loop().Run(ctx, run, r); err != nil {
		return nil, err
	}
	if r.done < o.Steps || (o.Group != nil && o.Group.Rank() != 0) {
		return nil, nil // paused by MaxSteps, or a rank that does not evaluate
	}
	res, err := r.j.eval(r.o)
	if err != nil {
		return nil, err
	}
	res["steps"] = float64(o.Steps)
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := imageio.WriteAtomic(run.Path("result.json"), b); err != nil {
		return nil, err
	}
	if o.Out != "" {
		s, c := r.j.ship()
		if err := os.MkdirAll(filepath.Dir(o.Out), 0o755); err != nil {
			return nil, err
		}
		meta := map[string]string{"result": string(b)}
		if err := s.Save(o.Out, nn.SaveOptions{Config: c, Half: true, Metadata: meta}); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// prepare builds the net, claims the run folder and renders (or reads)
// the training samples into memory.
func prepare(o Options) (*runner, *train.Run, error) {
	cfg, err := auxnets.Preset(o.Net, o.Preset)
	if err != nil {
		return nil, nil, err
	}
	if o.Data != nil {
		if err := FolderNet(o.Net); err != nil {
			return nil, nil, err
		}
	}
	j, err := newJob(cfg, o)
	if err != nil {
		return nil, nil, err
	}
	run, err := train.OpenRank(o.Dir, o.Group)
	if err != nil {
		return nil, nil, err
	}
	ds := o.Data
	if ds == nil {
		ds = j.dataset(o)
	}
	cache, err := render(ds, o)
	if err != nil {
		return nil, nil, err
	}
	if len(cache) == 0 {
		return nil, nil, fmt.Errorf("no training samples")
	}
	if o.Data != nil {
		if err := checkLabels(o.Net, cache); err != nil {
			return nil, nil, fmt.Errorf("--data: %w", err)
		}
	}
	if o.Bench != nil { // a bad held-out set fails now, not after training
		if _, err := renderBench(o); err != nil {
			return nil, nil, err
		}
	}
	if c, ok := j.(interface{ setCache([]*data.Sample) }); ok {
		c.setCache(cache)
	}
	return &runner{j: j, o: o, cfg: cfg, cache: cache}, run, nil
}

// loop is the run loop of a net's training.
func (r *runner) loop() *train.Loop {
	o := r.o
	return &train.Loop{Label: "aux " + o.Net, Total: int64(o.Steps), CheckpointEvery: o.Checkpoint, LogEvery: 10, MaxSteps: int64(o.MaxSteps), Quiet: o.Quiet, Group: o.Group}
}

// render draws every sample of ds once into memory.
func render(ds data.Dataset, o Options) ([]*data.Sample, error) {
	return renderAll(ds, o.Workers, o.Quiet, "render "+o.Net)
}

func renderAll(ds data.Dataset, workers int, quiet bool, label string) ([]*data.Sample, error) {
	return auxnets.Cache(ds, workers, quiet, label)
}

// lrAt is a constant rate decaying linearly to 0 over the last 30%.
func lrAt(base, frac float64) float64 {
	if frac < 0.7 {
		return base
	}
	return base * (1 - frac) / 0.3
}

// update sets the rate, steps Adam and zeroes the gradients.
func update(opt *optim.Adam, s *nn.Store, base, frac float64) {
	opt.SetLR(lrAt(base, frac))
	torch.NoGrad(func() { opt.Update(s.Trainable()) })
}

// inBatches is auxnets.InChunks.
var inBatches = auxnets.InChunks
