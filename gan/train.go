// Package gan is the training job shared by ddgi's two GANs (gan/stylegan2
// and gan/eg3d): StyleGAN2's recipe of non-saturating logistic loss, lazy R1
// regularisation, style mixing and a G EMA, run by train.Loop in images.
package gan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"ddgi/data"
	"ddgi/gan/stylegan2"
	"ddgi/internal/imageio"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
	"ddgi/train"
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
	// RNGs are G's own random sources by name (noise maps, ray jitter):
	// checkpoints keep their states, so a resumed run draws what an
	// uninterrupted one would.
	RNGs() map[string]*torch.Generator
	// Finalize recomputes G_ema's w̄ from many mapping samples (before export).
	Finalize()
}

// Penalized is a Model with its own generator regulariser: GPenalty is
// the weighted penalty on the images the last Fake call made (with their
// graph; nil when off) and the name it is logged under.
type Penalized interface {
	GPenalty() (*torch.Tensor, string)
}

// RowSharded is a Model whose own random draws (noise maps, ray jitter)
// can follow a data-parallel rank's rows (stylegan2.Pair, eg3d.Pair).
type RowSharded interface {
	SetRows(r *stylegan2.Rows)
	// MbstdGroup is D's minibatch-stddev group size.
	MbstdGroup() int
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
	// Data is the training set (cached in memory after first use); nil
	// renders SynthFace: DataN images, YawSpread.
	Data  data.Dataset
	DataN int
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
	Quiet    bool // no progress line
	// MaxSteps pauses the run after this many steps in this call
	// (checkpointed; the next Train resumes): tests.
	MaxSteps int
	// Group runs the job data-parallel (nil: one process).
	Group train.Group
}

// State is the resumable part of a run (state.json in each checkpoint).
type State struct {
	Step int64   `json:"step"`
	Nimg int64   `json:"nimg"`
	Seed uint64  `json:"seed"`
	Kimg float64 `json:"kimg_target"`
	// PLMean is the running mean path length a of StyleGAN2 Eq. 4.
	PLMean float64 `json:"pl_mean"`
	// RNG holds the state of the trainer's generator ("trainer") and of
	// the model's own (Model.RNGs).
	RNG map[string][]byte `json:"rng"`
}

// Checkpoint file names inside a checkpoint folder (<run>/latest/…).
const (
	FileG     = "G.safetensors"
	FileD     = "D.safetensors"
	FileGEMA  = "G_ema.safetensors"
	FileOptG  = "optG.safetensors"
	FileOptD  = "optD.safetensors"
	FileState = "state.json"
	FileGrid  = "fakes.png" // G_ema's fixed-seed grid at the checkpoint
)

// GridSeeds are the fixed latent seeds of every preview grid.
var GridSeeds = 16

// Metrics are one step's scalars.
type Metrics map[string]float64

