// Package vaetrain trains the latent KL autoencoder (diffusion/vae) on the
// shared run loop (ddgi/train) and, once a run is complete, measures it on
// held-out images: reconstruction PSNR and the latent scale factor, which
// the exported weights carry.
package vaetrain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"ddgi/data"
	"ddgi/diffusion/vae"
	"ddgi/imagebatch"
	"ddgi/internal/imageio"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
	"ddgi/train"
)

// Options configure a run. Preset, Seed and Batch are fixed when the run
// starts: a resumed run keeps its config and seed (the checkpoint's
// state.json) and must keep its batch size.
type Options struct {
	Preset string // autoencoder preset (vae.Preset)
	Steps  int64
	Batch  int
	LR     float64 // peak Adam learning rate (cosine decay to 10 %)
	KL     float64 // weight of the KL term
	Seed   uint64

	// Data opens the images (nil: SynthFace). Samples training and Bench
	// held-out images are read once and held in memory (a folder gives at
	// most that many; its bench is its --val part).
	Data    imagebatch.Source
	Samples int
	Bench   int
	Workers int

	CheckpointEvery time.Duration
	// Export, when set, receives the weights (fp16, with the measured
	// scale factor) once the run is complete, re-scored from the file.
	Export string
	// Grid, when set, receives 8 bench originals above their
	// reconstructions once the run is complete.
	Grid string
	// Group, when set, makes this process one rank of a data-parallel run
	// (package dist): rank 0 writes the run folder, the bench and the export.
	Group train.Group

	MaxSteps int64     // pause after this many steps in this process (tests)
	Quiet    bool      // no progress or messages
	Out      io.Writer // messages (nil: stderr)
}

// State is a run's state.json, saved in every checkpoint.
type State struct {
	Step   int64      `json:"step"`
	Seed   uint64     `json:"seed"`
	Batch  int        `json:"batch"` // the posterior noise stream depends on it
	Config vae.Config `json:"config"`
}

// EvalDir is the run's sub-run of bench PSNR and scale factor rows; a
// checkpoint holds train.FileModel (config with the scale once measured),
// train.FileOptim and train.StateFile.
const EvalDir = "eval"

// Train trains into the run folder dir, resuming from its newest complete
// checkpoint; once the run is complete it measures the bench (Finish). A
// cancelled ctx checkpoints and returns *train.Interrupted.
func Train(ctx context.Context, dir string, o Options) error {
	run, err := train.OpenRank(dir, o.Group)
	if err != nil {
		return err
	}
	j, err := New(ctx, run, o)
	if err != nil {
		return err
	}
	l := j.Loop()
	if err := l.Run(ctx, run, j); err != nil {
		return err
	}
	if j.st.Step < o.Steps || (o.Group != nil && o.Group.Rank() != 0) {
		return nil // paused (MaxSteps), or a rank that does not write
	}
	return j.Finish(run, l.Keep)
}

// Loop is the run loop for this job, configured from its options.
func (j *Job) Loop() *train.Loop {
	return &train.Loop{Label: "train vae", Total: j.o.Steps, CheckpointEvery: j.o.CheckpointEvery,
		MaxSteps: j.o.MaxSteps, Quiet: j.o.Quiet, Out: j.o.Out, Group: j.o.Group}
}

// Job is one autoencoder run for train.Loop.
type Job struct {
	o   Options
	st  State
	out io.Writer

	store *nn.Store
	model *vae.Autoencoder
	opt   *optim.Adam
	// noise draws the posterior samples, one tensor a step from Seed; a
	// resumed run replays the draws of the steps before it (Load).
	noise *torch.Generator
	shard train.Shard // this rank's rows of every batch (one process: all)

	trainSet, bench *imagebatch.Held
}

// State is the job's state (its Step counts the steps done).
func (j *Job) State() State { return j.st }

