// Package gan is the training loop shared by ddgi's two GANs (gan/stylegan2
// and gan/eg3d): StyleGAN2's recipe of non-saturating logistic loss, lazy R1
// regularisation, style mixing and a G EMA, with resumable run folders.
package gan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"ddgi/data"
	"ddgi/gan/stylegan2"
	"ddgi/internal/imageio"
	"ddgi/internal/progress"
	"ddgi/train"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
)

// Model is a generator/discriminator pair the loop can train.
type Model interface {
	// Stores are the trained G, D and the EMA copy of G.
	Stores() (g, d, gEMA *nn.Store)
	// Config is saved into every checkpoint's metadata.
	Config() any
	ZDim() int
	NumWS() int
	// Map is G's mapping network without truncation: w [B,W].
	Map(z, c *torch.Tensor) *torch.Tensor
	// Fake renders w+ [B,L,W] under camera c (nil for 2-D) with G into the
	// images the discriminator sees.
	Fake(wplus, c *torch.Tensor) []*torch.Tensor
	// Score is D's logit per sample for images and labels c.
	Score(imgs []*torch.Tensor, c *torch.Tensor) *torch.Tensor
	// Real turns loader samples into D inputs and labels (nil for 2-D).
	Real(batch []*data.Sample) ([]*torch.Tensor, *torch.Tensor)
	// Preview renders RGB images [N,3,H,W] of G_ema for latents z.
	Preview(z *torch.Tensor) *torch.Tensor
	// TrackWAvg switches G's running w̄ on or off.
	TrackWAvg(on bool)
	// Finalize recomputes G_ema's w̄ from many mapping samples (before export).
	Finalize()
}

// Penalized is a Model with its own generator regulariser: GPenalty is
// the weighted penalty on the images the last Fake call made (with their
// graph; nil when off) and the name it is logged under.
type Penalized interface {
	GPenalty() (*torch.Tensor, string)
}

// Opts drive Train. Zero values take StyleGAN2's defaults where one exists.
type Opts struct {
	Resolution  int
	Batch       int
	LR          float64
	R1Gamma     float64
	R1Interval  int
	StyleMixing float64
	EMAKimg     float64
	EMARampup   float64
	PLWeight    float64 // path-length regularisation weight (0: off)
	PLInterval  int
	Kimg        float64       // stop after this many thousand real images
	Checkpoint  time.Duration // how often to save (default 5 min)
	GridKimg    float64       // sample grid every … kimg (default 5)
	DataN       int           // SynthFace training images (cached after first use)
	// YawSpread is the share of training images re-aimed at a yaw uniform
	// in ±50° (data.NewSynthFaceSpreadYaw): side views for a 3D GAN. It
	// may change when a run resumes (a fine-tune on a flatter pose mix).
	YawSpread float64
	// PoseSwap is EG3D's generator pose conditioning with swapping (§4.2):
	// the share of fakes whose mapping sees another fake's camera than the
	// one they are rendered from. At 0 the mapping always sees the render
	// camera, and G can bend each head toward its view (flat, billboard-like
	// heads from the side when one w is turned). EG3D uses 0.5.
	PoseSwap float64
	Workers  int // data workers
	Seed     uint64
	Label    string
	Quiet    bool
	// MaxSteps stops early (tests).
	MaxSteps int
}

// State is the resumable part of a run (state.json).
type State struct {
	Step int64   `json:"step"`
	Nimg int64   `json:"nimg"`
	Seed uint64  `json:"seed"`
	Kimg float64 `json:"kimg_target"`
	// PLMean is the running mean path length a of StyleGAN2 Eq. 4.
	PLMean float64 `json:"pl_mean"`
}

// Checkpoint file names inside a run folder.
const (
	FileG    = "G.safetensors"
	FileD    = "D.safetensors"
	FileGEMA = "G_ema.safetensors"
	FileOptG = "optG.safetensors"
	FileOptD = "optD.safetensors"
)

// GridSeeds are the fixed latent seeds of every preview grid.
var GridSeeds = 16

// Metrics are one step's scalars.
type Metrics map[string]float64

// Trainer holds the optimisers and the RNG of a run.
type Trainer struct {
	M          Model
	O          Opts
	OptG, OptD *optim.Adam
	State      State
	rng        *torch.Generator
}

// NewTrainer prepares optimisers (Adam β = (0, 0.99), StyleGAN2).
func NewTrainer(m Model, o Opts) *Trainer {
	if o.R1Interval < 1 {
		o.R1Interval = 16
	}
	if o.Checkpoint == 0 {
		o.Checkpoint = 5 * time.Minute
	}
	if o.GridKimg == 0 {
		o.GridKimg = 5
	}
	ac := optim.AdamConfig{LR: o.LR, Beta1: 0, Beta2: 0.99, Eps: 1e-8}
	return &Trainer{M: m, O: o, OptG: optim.NewAdam(ac), OptD: optim.NewAdam(ac), rng: torch.NewGenerator(o.Seed), State: State{Seed: o.Seed, Kimg: o.Kimg}}
}