// Trainer is a GAN run as a train.Job: the optimisers, the RNG and the
// data feed; a unit of progress is one real image.
type Trainer struct {
	M          Model
	O          Opts
	OptG, OptD *optim.Adam
	State      State
	rng        *torch.Generator

	batches  <-chan data.Batch // started by the first Step, after any Load
	stopFeed context.CancelFunc
	shard    train.Shard // this rank's place (zero: one process)
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

// TrainStep runs one D update (with lazy R1 every R1Interval steps) and
// one G update on a real batch, then the EMA; it returns the step's metrics.
// On a data-parallel rank the batch is the global one: every random number
// is drawn for all of it and the rank computes its rows (rowsOf).
func (t *Trainer) TrainStep(batch []*data.Sample) Metrics {
	pos := t.positions(len(batch))
	if pos == nil {
		return t.trainRows(batch, nil, len(batch))
	}
	own := make([]*data.Sample, len(pos))
	for i, p := range pos {
		own[i] = batch[p]
	}
	cams := make([][25]float32, len(batch))
	for i, s := range batch {
		cams[i] = s.Camera
	}
	return t.trainRows(own, cams, len(batch))
}

// trainRows is TrainStep from this rank's own rows of a global batch of b
// (positions t.positions(b); all of it in one process) and every row's
// camera (cams; unused in one process or by a 2-D GAN): fakes borrow the
// whole batch's poses, so a rank needs them all but loads only its images.
func (t *Trainer) trainRows(own []*data.Sample, cams [][25]float32, b int) Metrics {
	m := Metrics{}
	g, d, ema := t.M.Stores()
	s := torch.NewScope()
	defer s.Close()
	rows := t.rowsOf(b)
	t.setRows(rows)
	defer t.setRows(nil)

	// D step: fakes without G's graph.
	reals, c := t.M.Real(own)
	cAll := c
	if rows != nil && c != nil {
		cAll = stylegan2.Cameras(cams)
	}
	cfAll := t.fakeCameras(cAll)
	cf := pickRows(rows, cfAll)
	var fakes []*torch.Tensor
	torch.NoGrad(func() { fakes = t.M.Fake(pickRows(rows, t.mixedWPlus(b, t.conditioningCameras(cfAll))), cf) })
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
	t.shard.Backward(total, d.Trainable())
	t.OptD.Update(d.Trainable())
	m["loss_d"] = lossD.Item()
	m["d_real"] = realLogits.MeanAll().Item()
	m["d_fake"] = fakeLogits.MeanAll().Item()

	// G step: D frozen, w̄ tracked (the mapping sees the whole batch, so
	// every rank moves w̄ as one process would).
	d.Freeze("")
	t.M.TrackWAvg(true)
	cgAll := t.fakeCameras(cAll)
	cg := pickRows(rows, cgAll)
	lossG := stylegan2.GLoss(t.M.Score(t.M.Fake(pickRows(rows, t.mixedWPlus(b, t.conditioningCameras(cgAll))), cg), cg))
	t.M.TrackWAvg(false)
	totalG := lossG
	if pm, ok := t.M.(Penalized); ok {
		if pen, name := pm.GPenalty(); pen != nil {
			m[name] = pen.Item()
			totalG = totalG.Add(pen)
		}
	}
	t.shard.Backward(totalG, g.Trainable())
	d.Unfreeze("")
	t.OptG.Update(g.Trainable())
	m["loss_g"] = lossG.Item()
	if t.O.PLWeight > 0 && t.State.Step%int64(max(t.O.PLInterval, 1)) == 0 {
		m["pl"] = t.pathLengthStep(max(b/2, 1), cgAll)
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
// batch (b rows of the global batch, cameras c of the whole batch),
// weighted by the interval; it returns the penalty.
func (t *Trainer) pathLengthStep(b int, c *torch.Tensor) float64 {
	g, _, _ := t.M.Stores()
	if c != nil {
		c = c.Narrow(0, 0, int64(b))
	}
	rows := t.rowsOf(b)
	t.setRows(rows)
	wplus := pickRows(rows, t.mixedWPlus(b, c))
	img := t.M.Fake(wplus, pickRows(rows, c))[0]
	pen, mean := stylegan2.PathLengthPenaltyRows(img, wplus, t.State.PLMean, t.rng, rows)
	mean = t.shard.Mean(mean)
	if t.State.PLMean == 0 {
		t.State.PLMean = mean
	} else {
		t.State.PLMean += 0.01 * (mean - t.State.PLMean)
	}
	t.shard.Backward(pen.MulScalar(t.O.PLWeight*float64(max(t.O.PLInterval, 1))), g.Trainable())
	t.OptG.Update(g.Trainable())
	return pen.Item()
}

// positions are this rank's rows of a global batch of b as batch
// positions (rowsOf's; nil in one process).
func (t *Trainer) positions(b int) []int {
	if t.shard.Size <= 1 {
		return nil
	}
	pos := make([]int, b/t.shard.Size)
	for l := range pos {
		pos[l] = t.shard.Rank + l*t.shard.Size
	}
	return pos
}

// rowsOf is this rank's rows of a global batch of b: every Size-th row
// from its rank on, so D's minibatch-stddev groups (row i in group
// i mod groups) stay whole on one rank (Distribute checks they can). Nil
// in one process.
func (t *Trainer) rowsOf(b int) *stylegan2.Rows {
	pos := t.positions(b)
	if pos == nil {
		return nil
	}
	idx := make([]int64, len(pos))
	for l, p := range pos {
		idx[l] = int64(p)
	}
	return &stylegan2.Rows{Index: torch.FromInt64(idx, int64(len(idx))), N: int64(len(idx)), Total: int64(b)}
}

// setRows hands the model's own random draws the rank's rows.
func (t *Trainer) setRows(r *stylegan2.Rows) {
	if rs, ok := t.M.(RowSharded); ok && t.shard.Size > 1 {
		rs.SetRows(r)
	}
}

// pickRows keeps the rank's rows of x (x itself in one process or when nil).
func pickRows(r *stylegan2.Rows, x *torch.Tensor) *torch.Tensor {
	if r == nil || x == nil {
		return x
	}
	return x.IndexSelect(0, r.Index.ToDevice(x.Device()))
}

// Distribute makes the trainer one rank of a data-parallel run
// (train.Distributed). Beyond an even split of the batch, D's
// minibatch-stddev groups must fall whole on the ranks, and half a batch
// (path length) must split too, so N ranks step exactly as one process.
func (t *Trainer) Distribute(s train.Shard) error {
	if err := s.Check(t.O.Batch); err != nil {
		return err
	}
	rs, ok := t.M.(RowSharded)
	if !ok {
		return fmt.Errorf("this GAN cannot draw its noise for a rank's rows")
	}
	b, n := t.O.Batch, t.O.Batch/s.Size
	gb := stylegan2.MbstdGroupSize(rs.MbstdGroup(), b)
	if stylegan2.MbstdGroupSize(rs.MbstdGroup(), n) != gb || (b/gb)%s.Size != 0 {
		return fmt.Errorf("a batch of %d over %d ranks would split D's minibatch-stddev groups of %d; use a multiple of %d", b, s.Size, gb, gb*s.Size)
	}
	if t.O.PLWeight > 0 && max(b/2, 1)%s.Size != 0 {
		return fmt.Errorf("path-length regularisation runs on half the batch (%d), which does not split over %d ranks; use a multiple of %d", max(b/2, 1), s.Size, 2*s.Size)
	}
	t.shard = s
	return nil
}

// Replicated lists G, D, G_ema and both optimisers' moments (train.Distributed).
func (t *Trainer) Replicated() []*torch.Tensor {
	g, d, ema := t.M.Stores()
	var ts []*torch.Tensor
	for _, s := range []*nn.Store{g, d, ema} {
		for _, name := range s.Names() {
			ts = append(ts, s.Get(name))
		}
	}
	ts = append(ts, t.OptG.Moments()...)
	return append(ts, t.OptD.Moments()...)
}

// Save writes a checkpoint into dir (train.Job): G, D, G_ema, both
// optimisers, state.json with every RNG's state, and G_ema's grid.
func (t *Trainer) Save(dir string) error {
	g, d, ema := t.M.Stores()
	meta := nn.SaveOptions{Config: t.M.Config()}
	for name, st := range map[string]*nn.Store{FileG: g, FileD: d, FileGEMA: ema} {
		if err := st.Save(filepath.Join(dir, name), meta); err != nil {
			return err
		}
	}
	if err := t.OptG.Save(filepath.Join(dir, FileOptG)); err != nil {
		return err
	}
	if err := t.OptD.Save(filepath.Join(dir, FileOptD)); err != nil {
		return err
	}
	st := t.State
	st.RNG = map[string][]byte{}
	for name, r := range t.rngs() {
		st.RNG[name] = r.State()
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := imageio.WriteAtomic(filepath.Join(dir, FileState), b); err != nil {
		return err
	}
	return t.SaveGrid(filepath.Join(dir, FileGrid))
}

// rngs are every random generator a step draws from, by name.
func (t *Trainer) rngs() map[string]*torch.Generator {
	rs := map[string]*torch.Generator{"trainer": t.rng}
	for name, r := range t.M.RNGs() {
		if r != nil {
			rs[name] = r
		}
	}
	return rs
}

// readState reads a checkpoint's state.json.
func readState(dir string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(dir, FileState))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, FileState), err)
	}
	return st, nil
}

