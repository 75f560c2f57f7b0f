package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"ddgi/data"
	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/imagebatch"
	"ddgi/internal/imageio"
	prog "ddgi/internal/progress"
	"ddgi/train"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/synthface"
	"ddgi/torch"
)

func init() {
	registerIn("train", command{name: "diffusion", summary: "train the latent U-Net (--stage base) or a ControlNet branch (--stage control --cond mask|scribble); resumable", run: runTrainDiffusion})
}

// diffState is state.json of a diffusion run.
type diffState struct {
	Step  int64  `json:"step"`
	Seed  uint64 `json:"seed"`
	Stage string `json:"stage"`
	Cond  string `json:"cond,omitempty"`
	Joint bool   `json:"joint_text"` // text encoder trained with the U-Net
	// Share of training samples drawn as artworks, and their styles
	// (synthface.WithArt): stylised prompts for style transfer.
	ArtProb float64          `json:"art_prob,omitempty"`
	Arts    []string         `json:"arts,omitempty"`
	Init    string           `json:"init,omitempty"` // base stage: fine-tuned from these weights
	Model   diffusion.Config `json:"config"`
}

func runTrainDiffusion(args []string) error {
	fs := newFlags("train diffusion", "--stage base|control [--cond mask|scribble] --out runs/diff_… [flags]")
	stage := fs.String("stage", "base", "base (U-Net on text) or control (a ControlNet branch, base frozen)")
	cond := fs.String("cond", "mask", "control stage: mask or scribble")
	preset := fs.String("preset", "small64", "U-Net preset (tiny, small64)")
	out := fs.String("out", "", "run folder (resumes when it holds a checkpoint)")
	base := fs.String("base", "weights/diffusion_small64.safetensors", "control stage: trained base U-Net")
	steps := fs.Int64("steps", 20000, "total optimizer steps")
	batch := fs.Int("batch", 16, "batch size")
	lr := fs.Float64("lr", 2e-4, "Adam learning rate")
	textLR := fs.Float64("text-lr", 5e-5, "learning rate of a jointly trained text encoder")
	ema := fs.Float64("ema", 0.999, "EMA decay of the trained weights (samples and export use the EMA)")
	dropText := fs.Float64("drop-text", -1, "probability of the empty prompt (default 0.1 base, 0.5 control as ControlNet)")
	dropCond := fs.Float64("drop-cond", 0, "control stage: probability of a zero condition")
	nData := fs.Int("samples", 50000, "SynthFace training samples (rendered on the fly)")
	workers := fs.Int("workers", 1, "render workers")
	seed := fs.Uint64("seed", 1, "seed")
	every := fs.Duration("ckpt-every", 4*time.Minute, "checkpoint interval")
	sampleEvery := fs.Int64("sample-every", 1000, "steps between sample grids")
	sampleSteps := fs.Int("sample-steps", 20, "DDIM steps of the sample grids")
	latent := fs.String("latent", "auto", "latent space: vae, patch, or auto (vae when --vae exists)")
	export := fs.String("export", "", "at the end write the EMA weights here (fp16), e.g. weights/diffusion_small64.safetensors")
	artF := addArtFlags(fs, "share of training samples drawn as artworks with style-naming captions (style transfer, paper Sec. 4.4); kept in state.json")
	initFrom := fs.String("init", "", "base stage: start from these trained U-Net weights (fine-tuning, e.g. on --art-prob data) instead of random ones")
	lw := encoder.AddFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *out == "":
		return errors.New("--out is required")
	case *stage != "base" && *stage != "control":
		return fmt.Errorf("--stage %q: base or control", *stage)
	case *batch < 1 || *steps < 1:
		return errors.New("--batch and --steps must be ≥ 1")
	}
	artProb, arts, err := artF.parse()
	if err != nil {
		return err
	}
	if *dropText < 0 {
		*dropText = 0.1
		if *stage == "control" {
			*dropText = 0.5
		}
	}
	run, err := train.Open(*out)
	if err != nil {
		return err
	}
	var st diffState
	resumed, err := run.LoadState(&st)
	if err != nil {
		return err
	}
	if !resumed {
		st = diffState{Seed: *seed, Stage: *stage}
		if *initFrom != "" {
			if *stage != "base" {
				return errors.New("--init is for the base stage (a branch starts from its base's encoder)")
			}
			st.Init = *initFrom
		}
		if artProb > 0 {
			st.ArtProb, st.Arts = artProb, artNames(arts)
		}
		if *stage == "control" {
			st.Cond = *cond
		}
	} else if st.Stage != *stage || (*stage == "control" && st.Cond != *cond) {
		return fmt.Errorf("%s holds a %s/%s run, not %s/%s", *out, st.Stage, st.Cond, *stage, *cond)
	}
	return torch.Try(func() {
		if err := trainDiffusion(run, &st, resumed, diffOpts{
			preset: *preset, base: *base, steps: *steps, batch: *batch, lr: *lr, textLR: *textLR, ema: *ema,
			dropText: *dropText, dropCond: *dropCond, nData: *nData, workers: *workers, every: *every,
			sampleEvery: *sampleEvery, sampleSteps: *sampleSteps, latent: *latent, export: *export, lw: lw,
		}); err != nil {
			panic(&torch.Error{Op: "train diffusion", Msg: err.Error()})
		}
	})
}