// New builds the autoencoder, optimizer and held images of a run in run's
// folder: a new run from o, or the run its newest checkpoint holds (whose
// weights the loop then loads through Load).
func New(ctx context.Context, run *train.Run, o Options) (*Job, error) {
	if o.Batch < 1 || o.Samples < o.Batch || o.Bench < 8 || o.Bench > data.BenchSize {
		return nil, errors.New("need --batch ≥ 1, --n ≥ --batch, 8 ≤ --bench ≤ 2000")
	}
	if o.Steps < 1 {
		return nil, errors.New("need --steps ≥ 1")
	}
	o.Out = train.Messages(o.Out, o.Quiet)
	var st State
	resumed, err := run.ResumeState(&st)
	if err != nil {
		return nil, err
	}
	if !resumed {
		cfg, err := vae.Preset(o.Preset)
		if err != nil {
			return nil, err
		}
		st = State{Seed: o.Seed, Batch: o.Batch, Config: cfg}
	} else if st.Batch != o.Batch {
		return nil, fmt.Errorf("%s was started with --batch %d; resume it with the same batch", run.Dir, st.Batch)
	}
	j := &Job{o: o, st: st, out: o.Out}
	if terr := torch.Try(func() {
		j.store = nn.NewStore(torch.CPU, st.Seed)
		j.model = vae.New(j.store.Root(), st.Config)
		j.noise = torch.NewGenerator(st.Seed)
	}); terr != nil {
		return nil, terr
	}
	j.opt = optim.NewAdam(optim.DefaultAdam(o.LR))
	fmt.Fprintf(j.out, "vae: %d parameters, factor %d\n", j.store.NumParams(), st.Config.Factor())
	size := int(st.Config.Resolution)
	if j.trainSet, j.bench, err = imagebatch.HoldSplits(ctx, o.Data, nil, o.Samples, o.Bench, size,
		imagebatch.HoldOptions{Workers: o.Workers, Label: "read", Out: j.out, Quiet: o.Quiet}); err != nil {
		return nil, err
	}
	switch {
	case j.trainSet.Len() < o.Batch:
		return nil, fmt.Errorf("the data holds %d training images, fewer than --batch %d", j.trainSet.Len(), o.Batch)
	case j.bench.Len() < 8:
		return nil, fmt.Errorf("the data holds %d bench images; the bench needs ≥ 8", j.bench.Len())
	}
	return j, nil
}

// Step runs one optimizer step (train.Job): Batch random images, all
// flipped or none, encoded, sampled from the posterior and decoded;
// L1 + perceptual stand-in + KL·weight.
func (j *Job) Step(ctx context.Context, done int64) (train.Result, error) {
	rng := rand.New(rand.NewPCG(j.st.Seed, uint64(done)))
	lo, n := j.shard.Rows(j.o.Batch)
	idx := rng.Perm(j.trainSet.Len())[lo : lo+n]
	flip := rng.IntN(2) == 0
	j.opt.SetLR(j.o.LR * (0.1 + 0.9*0.5*(1+math.Cos(math.Pi*float64(done)/float64(j.o.Steps)))))
	var rec map[string]float64
	err := torch.Try(func() {
		torch.Scoped(func() {
			x := j.trainSet.Images(idx)
			if flip {
				x = x.Flip(3)
			}
			mean, logvar := j.model.Encode(x)
			// The whole batch's noise, this rank's rows of it: the stream
			// stays the one a single process draws.
			eps := torch.Randn(j.noise, j.latentShape(), torch.Float32, mean.Device()).Narrow(0, int64(lo), int64(n))
			y := j.model.Decode(vae.SampleWith(mean, logvar, eps))
			r, l1, perc := vae.ReconLoss(y, x)
			kl := vae.KL(mean, logvar)
			loss := r.Add(kl.MulScalar(j.o.KL))
			j.shard.Backward(loss, j.store.Trainable())
			j.opt.Update(j.store.Trainable())
			// the weighted KL term: raw KL (thousands of nats) would flatten the plot
			rec = map[string]float64{"loss": loss.Item(), "l1": l1.Item(), "perceptual": perc.Item(), "kl_term": kl.Item() * j.o.KL}
		})
	})
	if err != nil {
		return train.Result{}, err
	}
	j.st.Step = done + 1
	return train.Result{Losses: rec}, nil
}

// Distribute makes the job one rank of a data-parallel run
// (train.Distributed): its rows of every batch, gradients averaged.
func (j *Job) Distribute(s train.Shard) error {
	j.shard = s
	return s.Check(j.o.Batch)
}

// Replicated is what every rank must hold alike (train.Distributed): the
// autoencoder and its Adam moments.
func (j *Job) Replicated() []*torch.Tensor {
	var ts []*torch.Tensor
	for _, name := range j.store.Names() {
		ts = append(ts, j.store.Get(name))
	}
	return append(ts, j.opt.Moments()...)
}

// Save writes the autoencoder (config in its metadata), the optimizer and
// state.json into a checkpoint folder (train.Job).
func (j *Job) Save(dir string) error {
	return train.SaveModel(dir, j.store, j.st.Config, j.opt, j.st)
}

