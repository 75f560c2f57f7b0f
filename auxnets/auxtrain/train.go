// Package auxtrain trains and measures the aux nets on SynthFace: a
// resumable loop shared by every net (render a cache once, seeded batches,
// checkpoints, log, loss plot) and each net's step and held-out evaluation.
package auxtrain

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/internal/imageio"
	"ddgi/internal/progress"
	"ddgi/train"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
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
}

// Result holds a net's held-out accuracy figures.
type Result map[string]float64

// job is one net's training: the stores to checkpoint, a step, the eval.
type job interface {
	stores() map[string]*nn.Store
	opt() *optim.Adam
	dataset(o Options) data.Dataset
	step(ss []*data.Sample, idx []int, g *torch.Generator, frac float64) float64
	eval(o Options) (Result, error)
	ship() (*nn.Store, auxnets.Config)
}

type state struct {
	Step int   `json:"step"`
	Seed int64 `json:"seed"`
}

// Train runs (or resumes) training of o.Net and returns its held-out scores.
func Train(o Options) (res Result, err error) {
	if terr := torch.Try(func() { res, err = trainNet(o) }); terr != nil {
		return res, terr
	}
	return res, err
}

func trainNet(o Options) (Result, error) {
	cfg, err := auxnets.Preset(o.Net, o.Preset)
	if err != nil {
		return nil, err
	}
	j, err := newJob(cfg, o)
	if err != nil {
		return nil, err
	}
	run, err := train.Open(o.Dir)
	if err != nil {
		return nil, err
	}
	var st state
	ok, err := run.LoadState(&st)
	if err != nil {
		return nil, err
	}
	if ok {
		for name, s := range j.stores() {
			if _, err := s.Load(run.Path(name + ".safetensors")); err != nil {
				return nil, fmt.Errorf("resume: %w", err)
			}
		}
		if err := j.opt().Load(run.Path("adam.safetensors"), torch.CPU); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		if err := run.TruncateLog(int64(st.Step)); err != nil {
			return nil, err
		}
		o.Seed = st.Seed
		logf(o, "resuming %s at step %d\n", o.Net, st.Step)
	}
	cache, err := render(j.dataset(o), o)
	if err != nil {
		return nil, err
	}
	if c, ok := j.(interface{ setCache([]*data.Sample) }); ok {
		c.setCache(cache)
	}
	save := func(step int) error {
		for name, s := range j.stores() {
			if err := s.Save(run.Path(name+".safetensors"), nn.SaveOptions{Config: cfg}); err != nil {
				return err
			}
		}
		if err := j.opt().Save(run.Path("adam.safetensors")); err != nil {
			return err
		}
		return run.SaveState(state{Step: step, Seed: o.Seed})
	}
	bar := progress.New("train aux "+o.Net, int64(st.Step), int64(o.Steps), "steps")
	ckpt := train.NewCheckpointer(o.Checkpoint)
	var avg float64
	for step := st.Step; step < o.Steps; step++ {
		r := rand.New(rand.NewPCG(uint64(o.Seed), uint64(step)))
		idx := make([]int, o.Batch)
		ss := make([]*data.Sample, o.Batch)
		for i := range idx {
			idx[i] = r.IntN(len(cache))
			ss[i] = cache[idx[i]]
			if r.IntN(2) == 1 {
				ss[i] = data.Flip(ss[i])
			}
		}
		g := torch.NewGenerator(uint64(o.Seed)<<20 + uint64(step))
		var loss float64
		torch.Scoped(func() { loss = j.step(ss, idx, g, float64(step)/float64(o.Steps)) })
		avg = ema(avg, loss, step-st.Step)
		if (step+1)%10 == 0 {
			if err := run.Log(int64(step+1), map[string]float64{"loss": avg}); err != nil {
				return nil, err
			}
		}
		if !o.Quiet {
			bar.Set(int64(step+1), map[string]float64{"loss": avg})
		}
		if err := ckpt.MaybeSave(step+1 == o.Steps, func() error { return save(step + 1) }); err != nil {
			return nil, err
		}
	}
	if !o.Quiet {
		bar.Finish()
	}
	if err := run.PlotLosses("aux " + o.Net); err != nil {
		logf(o, "loss plot: %v\n", err)
	}
	res, err := j.eval(o)
	if err != nil {
		return nil, err
	}
	res["steps"] = float64(o.Steps)
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := imageio.WriteAtomic(run.Path("result.json"), b); err != nil {
		return nil, err
	}
	if o.Out != "" {
		s, c := j.ship()
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

func ema(avg, x float64, n int) float64 {
	if n == 0 {
		return x
	}
	return 0.95*avg + 0.05*x
}

func logf(o Options, format string, args ...any) {
	if !o.Quiet {
		fmt.Fprintf(os.Stderr, format, args...)
	}
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