type diffOpts struct {
	preset, base, latent, export string
	steps                        int64
	batch, nData, workers        int
	lr, textLR, ema              float64
	dropText, dropCond           float64
	every                        time.Duration
	sampleEvery                  int64
	sampleSteps                  int
	lw                           encoder.Files
}

// diffTrainer holds the networks of one run.
type diffTrainer struct {
	st      *diffState
	m, emaM *diffusion.Model
	trained *nn.Store // the store the optimizer updates (U-Net or branch)
	emaS    *nn.Store
	te      encoder.TextEncoder
	textS   *nn.Store // jointly trained text encoder, or nil when frozen
	ae      diffusion.Autoencoder
	opt     *optim.Adam
	optText *optim.Adam
}

func trainDiffusion(run *train.Run, st *diffState, resumed bool, o diffOpts) error {
	t, err := newDiffTrainer(run, st, resumed, o)
	if err != nil {
		return err
	}
	c := t.m.Config
	size := int(c.ImageSize())
	fmt.Fprintf(os.Stderr, "diffusion %s%s: preset %s, latent %s, %d trainable params, text encoder %s, step %d/%d\n",
		st.Stage, map[bool]string{true: "/" + st.Cond}[st.Cond != ""], c.Name, c.Latent, t.trained.NumParams(),
		map[bool]string{true: "trained jointly", false: "frozen"}[st.Joint], st.Step, o.steps)
	var arts []synthface.Art
	if st.ArtProb > 0 {
		if arts, err = synthface.ParseArts(strings.Join(st.Arts, ",")); err != nil {
			return fmt.Errorf("state.json: %w", err)
		}
		fmt.Fprintf(os.Stderr, "artworks: %.0f%% of samples, styles %v\n", 100*st.ArtProb, arts)
	}
	loader, err := data.NewLoader(data.NewSynthFaceArt(data.Train, size, o.nData, st.ArtProb, arts), data.LoaderOptions{BatchSize: o.batch, Workers: o.workers, Seed: int64(st.Seed), Shuffle: true, Flip: true, DropLast: true})
	if err != nil {
		return err
	}
	fixed := imagebatch.Get(data.NewSynthFace(data.Bench, size, 8), 0, 8, torch.CPU)
	torch.Persist(fixed.Image, fixed.Mask, fixed.Scribble)
	bar := prog.New("diffusion "+st.Stage, st.Step, o.steps, "step")
	ckpt := train.NewCheckpointer(o.every)
	var lossSum float64
	var lossN int
	// Ctrl-C or SIGTERM: finish the step, checkpoint, stop.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	for epoch := int(st.Step) / loader.Batches(); st.Step < o.steps; epoch++ {
		if ctx.Err() != nil {
			bar.Finish()
			if err := t.checkpoint(run); err != nil {
				return err
			}
			return fmt.Errorf("interrupted at step %d; checkpoint saved, rerun the command to resume", st.Step)
		}
		for b := range loader.EpochFrom(ctx, epoch, int(st.Step)%loader.Batches()) {
			if b.Err != nil {
				return b.Err
			}
			loss, err := t.step(b.Samples, o)
			if err != nil {
				return err
			}
			st.Step++
			lossSum += loss
			lossN++
			bar.Set(st.Step, map[string]float64{"loss": loss})
			if st.Step%20 == 0 {
				if err := run.Log(st.Step, map[string]float64{"loss": lossSum / float64(lossN)}); err != nil {
					return err
				}
				lossSum, lossN = 0, 0
			}
			if st.Step%o.sampleEvery == 0 || st.Step == o.steps {
				if err := t.sampleGrid(run, fixed, o.sampleSteps); err != nil {
					return err
				}
			}
			if err := ckpt.MaybeSave(st.Step == o.steps, func() error { return t.checkpoint(run) }); err != nil {
				return err
			}
			if st.Step >= o.steps {
				break
			}
		}
	}
	bar.Finish()
	if o.export != "" {
		if err := t.exportEMA(o.export); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "exported %s\n", o.export)
	}
	return nil
}