// Load restores a checkpoint written by Save (train.Job) and brings the
// noise stream to its step. The run it belongs to must be the one New
// built the job for.
func (j *Job) Load(dir string) error {
	err := train.LoadModel(dir, j.store, j.opt, &j.st, func(saved State) bool {
		saved.Step, saved.Config.Scale = j.st.Step, j.st.Config.Scale // the scale is measured once a run is complete
		return reflect.DeepEqual(saved, j.st)
	})
	if err != nil {
		return err
	}
	return torch.Try(func() { j.noise = replayNoise(j.st.Seed, j.st.Step, j.latentShape()) })
}

// latentShape is the shape of one step's posterior sample.
func (j *Job) latentShape() []int64 {
	c := j.st.Config
	side := c.Resolution / c.Factor()
	return []int64{int64(j.st.Batch), c.ZChannels, side, side}
}

// replayNoise is the noise generator after steps steps: seeded with seed,
// then one posterior sample of shape drawn a step (Autoencoder.Sample), so
// a resumed run draws the numbers the uninterrupted one would have.
func replayNoise(seed uint64, steps int64, shape []int64) *torch.Generator {
	g := torch.NewGenerator(seed)
	for i := int64(0); i < steps; i++ {
		torch.Scoped(func() { torch.Randn(g, shape, torch.Float32, torch.CPU) })
	}
	return g
}

// Finish runs once the run is complete: it reconstructs the bench,
// records PSNR and the latent scale factor (eval/log.jsonl, the config of
// the latest checkpoint), writes the grid and the export.
func (j *Job) Finish(run *train.Run, keep int) error {
	psnr, scale, err := Bench(j.model, j.bench, j.o.Grid)
	if err != nil {
		return err
	}
	j.st.Config.Scale = scale
	fmt.Fprintf(j.out, "bench (%d images): reconstruction PSNR %.2f dB (posterior mean), latent std %.4f → scale factor %.4f\n", j.bench.Len(), psnr, 1/scale, scale)
	evalRun, err := train.Open(run.Path(EvalDir))
	if err != nil {
		return err
	}
	// A finished run measured again replaces its row.
	if err := evalRun.TruncateLog(j.st.Step - 1); err != nil {
		return err
	}
	if err := evalRun.Log(j.st.Step, map[string]float64{"bench_psnr": psnr, "scale_factor": scale}); err != nil {
		return err
	}
	// The checkpoint again, now with the scale in the model's config.
	if err := run.Checkpoint(j.st.Step, j.Save, keep); err != nil {
		return err
	}
	if j.o.Export == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(j.o.Export), 0o755); err != nil {
		return err
	}
	if err := j.store.Save(j.o.Export, nn.SaveOptions{Config: j.st.Config, Half: true}); err != nil {
		return err
	}
	// fp16 must not cost quality: re-measure from the written file.
	m2, _, err := vae.Load(j.o.Export, torch.CPU)
	if err != nil {
		return err
	}
	p2, _, err := Bench(m2, j.bench, "")
	if err != nil {
		return err
	}
	fmt.Fprintf(j.out, "wrote %s (fp16): bench PSNR %.2f dB\n", j.o.Export, p2)
	return nil
}

// Bench reconstructs the held images through the posterior mean and
// returns the mean PSNR and 1/std of the latents (the scale factor);
// grid, when set, receives 8 originals above their reconstructions.
func Bench(model *vae.Autoencoder, bench *imagebatch.Held, grid string) (psnr, scale float64, err error) {
	n := bench.Len()
	var gridErr error
	err = torch.Try(func() {
		torch.NoGrad(func() {
			var sum, sq, cnt float64
			for lo := 0; lo < n; lo += 32 {
				torch.Scoped(func() {
					idx := make([]int, 0, 32)
					for i := lo; i < min(lo+32, n); i++ {
						idx = append(idx, i)
					}
					x := bench.Images(idx)
					mean, _ := model.Encode(x)
					y := model.Decode(mean)
					psnr += vae.PSNR(y, x) * float64(len(idx))
					sum += mean.SumAll().Item()
					sq += mean.Square().SumAll().Item()
					cnt += float64(mean.Numel())
					if lo == 0 && grid != "" {
						k := int64(min(8, len(idx)))
						both := torch.Cat([]*torch.Tensor{x.Narrow(0, 0, k), y.Narrow(0, 0, k).Clamp(-1, 1)}, 0)
						gridErr = imageio.SaveTensorGrid(grid, both, int(k))
					}
				})
			}
			psnr /= float64(n)
			mu := sum / cnt
			scale = 1 / math.Sqrt(sq/cnt-mu*mu)
		})
	})
	if err == nil {
		err = gridErr
	}
	return psnr, scale, err
}
