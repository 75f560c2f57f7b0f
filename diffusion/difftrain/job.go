package difftrain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"ddgi/data"
	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/imagebatch"
	"ddgi/internal/imageio"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/synthface"
	"ddgi/torch"
	"ddgi/train"
)

// Job is one diffusion run for train.Loop: its networks, optimizers,
// data stream and the preview batch.
type Job struct {
	o   Options
	st  State
	out io.Writer

	m, emaM *diffusion.Model
	trained *nn.Store // the store the optimizer updates (U-Net or branch)
	emaS    *nn.Store
	te      encoder.TextEncoder
	textS   *nn.Store // jointly trained text encoder, or nil when frozen
	ae      diffusion.Autoencoder
	opt     *optim.Adam
	optText *optim.Adam

	loader     *data.Loader
	trainN     int // training samples
	epoch      int
	batches    <-chan data.Batch // the current epoch's stream, nil until the first step
	stopLoader context.CancelFunc
	fixed      imagebatch.Batch // preview samples
	shard      train.Shard      // this rank's rows of every batch (one process: all)
}

// State is the job's state (its Step counts the steps done).
func (j *Job) State() State { return j.st }

// Close stops the data workers.
func (j *Job) Close() {
	if j.stopLoader != nil {
		j.stopLoader()
		j.stopLoader, j.batches = nil, nil
	}
}

// build makes the networks (of the resumed run's shape), the optimizers
// and the data.
func (j *Job) build(resumed bool) error {
	st, o := &j.st, j.o
	var c diffusion.Config
	var err error
	switch {
	case st.Stage == StageControl:
		if j.m, err = diffusion.Load(o.Base, torch.CPU); err != nil {
			return fmt.Errorf("control stage needs the base U-Net: %w", err)
		}
		c = j.m.Config
		j.emaM, _ = diffusion.Load(o.Base, torch.CPU)
	case !resumed && st.Init != "":
		// Fine-tuning: the U-Net starts from trained weights; the EMA is
		// copied from it below.
		if j.m, err = diffusion.Load(st.Init, torch.CPU); err != nil {
			return fmt.Errorf("init weights: %w", err)
		}
		c = j.m.Config
		j.emaM, _ = diffusion.New(c, torch.CPU, st.Seed)
	default:
		if resumed {
			c = st.Model
		} else if c, err = diffusion.Preset(o.Preset); err != nil {
			return err
		}
		if !resumed {
			switch o.Latent {
			case "patch":
				c = diffusion.PatchConfig(c)
			case "auto":
				if _, err := os.Stat(o.Files.VAE); err != nil {
					c = diffusion.PatchConfig(c)
				}
			}
		}
		if j.m, err = diffusion.New(c, torch.CPU, st.Seed); err != nil {
			return err
		}
		j.emaM, _ = diffusion.New(c, torch.CPU, st.Seed)
	}
	if resumed && !reflect.DeepEqual(c, st.Model) {
		return fmt.Errorf("the base U-Net %s is not the one this run's branch was trained on", o.Base)
	}
	st.Model = c
	arts, err := j.openData() // before the text encoder and VAE: a bad --data fails first
	if err != nil {
		return err
	}
	if j.ae, err = encoder.Autoencoder(c, o.Files, torch.CPU); err != nil {
		return err
	}
	if st.Stage == StageControl {
		n, err := j.m.AddControl(st.Cond, st.Seed)
		if err != nil {
			return err
		}
		en, _ := j.emaM.AddControl(st.Cond, st.Seed)
		j.m.Store.Freeze("")
		j.trained, j.emaS = n.Store, en.Store
	} else {
		j.trained, j.emaS = j.m.Store, j.emaM.Store
	}
	if err := j.emaS.CopyFrom(j.trained, nil); err != nil {
		return err
	}
	if err := j.buildText(resumed); err != nil {
		return err
	}
	j.opt = optim.NewAdam(optim.AdamConfig{LR: o.LR, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2, Decoupled: true})
	stage := st.Stage
	if st.Cond != "" {
		stage += "/" + string(st.Cond)
	}
	fmt.Fprintf(j.out, "diffusion %s: preset %s, latent %s, %d trainable params, text encoder %s, %d training samples\n",
		stage, c.Name, c.Latent, j.trained.NumParams(),
		map[bool]string{true: "trained jointly", false: "frozen"}[st.Joint], j.trainN)
	if st.ArtProb > 0 {
		fmt.Fprintf(j.out, "artworks: %.0f%% of samples, styles %v\n", 100*st.ArtProb, arts)
	}
	return nil
}