// loadStores loads G, D and G_ema from dir.
func (t *Trainer) loadStores(dir string) error {
	g, d, ema := t.M.Stores()
	for name, s := range map[string]*nn.Store{FileG: g, FileD: d, FileGEMA: ema} {
		if _, err := s.Load(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// Load restores a checkpoint Save wrote (train.Job). The run keeps its
// seed (data order); Kimg stays the caller's, so a run can be extended.
func (t *Trainer) Load(dir string) error {
	st, err := readState(dir)
	if err != nil {
		return err
	}
	if err := t.loadStores(dir); err != nil {
		return err
	}
	if err := t.OptG.Load(filepath.Join(dir, FileOptG), torch.CPU); err != nil {
		return err
	}
	if err := t.OptD.Load(filepath.Join(dir, FileOptD), torch.CPU); err != nil {
		return err
	}
	for name, r := range t.rngs() {
		b, ok := st.RNG[name]
		if !ok {
			return fmt.Errorf("%s: no state of the %q random generator", FileState, name)
		}
		if err := r.SetState(b); err != nil {
			return fmt.Errorf("%s: random generator %q: %w", FileState, name, err)
		}
	}
	t.State.Step, t.State.Nimg, t.State.PLMean, t.State.Seed = st.Step, st.Nimg, st.PLMean, st.Seed
	t.O.Seed = st.Seed
	return nil
}

// Resume loads the newest checkpoint of the run folder dir that verifies
// into a trainer of m, for an export (the folder is read, not claimed). A
// folder an older ddgi wrote (weights and state.json at its top) gives its
// weights and image count.
func Resume(dir string, m Model, o Opts) (*Trainer, error) {
	t := NewTrainer(m, o)
	run := &train.Run{Dir: dir}
	_, ok, err := run.LoadNewest(func(c train.Checkpoint) error { return t.Load(c.Dir) }, os.Stderr)
	if err != nil {
		return nil, err
	}
	if ok {
		return t, nil
	}
	if st, err := readState(dir); err == nil {
		if err := t.loadStores(dir); err != nil {
			return nil, err
		}
		t.State.Step, t.State.Nimg = st.Step, st.Nimg
		return t, nil
	}
	return nil, fmt.Errorf("%s holds no checkpoint that verifies", dir)
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

// Camera asks the wrapped set (feed uses it only when that is a
// data.CameraSource).
func (c *cachedSet) Camera(i int) ([25]float32, error) {
	return c.ds.(data.CameraSource).Camera(i)
}

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

// dataset is the training set: Data, or SynthFace rendered on the fly.
func (o Opts) dataset() data.Dataset {
	if o.Data != nil {
		return o.Data
	}
	return data.NewSynthFaceSpreadYaw(data.Train, o.Resolution, o.DataN, o.YawSpread)
}

// feed streams real batches forever (shuffled per epoch, mirrored) from
// batch number from on: a resumed run continues the stream mid-epoch where
// it stopped. A data-parallel rank passes its rows: where the data can
// give cameras alone, it loads only those rows (and every row's camera);
// otherwise whole batches.
func feed(ctx context.Context, o Opts, from int64, rows func(int) []int) (<-chan data.Batch, error) {
	src := o.dataset()
	if _, ok := src.(data.CameraSource); !ok {
		rows = nil
	}
	ds := &cachedSet{ds: src, cache: map[int]*data.Sample{}}
	ld, err := data.NewLoader(ds, data.LoaderOptions{BatchSize: o.Batch, Workers: max(o.Workers, 1), Seed: int64(o.Seed), Shuffle: true, Flip: true, DropLast: true,
		Rows: rows, Cameras: rows != nil})
	if err != nil {
		return nil, err
	}
	per := int64(ld.Batches())
	if per == 0 {
		return nil, fmt.Errorf("the training set has %d images, fewer than one batch of %d", ds.Len(), o.Batch)
	}
	out := make(chan data.Batch)
	go func() {
		defer close(out)
		for ep, at := from/per, from%per; ; ep, at = ep+1, 0 {
			for b := range ld.EpochFrom(ctx, int(ep), int(at)) {
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

// infoKeys are the step metrics logged but not plotted as losses.
var infoKeys = map[string]bool{"d_real": true, "d_fake": true}

// Step trains on the next real batch (train.Job); its units are images.
// The data feed starts at the first step, after any Load.
func (t *Trainer) Step(ctx context.Context, done int64) (train.Result, error) {
	if t.batches == nil {
		fctx, cancel := context.WithCancel(context.Background())
		var rows func(int) []int
		if t.shard.Size > 1 {
			rows = t.positions
		}
		b, err := feed(fctx, t.O, t.State.Step, rows)
		if err != nil {
			cancel()
			return train.Result{}, err
		}
		t.batches, t.stopFeed = b, cancel
	}
	b, ok := nextBatch(ctx, t.batches)
	if !ok {
		if ctx.Err() != nil {
			return train.Result{}, ctx.Err()
		}
		return train.Result{}, errors.New("the data feed stopped")
	}
	if b.Err != nil {
		return train.Result{}, fmt.Errorf("data: %w", b.Err)
	}
	var m Metrics
	if b.Rows != nil {
		m = t.trainRows(b.Samples, b.Cameras, b.Size)
	} else {
		m = t.TrainStep(b.Samples)
	}
	res := train.Result{Units: int64(b.Size), Losses: map[string]float64{}, Info: map[string]float64{"kimg": float64(t.State.Nimg) / 1000}}
	for k, v := range m {
		if infoKeys[k] {
			res.Info[k] = v
		} else {
			res.Losses[k] = v
		}
	}
	return res, nil
}

// Preview writes G_ema's fixed-seed grid (train.Previewer).
func (t *Trainer) Preview(path string) error { return t.SaveGrid(path) }

// Close stops the data feed.
func (t *Trainer) Close() {
	if t.stopFeed != nil {
		t.stopFeed()
	}
}

// Train runs (or resumes) a run in folder dir until Opts.Kimg with
// train.Loop: a progress line with kimg and ETA, log.jsonl and loss.png
// (keyed by images seen), G_ema's grid preview-<img>.png every GridKimg, a
// checkpoint (<dir>/latest/) every Checkpoint and at the end. A cancelled
// ctx checkpoints and returns *train.Interrupted; MaxSteps pauses
// (checkpointed) and returns nil.
func Train(ctx context.Context, dir string, m Model, o Opts) error {
	run, err := train.OpenRank(dir, o.Group)
	if err != nil {
		return err
	}
	t := NewTrainer(m, o)
	defer t.Close()
	label := t.O.Label
	if label == "" {
		label = "gan"
	}
	l := &train.Loop{Label: label, Total: int64(o.Kimg * 1000), Unit: "img", CheckpointEvery: t.O.Checkpoint,
		PreviewEvery: int64(math.Round(t.O.GridKimg * 1000)), MaxSteps: int64(o.MaxSteps), Quiet: o.Quiet, Group: o.Group}
	return l.Run(ctx, run, t)
}