func newDiffTrainer(run *train.Run, st *diffState, resumed bool, o diffOpts) (*diffTrainer, error) {
	t := &diffTrainer{st: st}
	var c diffusion.Config
	var err error
	if st.Stage == "control" {
		base, err := diffusion.Load(o.base, torch.CPU)
		if err != nil {
			return nil, fmt.Errorf("control stage needs the base U-Net: %w", err)
		}
		c = base.Config
		t.m = base
		t.emaM, _ = diffusion.Load(o.base, torch.CPU)
	} else if !resumed && st.Init != "" {
		// Fine-tuning: the U-Net starts from trained weights; the EMA is
		// copied from it below.
		if t.m, err = diffusion.Load(st.Init, torch.CPU); err != nil {
			return nil, fmt.Errorf("--init: %w", err)
		}
		c = t.m.Config
		t.emaM, _ = diffusion.New(c, torch.CPU, st.Seed)
	} else {
		if resumed {
			c = st.Model
		} else if c, err = diffusion.Preset(o.preset); err != nil {
			return nil, err
		}
		if !resumed {
			switch o.latent {
			case "patch":
				c = diffusion.PatchConfig(c)
			case "auto":
				if _, err := os.Stat(*o.lw.VAE); err != nil {
					c = diffusion.PatchConfig(c)
				}
			}
		}
		if t.m, err = diffusion.New(c, torch.CPU, st.Seed); err != nil {
			return nil, err
		}
		t.emaM, _ = diffusion.New(c, torch.CPU, st.Seed)
	}
	st.Model = c
	if t.ae, err = encoder.Autoencoder(c, o.lw); err != nil {
		return nil, err
	}
	if st.Stage == "control" {
		n, err := t.m.AddControl(st.Cond, st.Seed)
		if err != nil {
			return nil, err
		}
		en, _ := t.emaM.AddControl(st.Cond, st.Seed)
		t.m.Store.Freeze("")
		t.trained, t.emaS = n.Store, en.Store
	} else {
		t.trained, t.emaS = t.m.Store, t.emaM.Store
	}
	if err := t.emaS.CopyFrom(t.trained, nil); err != nil {
		return nil, err
	}
	// The text encoder: frozen when trained weights exist, else trained
	// with the diffusion loss (base stage only; the control stage reuses
	// the base run's encoder saved beside it).
	allowFresh := st.Stage == "base"
	if resumed && st.Joint {
		*o.lw.Text = run.Path("text.safetensors")
	}
	var textS *nn.Store
	t.te, textS, err = encoder.LoadText(o.lw, c.ContextDim, allowFresh)
	if err != nil {
		return nil, err
	}
	if _, serr := os.Stat(*o.lw.Text); serr != nil || (resumed && st.Joint) {
		st.Joint = true
		t.textS = textS
		t.optText = optim.NewAdam(optim.DefaultAdam(o.textLR))
	} else {
		textS.Freeze("")
	}
	if w := t.te.Enc.Config.Width(); w != c.ContextDim {
		return nil, fmt.Errorf("text encoder width %d, U-Net context %d", w, c.ContextDim)
	}
	t.opt = optim.NewAdam(optim.AdamConfig{LR: o.lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2, Decoupled: true})
	if resumed {
		if err := t.restore(run); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// step is one optimizer step on a batch; it returns the loss.
func (t *diffTrainer) step(ss []*data.Sample, o diffOpts) (loss float64, err error) {
	torch.Scoped(func() {
		b := imagebatch.FromSamples(ss, torch.CPU)
		n := int64(len(ss))
		g := torch.NewGenerator(t.st.Seed*1_000_003 + uint64(t.st.Step))
		var z0 *torch.Tensor
		torch.NoGrad(func() { z0 = t.ae.ToLatent(b.Image, g).Detach() })
		captions := make([]string, n)
		drop := torch.Rand(g, []int64{n}, torch.Float32, torch.CPU).Float32s()
		for i, s := range b.Captions {
			if float64(drop[i]) >= o.dropText {
				captions[i] = s
			}
		}
		var ids *torch.Tensor
		if ids, err = t.te.IDs(captions); err != nil {
			return
		}
		ctx := t.te.Enc.Forward(ids)
		if t.textS == nil {
			ctx = ctx.Detach()
		}
		var cond diffusion.Conditions
		if t.st.Stage == "control" {
			img := b.Scribble
			if t.st.Cond == diffusion.CondMask {
				img = imagebatch.OneHot(b.Mask)
			}
			keep := torch.Rand(g, []int64{n, 1, 1, 1}, torch.Float32, torch.CPU).GeScalar(o.dropCond).To(torch.Float32)
			img = img.Mul(keep)
			if t.st.Cond == diffusion.CondMask {
				cond.Mask = img
			} else {
				cond.Scribble = img
			}
		}
		sch := t.m.Schedule
		ts := torch.RandInt(g, 0, int64(sch.T()), []int64{n}, torch.CPU)
		eps := torch.Randn(g, z0.Shape(), torch.Float32, torch.CPU)
		zt := sch.AddNoise(z0, eps, ts)
		l := sch.Loss(t.m.Predict(zt, ts, ctx, cond), z0, eps, ts)
		l.Backward()
		loss = l.Item()
		optim.ClipGradNorm(t.trained.Trainable(), 1)
		t.opt.Update(t.trained.Trainable())
		if t.textS != nil {
			optim.ClipGradNorm(t.textS.Trainable(), 1)
			t.optText.Update(t.textS.Trainable())
		}
		optim.EMA{Target: t.emaS}.Update(t.trained, min(o.ema, float64(t.st.Step+1)/float64(t.st.Step+10)))
	})
	return loss, err
}

// sampleGrid writes samples-NNNNNN.png: rows ground truth, condition (control
// stage), EMA samples from the bench captions (guidance 3, DDIM).
func (t *diffTrainer) sampleGrid(run *train.Run, fixed imagebatch.Batch, steps int) error {
	var err error
	torch.Scoped(func() {
		p := &diffusion.Pipeline{Model: t.emaM, Text: t.te, AE: t.ae, Sampler: diffusion.SamplerOpts{}}
		var cond diffusion.Conditions
		rows := []*torch.Tensor{fixed.Image}
		if t.st.Stage == "control" {
			if t.st.Cond == diffusion.CondMask {
				cond.Mask = imagebatch.OneHot(fixed.Mask)
				rows = append(rows, fixed.Mask.Unsqueeze(1).To(torch.Float32).MulScalar(2.0/18).SubScalar(1).Expand(8, 3, fixed.Mask.Size(1), fixed.Mask.Size(2)))
			} else {
				cond.Scribble = fixed.Scribble
				rows = append(rows, fixed.Scribble.MulScalar(2).SubScalar(1).Expand(8, 3, fixed.Scribble.Size(2), fixed.Scribble.Size(3)))
			}
		}
		var img *torch.Tensor
		img, err = p.Sample(fixed.Captions, cond, steps, diffusion.Guidance{Text: 3, Cond: 1}, 1)
		if err != nil {
			return
		}
		rows = append(rows, img)
		err = imageio.SaveTensorGrid(run.Path(fmt.Sprintf("samples-%06d.png", t.st.Step)), torch.Cat(rows, 0), 8)
		img.Free()
	})
	return err
}

// checkpoint writes the EMA and a jointly trained text encoder, then the
// trained store, optimizer and state.json (last, via saveCheckpoint).
func (t *diffTrainer) checkpoint(run *train.Run) error {
	if err := t.emaS.Save(run.Path("ema.safetensors"), nn.SaveOptions{Config: t.st.Model}); err != nil {
		return err
	}
	if t.textS != nil {
		cfg := map[string]any{"encoder": t.te.Enc.Config}
		if err := t.textS.Save(run.Path("text.safetensors"), nn.SaveOptions{Config: cfg}); err != nil {
			return err
		}
		if err := t.optText.Save(run.Path("optim_text.safetensors")); err != nil {
			return err
		}
	}
	return saveCheckpoint(run, t.trained, t.opt, t.st.Model, t.st, "diffusion "+t.st.Stage+" loss")
}

func (t *diffTrainer) restore(run *train.Run) error {
	if _, err := t.emaS.Load(run.Path("ema.safetensors")); err != nil {
		return err
	}
	if t.textS != nil {
		if err := t.optText.Load(run.Path("optim_text.safetensors"), torch.CPU); err != nil {
			return err
		}
	}
	return loadCheckpoint(run, t.trained, t.opt, t.st.Step)
}

// exportEMA writes the EMA weights in fp16 (the U-Net, or the branch), and
// a jointly trained text encoder beside them.
func (t *diffTrainer) exportEMA(path string) error {
	if t.st.Stage == "control" {
		return t.emaM.SaveControl(t.st.Cond, path, true)
	}
	if err := t.emaM.Save(path, true); err != nil {
		return err
	}
	if t.textS != nil {
		tp := path[:len(path)-len(".safetensors")] + "_text.safetensors"
		return t.textS.Save(tp, nn.SaveOptions{Config: map[string]any{"encoder": t.te.Enc.Config}, Half: true})
	}
	return nil
}