// buildText loads the text encoder: frozen when trained weights exist, else
// trained with the diffusion loss (base stage only; the control stage
// reuses the base run's encoder). A resumed joint run builds its preset's
// encoder again, and Load restores its weights.
func (j *Job) buildText(resumed bool) error {
	st, files := &j.st, j.o.Files
	_, serr := os.Stat(files.Text)
	switch {
	case resumed && st.Joint:
		files.Text, files.TextPreset = "", st.TextPreset
	case resumed && serr != nil:
		return fmt.Errorf("this run conditions on the frozen text encoder %s, which is missing", files.Text)
	case !resumed && serr != nil:
		st.Joint, st.TextPreset = true, files.TextPreset
	}
	te, textS, err := encoder.LoadText(files, st.Model.ContextDim, st.Stage == StageBase, torch.CPU)
	if err != nil {
		return err
	}
	j.te = te
	if st.Joint {
		j.textS = textS
		j.optText = optim.NewAdam(optim.DefaultAdam(j.o.TextLR))
	} else {
		textS.Freeze("")
	}
	if w := te.Enc.Config.Width(); w != st.Model.ContextDim {
		return fmt.Errorf("text encoder width %d, U-Net context %d", w, st.Model.ContextDim)
	}
	return nil
}

// openData opens the training stream (SynthFace with the run's artworks,
// or a folder) and the fixed preview batch (the first bench samples); it
// returns the artwork styles.
func (j *Job) openData() ([]synthface.Art, error) {
	st, o := &j.st, j.o
	size := int(st.Model.ImageSize())
	var arts []synthface.Art
	if st.ArtProb > 0 {
		var err error
		if arts, err = synthface.ParseArts(strings.Join(st.Arts, ",")); err != nil {
			return nil, fmt.Errorf("state.json: %w", err)
		}
	}
	open := o.Data
	if open == nil {
		open = func(split data.Split, size, n int, synth func(data.Split, int, int) data.Dataset) (data.Dataset, error) {
			return data.Open(data.SynthFaceSource, data.OpenOptions{Size: size, Split: split, N: n, SynthFace: synth})
		}
	}
	ds, err := open(data.Train, size, o.Samples, func(split data.Split, size, n int) data.Dataset {
		return data.NewSynthFaceArt(split, size, n, st.ArtProb, arts)
	})
	if err != nil {
		return nil, err
	}
	if ds.Len() < o.Batch {
		return nil, fmt.Errorf("%d training samples, fewer than one batch of %d", ds.Len(), o.Batch)
	}
	j.trainN = ds.Len()
	if j.loader, err = data.NewLoader(ds, data.LoaderOptions{BatchSize: o.Batch, Workers: o.Workers, Seed: int64(st.Seed), Shuffle: true, Flip: true, DropLast: true,
		// A rank reads and encodes its own rows only (Distribute sets the
		// shard before the first batch is drawn).
		Rows: func(size int) []int { return j.shard.Positions(size) }}); err != nil {
		return nil, err
	}
	bench, err := open(data.Bench, size, PreviewSamples, nil)
	if err != nil {
		return nil, fmt.Errorf("preview samples: %w", err)
	}
	n := min(PreviewSamples, bench.Len())
	if n == 0 {
		return nil, errors.New("preview samples: the bench split is empty")
	}
	j.fixed = imagebatch.Get(bench, 0, n, torch.CPU)
	torch.Persist(j.fixed.Image, j.fixed.Mask, j.fixed.Scribble)
	return arts, nil
}

