package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"ddgi/data"
	"ddgi/gan"
	"ddgi/gan/eg3d"
	"ddgi/gan/stylegan2"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/synthface"
	"ddgi/torch"
	"ddgi/train"
)

func init() {
	registerIn("train", command{name: "gan", summary: "train StyleGAN2 or the EG3D-style tri-plane GAN on SynthFace or a dataset folder (resumable); --export writes shipped weights", run: runTrainGAN})
}

func runTrainGAN(args []string) error {
	fs := newFlags("train gan", "--arch stylegan2|eg3d --preset small64 --out runs/gan_sg2 --kimg N")
	arch := fs.String("arch", "stylegan2", "stylegan2 or eg3d (eg3d learns each image's camera: SynthFace's, or camera/<i>.json in a --data folder; a folder without camera files gives every image the default frontal camera, so the 3D GAN sees one view)")
	preset := fs.String("preset", "small64", "config preset (tiny, small64, full-size names: see docs/gan.md)")
	out := fs.String("out", "", "run folder (resumes automatically when it holds a checkpoint; the newest is <out>/latest/)")
	kimg := fs.Float64("kimg", 100, "train until this many thousand real images have been shown")
	seed := fs.Uint64("seed", 0, "seed for initialisation, latents and data order")
	dataN := fs.Int("data-n", 20000, "SynthFace training images (rendered once, kept in memory); with a --data folder, at most this many when given (default: all)")
	df := addDataFlags(fs)
	poseSwap := fs.Float64("pose-swap", 0, "eg3d: share of fakes whose mapping is conditioned on another fake's camera than the rendered one (EG3D's swapping regularisation, 0.5 there; 0 lets heads bend toward each view); may change on resume")
	yawSpread := fs.Float64("yaw-spread", 0, "synthface: share of training images seen from a yaw uniform in ±50° instead of the FFHQ-like mostly-frontal mix (side views for eg3d); may change on resume")
	shapePrior := fs.Float64("shape-prior", 0, "eg3d, new runs: raw density of a solid core inside the head that G cannot carve (0 = off; 30 gives an opaque surface that keeps small runs off flat-card and hollow-face geometry); a resumed run keeps its own")
	opacity := fs.Float64("opacity", 0, "eg3d: weight of the transparency penalty in G's loss (0 = off; 1 stops dark hair being drawn as see-through holes); may change on resume")
	batch := fs.Int("batch", 0, "global batch (0: the preset's); with --nproc N a multiple of N × D's minibatch-stddev group (small64: 4)")
	workers := fs.Int("workers", 1, "data render workers")
	ckpt := fs.Duration("checkpoint", 5*time.Minute, "old name of --ckpt-every")
	ckptEvery := ckptEveryFlag(fs, 5*time.Minute, func() (time.Duration, bool) { return *ckpt, flagSet(fs, "checkpoint") })
	grid := fs.Float64("grid-kimg", 5, "write a fixed-seed sample grid preview-<images>.png every … kimg")
	export := fs.String("export", "", "instead of training, write the run's G_ema (w̄ recomputed from 10k samples) to this safetensors file")
	half := fs.Bool("half", true, "with --export: store fp16")
	distF := addDistFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	every, err := ckptEvery()
	if err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	if *shapePrior < 0 || (*shapePrior > 0 && kinds.GANArch(*arch) != kinds.EG3D) {
		return fmt.Errorf("--shape-prior %g: want ≥ 0, and only with --arch eg3d", *shapePrior)
	}
	shape, err := runShape(*out, *shapePrior, flagSet(fs, "shape-prior"))
	if err != nil {
		return err
	}
	m, o, err := newGANModel(kinds.GANArch(*arch), *preset, *seed, shape)
	if err != nil {
		return err
	}
	if *opacity < 0 || (*opacity > 0 && kinds.GANArch(*arch) != kinds.EG3D) {
		return fmt.Errorf("--opacity %g: want ≥ 0, and only with --arch eg3d", *opacity)
	}
	if p, ok := m.(*eg3d.Pair); ok {
		p.Opacity = *opacity
	}
	if *yawSpread < 0 || *yawSpread > 1 || *poseSwap < 0 || *poseSwap > 1 {
		return fmt.Errorf("--yaw-spread %g, --pose-swap %g: want 0…1", *yawSpread, *poseSwap)
	}
	o.Kimg, o.Seed, o.DataN, o.Workers, o.Checkpoint, o.GridKimg = *kimg, *seed, *dataN, *workers, every, *grid
	o.YawSpread, o.PoseSwap = *yawSpread, *poseSwap
	if *batch < 0 {
		return fmt.Errorf("--batch %d: want ≥ 1 (0: the preset's)", *batch)
	}
	if *batch > 0 {
		o.Batch = *batch
	}
	o.Label = *arch + "/" + *preset
	if *export != "" {
		if distF.ranks() > 1 {
			return fmt.Errorf("--export with --nproc %d: export runs in one process", distF.ranks())
		}
		return exportGAN(m, o, *out, *export, *half)
	}
	ctx, stop := train.SignalContext(context.Background())
	defer stop()
	group, leave, launched, err := distF.start(ctx, append([]string{"train", "gan"}, args...))
	if launched || err != nil {
		return err
	}
	defer leave()
	o.Group = group
	synth := isSynthFace(*df.spec)
	n := *dataN
	if !synth {
		if *yawSpread > 0 {
			return fmt.Errorf("--yaw-spread re-aims SynthFace renders; a --data folder keeps its own cameras")
		}
		if !flagSet(fs, "data-n") {
			n = 0
		}
	}
	ds, err := df.open(data.Train, o.Resolution, n, func(split data.Split, size, n int) data.Dataset {
		return data.NewSynthFaceSpreadYaw(split, size, n, *yawSpread)
	})
	if err != nil {
		return err
	}
	o.Data = ds
	if group == nil || group.Rank() == 0 {
		fmt.Fprintf(os.Stderr, "train gan: %s preset %s on %s (%d images) → %s (%g kimg; %s, %d threads)\n", *arch, *preset, *df.spec, ds.Len(), *out, *kimg, torch.Version(), torch.Threads())
		if synth && o.YawSpread > 0 {
			fmt.Fprintf(os.Stderr, "%.0f%% of training images seen from a yaw uniform in ±50°\n", 100*o.YawSpread)
		}
		if o.PoseSwap > 0 {
			fmt.Fprintf(os.Stderr, "%.0f%% of fakes map z under another fake's camera (pose swapping)\n", 100*o.PoseSwap)
		}
		if *opacity > 0 {
			fmt.Fprintf(os.Stderr, "transparency penalty weight %g\n", *opacity)
		}
	}
	return gan.Train(ctx, *out, m, o)
}