// latents draws z [B,Z].
func (t *Trainer) latents(b int) *torch.Tensor {
	return torch.Randn(t.rng, []int64{int64(b), int64(t.M.ZDim())}, torch.Float32, torch.CPU)
}

// mixedWPlus maps two latents and mixes them with probability StyleMixing.
func (t *Trainer) mixedWPlus(b int, c *torch.Tensor) *torch.Tensor {
	l := t.M.NumWS()
	w := t.M.Map(t.latents(b), c)
	if t.O.StyleMixing > 0 && torch.Rand(t.rng, []int64{1}, torch.Float32, torch.CPU).Item() < t.O.StyleMixing {
		cut := 1 + int(torch.RandInt(t.rng, 0, int64(l-1), []int64{1}, torch.CPU).Item())
		return stylegan2.StyleMix(w, t.M.Map(t.latents(b), c), cut, l)
	}
	return stylegan2.Broadcast(w, l)
}

// fakeCameras shuffles the real labels so fakes follow the data's pose
// distribution (EG3D samples generator poses from the dataset).
func (t *Trainer) fakeCameras(c *torch.Tensor) *torch.Tensor {
	if c == nil {
		return nil
	}
	return c.IndexSelect(0, torch.RandPerm(t.rng, c.Size(0), torch.CPU))
}

// conditioningCameras are the cameras the fakes' mapping sees: each its
// render camera c, or with probability PoseSwap the next fake's (the batch
// rolled by one), as EG3D's swapping regularisation.
func (t *Trainer) conditioningCameras(c *torch.Tensor) *torch.Tensor {
	if c == nil || t.O.PoseSwap <= 0 || c.Size(0) < 2 {
		return c
	}
	b := c.Size(0)
	next := make([]int64, b)
	for i := range next {
		next[i] = (int64(i) + 1) % b
	}
	rolled := c.IndexSelect(0, torch.FromInt64(next, b).ToDevice(c.Device()))
	swap := torch.Rand(t.rng, []int64{b, 1}, torch.Float32, torch.CPU).LtScalar(t.O.PoseSwap).ToDevice(c.Device())
	return torch.Where(swap.Expand(b, c.Size(1)), rolled, c)
}

// Step runs one D update (with lazy R1 every R1Interval steps) and one G
// update on a real batch, then the EMA; it returns the step's metrics.
func (t *Trainer) Step(batch []*data.Sample) Metrics {
	m := Metrics{}
	g, d, ema := t.M.Stores()
	b := len(batch)
	s := torch.NewScope()
	defer s.Close()

	// D step: fakes without G's graph.
	reals, c := t.M.Real(batch)
	cf := t.fakeCameras(c)
	var fakes []*torch.Tensor
	torch.NoGrad(func() { fakes = t.M.Fake(t.mixedWPlus(b, t.conditioningCameras(cf)), cf) })
	r1Step := t.State.Step%int64(t.O.R1Interval) == 0 && t.O.R1Gamma > 0
	if r1Step {
		for _, r := range reals {
			r.SetRequiresGrad(true)
		}
	}
	realLogits := t.M.Score(reals, c)
	fakeLogits := t.M.Score(fakes, cf)
	lossD := stylegan2.DLoss(realLogits, fakeLogits)
	total := lossD
	if r1Step {
		// Lazy regularisation (StyleGAN2 §3.1): R1 every k steps, weighted by k.
		r1 := stylegan2.R1Penalty(realLogits, reals, t.O.R1Gamma)
		m["r1"] = r1.Item()
		total = total.Add(r1.MulScalar(float64(t.O.R1Interval)))
	}
	total.Backward()
	t.OptD.Update(d.Trainable())
	m["loss_d"] = lossD.Item()
	m["d_real"] = realLogits.MeanAll().Item()
	m["d_fake"] = fakeLogits.MeanAll().Item()

	// G step: D frozen, w̄ tracked.
	d.Freeze("")
	t.M.TrackWAvg(true)
	cg := t.fakeCameras(c)
	lossG := stylegan2.GLoss(t.M.Score(t.M.Fake(t.mixedWPlus(b, t.conditioningCameras(cg)), cg), cg))
	t.M.TrackWAvg(false)
	totalG := lossG
	if pm, ok := t.M.(Penalized); ok {
		if pen, name := pm.GPenalty(); pen != nil {
			m[name] = pen.Item()
			totalG = totalG.Add(pen)
		}
	}
	totalG.Backward()
	d.Unfreeze("")
	t.OptG.Update(g.Trainable())
	m["loss_g"] = lossG.Item()
	if t.O.PLWeight > 0 && t.State.Step%int64(max(t.O.PLInterval, 1)) == 0 {
		m["pl"] = t.pathLengthStep(max(b/2, 1), cg)
	}

	t.State.Step++
	t.State.Nimg += int64(b)
	// G EMA with StyleGAN2-ADA's half-life (and ramp-up).
	emaNimg := t.O.EMAKimg * 1000
	if t.O.EMARampup > 0 {
		emaNimg = math.Min(emaNimg, float64(t.State.Nimg)*t.O.EMARampup)
	}
	optim.EMA{Target: ema}.Update(g, math.Pow(0.5, float64(b)/math.Max(emaNimg, 1e-8)))
	return m
}