// next is the batch of step done: the loader's epochs in order, resuming
// mid-epoch at no cost (the same batches as an uninterrupted run).
func (j *Job) next(ctx context.Context, done int64) ([]*data.Sample, error) {
	per := int64(j.loader.Batches())
	if j.batches == nil {
		lctx, cancel := context.WithCancel(ctx)
		j.stopLoader = cancel
		j.epoch = int(done / per)
		j.batches = j.loader.EpochFrom(lctx, j.epoch, int(done%per))
	}
	for range 2 {
		b, ok := <-j.batches
		if ok {
			return b.Samples, b.Err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		j.stopLoader()
		lctx, cancel := context.WithCancel(ctx)
		j.stopLoader = cancel
		j.epoch++
		j.batches = j.loader.EpochFrom(lctx, j.epoch, 0)
	}
	return nil, errors.New("the loader yields no batches")
}

// Step is one optimizer step (train.Job).
func (j *Job) Step(ctx context.Context, done int64) (res train.Result, err error) {
	if done != j.st.Step {
		return res, fmt.Errorf("step %d asked of a job at step %d", done, j.st.Step)
	}
	ss, err := j.next(ctx, done)
	if err != nil {
		return res, err
	}
	loss, err := j.step(ss)
	if err != nil {
		return res, err
	}
	j.st.Step++
	return train.Result{Losses: map[string]float64{"loss": loss}}, nil
}

// step is one optimizer step on a batch; it returns the loss.
func (j *Job) step(ss []*data.Sample) (loss float64, err error) {
	torch.Scoped(func() {
		g := torch.NewGenerator(j.st.Seed*1_000_003 + uint64(j.st.Step))
		var l *torch.Tensor
		if l, err = j.objective(imagebatch.FromSamples(ss, torch.CPU), j.o.Batch, g); err != nil {
			return
		}
		loss = l.Item()
		synced := j.trained.Trainable()
		if j.textS != nil {
			synced = append(synced, j.textS.Trainable()...)
		}
		j.shard.Backward(l, synced)
		optim.ClipGradNorm(j.trained.Trainable(), 1)
		j.opt.Update(j.trained.Trainable())
		if j.textS != nil {
			optim.ClipGradNorm(j.textS.Trainable(), 1)
			j.optText.Update(j.textS.Trainable())
		}
		optim.EMA{Target: j.emaS}.Update(j.trained, min(j.o.EMA, float64(j.st.Step+1)/float64(j.st.Step+10)))
	})
	return loss, err
}

// objective is the denoising loss of a batch (Schedule.Loss) with the
// prompt and condition dropped at random for classifier-free guidance.
// b holds this rank's rows of a batch of size rows (all of them in one
// process); g draws the latent sample's noise, the drops, the timesteps
// and the noise, in that order, for the whole batch, and the rank keeps
// its rows, so it trains on what one process gives those rows.
func (j *Job) objective(b imagebatch.Batch, size int, g *torch.Generator) (*torch.Tensor, error) {
	n := int64(size)
	lo, rows := j.shard.Rows(size)
	if len(b.Captions) != rows {
		return nil, fmt.Errorf("a rank's batch has %d rows, want %d of %d", len(b.Captions), rows, size)
	}
	var z0 *torch.Tensor
	torch.NoGrad(func() { z0 = j.ae.ToLatentRows(b.Image, g, n, int64(lo)).Detach() })
	captions := make([]string, rows)
	drop := torch.Rand(g, []int64{n}, torch.Float32, torch.CPU).Float32s()
	for i, s := range b.Captions {
		if float64(drop[lo+i]) >= j.o.DropText {
			captions[i] = s
		}
	}
	ids, err := j.te.IDs(captions)
	if err != nil {
		return nil, err
	}
	ctx := j.te.Enc.Forward(ids)
	if j.textS == nil {
		ctx = ctx.Detach()
	}
	var cond diffusion.Conditions
	if j.st.Stage == StageControl {
		img := b.Scribble
		if j.st.Cond == kinds.Mask {
			img = imagebatch.OneHot(b.Mask)
		}
		keep := torch.Rand(g, []int64{n, 1, 1, 1}, torch.Float32, torch.CPU).GeScalar(j.o.DropCond).To(torch.Float32)
		img = img.Mul(keep.Narrow(0, int64(lo), int64(rows)))
		if j.st.Cond == kinds.Mask {
			cond.Mask = img
		} else {
			cond.Scribble = img
		}
	}
	sch := j.m.Schedule
	ts := torch.RandInt(g, 0, int64(sch.T()), []int64{n}, torch.CPU)
	eps := torch.Randn(g, append([]int64{n}, z0.Shape()[1:]...), torch.Float32, torch.CPU)
	mine := func(t *torch.Tensor) *torch.Tensor { return t.Narrow(0, int64(lo), int64(rows)) }
	eps, ts = mine(eps), mine(ts)
	zt := sch.AddNoise(z0, eps, ts)
	return sch.Loss(j.m.Predict(zt, ts, ctx, cond), z0, eps, ts), nil
}

// Preview writes the sample grid (train.Previewer): rows bench ground
// truth, the condition (control stage), EMA samples from the bench
// captions (guidance 3, DDIM, seed 1).
func (j *Job) Preview(path string) error {
	var err error
	terr := torch.Try(func() {
		torch.Scoped(func() {
			fixed := j.fixed
			n := int64(len(fixed.Captions))
			p := &diffusion.Pipeline{Model: j.emaM, Text: j.te, AE: j.ae, Sampler: diffusion.SamplerOpts{}}
			var cond diffusion.Conditions
			rows := []*torch.Tensor{fixed.Image}
			if j.st.Stage == StageControl {
				if j.st.Cond == kinds.Mask {
					cond.Mask = imagebatch.OneHot(fixed.Mask)
					rows = append(rows, fixed.Mask.Unsqueeze(1).To(torch.Float32).MulScalar(2.0/18).SubScalar(1).Expand(n, 3, fixed.Mask.Size(1), fixed.Mask.Size(2)))
				} else {
					cond.Scribble = fixed.Scribble
					rows = append(rows, fixed.Scribble.MulScalar(2).SubScalar(1).Expand(n, 3, fixed.Scribble.Size(2), fixed.Scribble.Size(3)))
				}
			}
			var img *torch.Tensor
			img, err = p.Sample(fixed.Captions, cond, j.o.PreviewSteps, diffusion.Guidance{Text: 3, Cond: 1}, 1)
			if err != nil {
				return
			}
			rows = append(rows, img)
			err = imageio.SaveTensorGrid(path, torch.Cat(rows, 0), int(n))
			img.Free()
		})
	})
	if terr != nil {
		return terr
	}
	return err
}

// textConfig is the metadata of a saved text encoder.
func (j *Job) textConfig() map[string]any { return map[string]any{"encoder": j.te.Enc.Config} }

// Distribute makes the job one rank of a data-parallel run
// (train.Distributed): a rank reads and encodes its rows of each batch and
// draws the latent sample's noise, the drops, steps and noise for the
// whole batch, keeping its rows.
func (j *Job) Distribute(s train.Shard) error {
	j.shard = s
	return s.Check(j.o.Batch)
}

// Replicated is what every rank must hold alike (train.Distributed): the
// trained store, its EMA, a jointly trained text encoder and the Adam
// moments.
func (j *Job) Replicated() []*torch.Tensor {
	var ts []*torch.Tensor
	for _, s := range []*nn.Store{j.trained, j.emaS, j.textS} {
		if s == nil {
			continue
		}
		for _, name := range s.Names() {
			ts = append(ts, s.Get(name))
		}
	}
	ts = append(ts, j.opt.Moments()...)
	if j.optText != nil {
		ts = append(ts, j.optText.Moments()...)
	}
	return ts
}

// Save writes a checkpoint into dir (train.Job): EMA, trained store and
// its optimizer, a jointly trained text encoder and its optimizer, and
// state.json.
func (j *Job) Save(dir string) error {
	if err := j.emaS.Save(filepath.Join(dir, FileEMA), nn.SaveOptions{Config: j.st.Model}); err != nil {
		return err
	}
	if j.textS != nil {
		if err := j.textS.Save(filepath.Join(dir, FileText), nn.SaveOptions{Config: j.textConfig()}); err != nil {
			return err
		}
		if err := j.optText.Save(filepath.Join(dir, FileOptimText)); err != nil {
			return err
		}
	}
	return train.SaveModel(dir, j.trained, j.st.Model, j.opt, j.st)
}

// Load restores a checkpoint written by Save (train.Job). The run it
// belongs to must be the one New built the job for.
func (j *Job) Load(dir string) error {
	err := train.LoadModel(dir, j.trained, j.opt, &j.st, func(saved State) bool {
		saved.Step = j.st.Step
		return reflect.DeepEqual(saved, j.st)
	})
	if err != nil {
		return err
	}
	if _, err := j.emaS.Load(filepath.Join(dir, FileEMA)); err != nil {
		return err
	}
	if j.textS != nil {
		if _, err := j.textS.Load(filepath.Join(dir, FileText)); err != nil {
			return err
		}
		if err := j.optText.Load(filepath.Join(dir, FileOptimText), torch.CPU); err != nil {
			return err
		}
	}
	j.Close() // the data stream restarts at the checkpoint's step
	return nil
}

// Export writes the EMA weights in fp16 (the U-Net, or the branch), and a
// jointly trained text encoder beside a U-Net as <path>_text.safetensors.
func (j *Job) Export(path string) error {
	var err error
	terr := torch.Try(func() {
		if j.st.Stage == StageControl {
			err = j.emaM.SaveControl(j.st.Cond, path, true)
			return
		}
		if err = j.emaM.Save(path, true); err != nil || j.textS == nil {
			return
		}
		tp := strings.TrimSuffix(path, ".safetensors") + "_text.safetensors"
		err = j.textS.Save(tp, nn.SaveOptions{Config: j.textConfig(), Half: true})
	})
	if terr != nil {
		return terr
	}
	return err
}