// isSynthFace says whether a --data spec names SynthFace rendered on the
// fly (as data.Open reads it) rather than a folder.
func isSynthFace(spec string) bool {
	return spec == "" || strings.EqualFold(spec, data.SynthFaceSource)
}

// newGANModel builds the trainable pair of an architecture and the loop
// options from its preset.
// An EG3D takes its shape prior from shape (see runShape).
func newGANModel(arch kinds.GANArch, preset string, seed uint64, shape eg3d.Config) (gan.Model, gan.Opts, error) {
	switch arch {
	case kinds.StyleGAN2:
		c, err := stylegan2.Preset(preset)
		if err != nil {
			return nil, gan.Opts{}, err
		}
		p, err := stylegan2.NewPair(c, seed)
		if err != nil {
			return nil, gan.Opts{}, err
		}
		return p, gan.Opts{Resolution: c.Resolution, Batch: c.Batch, LR: c.LR, R1Gamma: c.R1Gamma, R1Interval: c.R1Interval,
			StyleMixing: c.StyleMixing, EMAKimg: c.EMAKimg, EMARampup: c.EMARampup, PLWeight: c.PLWeight, PLInterval: c.PLInterval}, nil
	case kinds.EG3D:
		return newEG3DModel(preset, seed, shape)
	}
	return nil, gan.Opts{}, fmt.Errorf("--arch %q: want stylegan2 or eg3d", arch)
}

// exportGAN loads a run's newest checkpoint and writes its G_ema with w̄.
func exportGAN(m gan.Model, o gan.Opts, dir, path string, half bool) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	t, err := gan.Resume(dir, m, o)
	if err != nil {
		return err
	}
	m.Finalize()
	_, _, ema := m.Stores()
	meta := map[string]string{"kimg": fmt.Sprintf("%.1f", float64(t.State.Nimg)/1000), "arch": archOf(m)}
	if err := saveStore(ema, path, m.Config(), half, meta); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "exported G_ema after %.1f kimg to %s\n", float64(t.State.Nimg)/1000, path)
	return nil
}

func saveStore(st *nn.Store, path string, cfg any, half bool, meta map[string]string) error {
	return st.Save(path, nn.SaveOptions{Config: cfg, Half: half, Metadata: meta})
}

func archOf(m gan.Model) string {
	if _, ok := m.(*stylegan2.Pair); ok {
		return string(kinds.StyleGAN2)
	}
	return string(kinds.EG3D)
}

func newEG3DModel(preset string, seed uint64, shape eg3d.Config) (gan.Model, gan.Opts, error) {
	c, err := eg3d.Preset(preset)
	if err != nil {
		return nil, gan.Opts{}, err
	}
	c = c.WithShapeOf(shape)
	// The data's camera prior: SynthFace's orbit, which a folder's
	// default frontal camera shares.
	p, err := eg3d.NewPair(c, synthface.DefaultOrbit, seed)
	if err != nil {
		return nil, gan.Opts{}, err
	}
	b := c.Backbone
	return p, gan.Opts{Resolution: c.ImgRes, Batch: b.Batch, LR: b.LR, R1Gamma: b.R1Gamma, R1Interval: b.R1Interval,
		StyleMixing: b.StyleMixing, EMAKimg: b.EMAKimg, EMARampup: b.EMARampup}, nil
}

// runShape is the shape prior a run trains with, as the config fields it
// sets: a new run takes the flag's strength with the current head core; a
// run with a checkpoint keeps the whole prior stored in it (strength,
// centre, radii, shell — the weights were fitted to it), and an explicit
// flag that disagrees with its strength is an error. A folder an older
// ddgi wrote keeps G.safetensors at its top.
func runShape(dir string, flag float64, explicit bool) (eg3d.Config, error) {
	path := filepath.Join(dir, "latest", gan.FileG)
	if _, err := os.Stat(path); err != nil {
		path = filepath.Join(dir, gan.FileG)
	}
	if _, err := os.Stat(path); err != nil {
		return eg3d.Config{}.WithShapePrior(flag), nil
	}
	var stored eg3d.Config
	if _, err := stylegan2.ReadConfig(path, &stored); err != nil {
		return eg3d.Config{}, err
	}
	if explicit && stored.ShapePrior != flag {
		return eg3d.Config{}, fmt.Errorf("--shape-prior %g: %s was trained with %g", flag, dir, stored.ShapePrior)
	}
	return stored, nil
}