// pathLengthStep is StyleGAN2's lazy path-length regularisation on half a
// batch, weighted by the interval; it returns the penalty.
func (t *Trainer) pathLengthStep(b int, c *torch.Tensor) float64 {
	g, _, _ := t.M.Stores()
	if c != nil {
		c = c.Narrow(0, 0, int64(b))
	}
	wplus := t.mixedWPlus(b, c)
	img := t.M.Fake(wplus, c)[0]
	pen, mean := stylegan2.PathLengthPenalty(img, wplus, t.State.PLMean, t.rng)
	if t.State.PLMean == 0 {
		t.State.PLMean = mean
	} else {
		t.State.PLMean += 0.01 * (mean - t.State.PLMean)
	}
	pen.MulScalar(t.O.PLWeight * float64(max(t.O.PLInterval, 1))).Backward()
	t.OptG.Update(g.Trainable())
	return pen.Item()
}

// Save writes the checkpoint (G, D, G_ema, both optimisers, state).
func (t *Trainer) Save(run *train.Run) error {
	g, d, ema := t.M.Stores()
	meta := nn.SaveOptions{Config: t.M.Config()}
	for name, st := range map[string]*nn.Store{FileG: g, FileD: d, FileGEMA: ema} {
		if err := st.Save(run.Path(name), meta); err != nil {
			return err
		}
	}
	if err := t.OptG.Save(run.Path(FileOptG)); err != nil {
		return err
	}
	if err := t.OptD.Save(run.Path(FileOptD)); err != nil {
		return err
	}
	return run.SaveState(t.State)
}

// Resume loads a run folder's checkpoint; ok is false when it has none.
func (t *Trainer) Resume(run *train.Run) (ok bool, err error) {
	var st State
	if ok, err = run.LoadState(&st); err != nil || !ok {
		return ok, err
	}
	g, d, ema := t.M.Stores()
	for name, s := range map[string]*nn.Store{FileG: g, FileD: d, FileGEMA: ema} {
		if _, err := s.Load(run.Path(name)); err != nil {
			return false, fmt.Errorf("resume: %w", err)
		}
	}
	if err := t.OptG.Load(run.Path(FileOptG), torch.CPU); err != nil {
		return false, fmt.Errorf("resume: %w", err)
	}
	if err := t.OptD.Load(run.Path(FileOptD), torch.CPU); err != nil {
		return false, fmt.Errorf("resume: %w", err)
	}
	t.State.Step, t.State.Nimg, t.State.PLMean = st.Step, st.Nimg, st.PLMean
	t.rng = torch.NewGenerator(t.O.Seed + uint64(st.Step)*7919)
	return true, run.TruncateLog(st.Nimg)
}

// GridLatents are the fixed preview latents (seeds 0…GridSeeds−1).
func GridLatents(zdim int) *torch.Tensor {
	zs := make([]*torch.Tensor, GridSeeds)
	for i := range zs {
		zs[i] = torch.Randn(torch.NewGenerator(uint64(i)), []int64{1, int64(zdim)}, torch.Float32, torch.CPU)
	}
	return torch.Cat(zs, 0)
}

// SaveGrid writes G_ema's images for the fixed seeds.
func (t *Trainer) SaveGrid(path string) error {
	var err error
	torch.NoGrad(func() {
		torch.Scoped(func() {
			err = imageio.SaveTensorGrid(path, t.M.Preview(GridLatents(t.M.ZDim())).Clamp(-1, 1), 8)
		})
	})
	return err
}

// cachedSet keeps rendered images and cameras (not masks) in memory so
// later epochs cost nothing.
type cachedSet struct {
	ds    data.Dataset
	mu    sync.Mutex
	cache map[int]*data.Sample
}

func (c *cachedSet) Len() int { return c.ds.Len() }

func (c *cachedSet) Get(i int) (*data.Sample, error) {
	c.mu.Lock()
	s, ok := c.cache[i]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	full, err := c.ds.Get(i)
	if err != nil {
		return nil, err
	}
	s = &data.Sample{Image: full.Image, Size: full.Size, Camera: full.Camera, Identity: full.Identity, Seed: full.Seed}
	c.mu.Lock()
	c.cache[i] = s
	c.mu.Unlock()
	return s, nil
}

// Batches streams real SynthFace batches forever (shuffled, mirrored).
func Batches(ctx context.Context, o Opts) (<-chan data.Batch, error) {
	ds := &cachedSet{ds: data.NewSynthFaceSpreadYaw(data.Train, o.Resolution, o.DataN, o.YawSpread), cache: map[int]*data.Sample{}}
	ld, err := data.NewLoader(ds, data.LoaderOptions{BatchSize: o.Batch, Workers: max(o.Workers, 1), Seed: int64(o.Seed), Shuffle: true, Flip: true, DropLast: true})
	if err != nil {
		return nil, err
	}
	out := make(chan data.Batch)
	go func() {
		defer close(out)
		for ep := 0; ; ep++ {
			for b := range ld.Epoch(ctx, ep) {
				select {
				case out <- b:
				case <-ctx.Done():
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	return out, nil
}

// nextBatch waits for a batch; false when the run is cancelled or the
// feeder has stopped (it closes its channel when cancelled, and a closed
// channel must not pass for an empty batch).
func nextBatch(ctx context.Context, batches <-chan data.Batch) (data.Batch, bool) {
	select {
	case b, open := <-batches:
		return b, open
	case <-ctx.Done():
		return data.Batch{}, false
	}
}

// Train runs (or resumes) a run in dir until Opts.Kimg: progress line with
// kimg, losses and ETA; log.jsonl and loss.png; a checkpoint every
// Opts.Checkpoint; a grid fakes<kimg>.png every Opts.GridKimg.
func Train(ctx context.Context, dir string, m Model, o Opts) (err error) {
	run, err := train.Open(dir)
	if err != nil {
		return err
	}
	t := NewTrainer(m, o)
	resumed, err := t.Resume(run)
	if err != nil {
		return err
	}
	if !resumed {
		if err := os.Remove(run.Path("log.jsonl")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches, err := Batches(ctx, o)
	if err != nil {
		return err
	}
	total := int64(o.Kimg * 1000)
	bar := progress.New(o.Label, t.State.Nimg, total, "img")
	if o.Quiet {
		bar.Out = io.Discard
	}
	ckpt := train.NewCheckpointer(o.Checkpoint)
	nextGrid := (math.Floor(float64(t.State.Nimg)/1000/o.GridKimg) + 1) * o.GridKimg
	sum, cnt, n := Metrics{}, Metrics{}, 0
	steps := 0
	terr := torch.Try(func() {
		for t.State.Nimg < total && (o.MaxSteps == 0 || steps < o.MaxSteps) {
			b, ok := nextBatch(ctx, batches)
			if !ok {
				return
			}
			if b.Err != nil {
				panic(&torch.Error{Op: "data", Msg: b.Err.Error()})
			}
			mt := t.Step(b.Samples)
			steps++
			for k, v := range mt {
				sum[k] += v
				cnt[k]++
			}
			n++
			if n == 20 || t.State.Nimg >= total || (o.MaxSteps > 0 && steps >= o.MaxSteps) {
				avg := Metrics{}
				for k, v := range sum {
					avg[k] = v / cnt[k]
				}
				if e := run.Log(t.State.Nimg, avg); e != nil {
					err = e
					return
				}
				bar.Set(t.State.Nimg, map[string]float64{"kimg": float64(t.State.Nimg) / 1000, "G": avg["loss_g"], "D": avg["loss_d"]})
				sum, cnt, n = Metrics{}, Metrics{}, 0
			}
			if kimg := float64(t.State.Nimg) / 1000; kimg >= nextGrid {
				if e := t.SaveGrid(run.Path(fmt.Sprintf("fakes%06d.png", int(kimg*1000)))); e != nil {
					err = e
					return
				}
				nextGrid += o.GridKimg
			}
			if e := ckpt.MaybeSave(false, func() error { return t.checkpoint(run) }); e != nil {
				err = e
				return
			}
		}
	})
	if terr != nil {
		err = terr // a panic inside; errors set in the loop are kept otherwise
	}
	if err != nil {
		return err
	}
	bar.Finish()
	return t.checkpoint(run)
}

// checkpoint saves the run and refreshes the preview grid and loss plot.
func (t *Trainer) checkpoint(run *train.Run) error {
	if err := t.Save(run); err != nil {
		return err
	}
	if err := t.SaveGrid(run.Path("fakes_latest.png")); err != nil {
		return err
	}
	if err := run.PlotLosses(t.O.Label); err != nil {
		return err
	}
	return nil
}
