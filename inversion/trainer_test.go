package inversion

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"ddgi/data"
	"ddgi/kinds"
	"ddgi/torch"
	"ddgi/train"
)

// fakeEncoder stands in for the diffusion encoder: fixed random projections
// of z_t give h_t and f_t, so M and T have something learnable to read.
type fakeEncoder struct {
	c      Config
	projH  *torch.Tensor
	calls  int
	seeds  []int64         // of every Sample call
	zts    []*torch.Tensor // with keepZt: every Features call's z_t
	keepZt bool
	// pooled, when > 0, gives Features a pooled text embedding of this
	// width that depends on each prompt (for models with a text path).
	pooled int
	texts  [][]string // every Features call's prompts
}

func newFakeEncoder(c Config) *fakeEncoder {
	p := torch.Randn(torch.NewGenerator(3), []int64{c.HChannels, 3}, torch.Float32, torch.CPU)
	torch.Persist(p)
	return &fakeEncoder{c: c, projH: p}
}

func (e *fakeEncoder) Timesteps() int { return 1000 }
func (e *fakeEncoder) ID() string     { return "fake" }
func (e *fakeEncoder) Latents(x *torch.Tensor) *torch.Tensor {
	return torch.AdaptiveAvgPool2d(x, 8, 8)
}
func (e *fakeEncoder) AddNoise(z0, eps, t *torch.Tensor) *torch.Tensor {
	a := t.To(torch.Float32).DivScalar(1000).Reshape(-1, 1, 1, 1)
	return z0.Mul(a.RSubScalar(1).Sqrt()).Add(eps.Mul(a.Sqrt()))
}
func (e *fakeEncoder) Prior(b int64, g *torch.Generator) *torch.Tensor {
	return torch.Randn(g, []int64{b, 3, 8, 8}, torch.Float32, torch.CPU)
}
func (e *fakeEncoder) Features(zt, t *torch.Tensor, texts []string, cond Condition) (*torch.Tensor, Features) {
	b := zt.Size(0)
	if e.keepZt {
		k := zt.Clone()
		torch.Persist(k)
		e.zts = append(e.zts, k)
	}
	e.texts = append(e.texts, append([]string(nil), texts...))
	h := torch.Einsum("oc,bchw->bohw", e.projH, torch.AdaptiveAvgPool2d(zt, e.c.HSize, e.c.HSize))
	f := Features{Words: torch.Ones([]int64{b, 4}, torch.Float32, torch.CPU)}
	if e.pooled > 0 {
		v := make([]float32, 0, len(texts)*e.pooled)
		for _, s := range texts {
			for i := 0; i < e.pooled; i++ {
				v = append(v, float32(len(s)%(i+3))/float32(i+3)+float32(s[i%len(s)])/256)
			}
		}
		f.Pooled = torch.FromFloat32(v, int64(len(texts)), int64(e.pooled))
	}
	for n, ch := range e.c.FChannels {
		s := int64(4 << n)
		fn := torch.AdaptiveAvgPool2d(zt, s, s).Repeat(1, (ch+2)/3, 1, 1).Narrow(1, 0, ch)
		f.F = append(f.F, fn)
		f.AttOut = append(f.AttOut, []*torch.Tensor{fn.Flatten(2, 3).Transpose(1, 2).Sigmoid()})
		f.AttP = append(f.AttP, []*torch.Tensor{torch.Ones([]int64{b, 1, s * s, 4}, torch.Float32, torch.CPU).DivScalar(4)})
	}
	return h, f
}
func (e *fakeEncoder) Sample(texts []string, cond Condition, seeds []int64) *torch.Tensor {
	e.calls += len(texts)
	e.seeds = append(e.seeds, seeds...)
	return cond.Mask.To(torch.Float32).DivScalar(9).SubScalar(1).Unsqueeze(1).Repeat(1, 3, 1, 1)
}

// tinyTrain is the tests' training config: batch 2, t anywhere in [0, 999].
func tinyTrain(stage1, stage2 int) TrainConfig {
	return TrainConfig{Stage1Steps: stage1, Stage2Steps: stage2, Batch: 2, LR: 3e-3, Weights: DefaultWeights(), Cond: kinds.Mask, Seed: 1,
		TMin: 0, TMax: 999}
}

// quietLoop logs every step and checkpoints only when it ends or pauses.
func quietLoop() train.Loop {
	return train.Loop{LogEvery: 1, PreviewEvery: 100, CheckpointEvery: time.Hour, Quiet: true}
}

func TestTrainerTwoStagesResumeAndCache(t *testing.T) {
	c := Tiny()
	g := newLinearG(c, 32)
	enc := newFakeEncoder(c)
	tc := tinyTrain(12, 12)
	tr, run, err := trainTiny(t, c, tc, g, enc, "", 1, quietLoop())
	if err != nil {
		t.Fatal(err)
	}
	steps, vals, err := run.ReadLog()
	if err != nil || len(steps) != 24 {
		t.Fatalf("log: %d rows, %v", len(steps), err)
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	l := vals["loss"]
	if !(mean(l[8:12]) < mean(l[0:4])) {
		t.Fatalf("stage 1 loss did not fall: %v", l[:12])
	}
	if !(mean(l[20:24]) < mean(l[12:16])) {
		t.Fatalf("stage 2 loss did not fall: %v", l[12:])
	}
	if st := vals["stage"]; st[11] != 1 || st[12] != 2 {
		t.Fatalf("stage info: step 12 in stage %v, step 13 in stage %v", st[11], st[12])
	}
	// The dataset has 4 pairs used 24 times in stage 2: the cache makes
	// the sampler run once per pair.
	if enc.calls != 4 {
		t.Fatalf("diffusion sampler called %d times, want once for each of the 4 pairs", enc.calls)
	}
	// Preview grids at each stage's end; the checkpoint holds M and T,
	// Adam, the state and stage 1 kept as the m-only model.
	for _, f := range []string{"preview-000000012.png", "preview-000000024.png",
		"latest/" + Stage1File, "latest/" + modelFile, "latest/" + optFile, "latest/" + stateFile} {
		if _, err := os.Stat(run.Path(f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	_, tc1, err := Load(run.Path("latest/"+Stage1File), torch.CPU)
	if err != nil || tc1.Ablation != MOnly || tc1.Stage1Steps != 12 {
		t.Fatalf("stage-1 model: %v, train config %+v", err, tc1)
	}
	// Resume: a longer run continues from step 24 instead of starting over.
	tr.Cfg.Stage2Steps = 14
	if err := tr.Train(context.Background(), run, quietLoop()); err != nil {
		t.Fatal(err)
	}
	steps, _, _ = run.ReadLog()
	if len(steps) != 26 || steps[25] != 26 {
		t.Fatalf("after resume: %d rows, last %v", len(steps), steps[len(steps)-1])
	}
	if _, err := os.Stat(run.Path("latest/" + Stage1File)); err != nil {
		t.Fatalf("the stage-1 model was not carried into the next checkpoint: %v", err)
	}
}

// TestPausedRunResumesBitIdentical: a run paused (Loop.MaxSteps) and
// resumed ends with the same M and T, bit for bit, as one that ran
// straight through: paused halfway in stage 2, before the stage switch
// (the resumed run crosses it and gets fresh Adam moments) and exactly at
// it (the saved Adam state is stage 1's).
func TestPausedRunResumesBitIdentical(t *testing.T) {
	c := Tiny()
	g := newLinearG(c, 32)
	enc := newFakeEncoder(c)
	tc := tinyTrain(3, 5)
	const n = 8
	ref, refRun, err := trainTiny(t, c, tc, g, enc, "", 5, quietLoop())
	if err != nil {
		t.Fatal(err)
	}
	_, refLog, _ := refRun.ReadLog()
	refStage1, err := os.ReadFile(refRun.Path("latest/" + Stage1File))
	if err != nil {
		t.Fatal(err)
	}
	for _, pause := range []int64{n / 2, 2, 3} {
		l := quietLoop()
		l.MaxSteps = pause
		tr, run, err := trainTiny(t, c, tc, g, enc, "", 5, l)
		if err != nil {
			t.Fatal(err)
		}
		if ck, _, _ := run.Latest(); ck.Done != pause {
			t.Fatalf("pause at %d: checkpoint at %d", pause, ck.Done)
		}
		// As a new process would: a fresh trainer and model (another init)
		// load the checkpoint.
		m, _ := NewModel(c, torch.CPU, 99)
		tr = &Trainer{Cfg: tc, Model: m, G: g, E: enc, Data: tr.Data, Cache: tr.Cache, Dev: torch.CPU}
		if err := tr.Train(context.Background(), run, quietLoop()); err != nil {
			t.Fatal(err)
		}
		if ck, _, _ := run.Latest(); ck.Done != n {
			t.Fatalf("pause at %d: resumed run ends at %d, want %d", pause, ck.Done, n)
		}
		for _, name := range ref.Model.Store.Names() {
			a, b := tr.Model.Store.Get(name).Float32s(), ref.Model.Store.Get(name).Float32s()
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("pause at %d: %s[%d] = %v, uninterrupted %v", pause, name, i, a[i], b[i])
				}
			}
		}
		_, log, _ := run.ReadLog()
		for i, v := range refLog["loss"] {
			if log["loss"][i] != v {
				t.Fatalf("pause at %d: loss of step %d is %v, uninterrupted %v", pause, i+1, log["loss"][i], v)
			}
		}
		if b, err := os.ReadFile(run.Path("latest/" + Stage1File)); err != nil || string(b) != string(refStage1) {
			t.Fatalf("pause at %d: stage-1 model differs from the uninterrupted run's (%v)", pause, err)
		}
	}
}

func TestStage2FromSharedStage1(t *testing.T) {
	c := Tiny()
	g := newLinearG(c, 32)
	enc := newFakeEncoder(c)
	tc := tinyTrain(6, 6)
	trainFrom := func(c Config, tc TrainConfig, from string) (*Trainer, *train.Run, error) {
		return trainTiny(t, c, tc, g, enc, from, 1, quietLoop())
	}
	_, fullRun, err := trainFrom(c, tc, "")
	if err != nil {
		t.Fatal(err)
	}
	stage1 := fullRun.Path("latest/" + Stage1File)
	noAttn := c
	noAttn.UseAttention = false
	ntc := tc
	ntc.Ablation = NoAttn
	tr, run, err := trainFrom(noAttn, ntc, stage1)
	if err != nil {
		t.Fatal(err)
	}
	steps, vals, _ := run.ReadLog()
	if len(steps) != 6 || steps[0] != 7 || vals["stage"][0] != 2 {
		t.Fatalf("want stage 2 only (steps 7…12), got steps %v stages %v", steps, vals["stage"])
	}
	// M is the full run's stage-1 M, untouched by stage 2.
	ref, _ := NewModel(c, torch.CPU, 0)
	if _, err := ref.Store.Load(stage1); err != nil {
		t.Fatal(err)
	}
	a := tr.Model.Mapping.MappedCode(torch.Ones([]int64{1, c.HChannels, c.HSize, c.HSize}, torch.Float32, torch.CPU))
	b := ref.Mapping.MappedCode(torch.Ones([]int64{1, c.HChannels, c.HSize, c.HSize}, torch.Float32, torch.CPU))
	if d := a.Sub(b).Abs().MaxAll().Item(); d > 1e-3 {
		t.Fatalf("M differs from the stage-1 model by %g", d)
	}
	// A stage 1 trained another way, or with other flags, is refused.
	other := ntc
	other.Stage1Steps = 5
	if _, _, err := trainFrom(noAttn, other, stage1); err == nil {
		t.Fatal("a stage 1 of another length was accepted")
	}
	d0 := tc
	d0.Ablation = D0Only
	if _, _, err := trainFrom(c, d0, stage1); err == nil {
		t.Fatal("d0-only (its stage 1 trains against I^d_0) accepted a shared stage 1")
	}
}

// TestInitStartsFromTrainedInversion: Trainer.Init copies M and T of a
// trained inversion (then w̄ is G's), and refuses another model config.
func TestInitStartsFromTrainedInversion(t *testing.T) {
	c := Tiny()
	g := newLinearG(c, 32)
	enc := newFakeEncoder(c)
	tc := tinyTrain(3, 3)
	trainInit := func(c Config, tc TrainConfig, init string) (*Trainer, *train.Run, error) {
		tc.Init = init
		return trainTiny(t, c, tc, g, enc, "", 7, quietLoop())
	}
	src, srcRun, err := trainInit(c, tc, "")
	if err != nil {
		t.Fatal(err)
	}
	path := srcRun.Path("export.safetensors")
	// Another w̄ in the file: the run must take G's instead.
	src.Model.Mapping.SetMeanLatent(g.MeanLatent().AddScalar(1))
	if err := src.Model.Save(path, tc, false); err != nil {
		t.Fatal(err)
	}
	none := tc
	none.Stage1Steps, none.Stage2Steps = 0, 0
	tr, _, err := trainInit(c, none, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range tr.Model.Store.Names() {
		a, b := tr.Model.Store.Get(name), src.Model.Store.Get(name)
		want := b
		if a == tr.Model.Mapping.WAvg {
			want = g.MeanLatent().Reshape(a.Shape()...)
		}
		if d := a.Sub(want).Abs().MaxAll().Item(); d != 0 {
			t.Errorf("%s differs by %g from the init (or G's w̄)", name, d)
		}
	}
	wide := c
	wide.Width *= 2
	if _, _, err := trainInit(wide, none, path); err == nil {
		t.Fatal("an inversion of another width was accepted as --init")
	}
}

// With TextPathOnly stage 1 moves M's text path alone: Map2Style (the
// code from h_t) and T stay bit-identical to the model it started from.
func TestTextPathOnlyTrainsNothingElse(t *testing.T) {
	c := Tiny()
	c.TextDim = 6
	g := newLinearG(c, 32)
	enc := newFakeEncoder(c)
	enc.pooled = int(c.TextDim)
	tc := tinyTrain(3, 0)
	tc.TextPathOnly = true
	tr, _, err := trainTiny(t, c, tc, g, enc, "", 7, quietLoop())
	if err != nil {
		t.Fatal(err)
	}
	start, _ := NewModel(c, torch.CPU, 7) // the seeded init the run began from
	start.Mapping.SetMeanLatent(g.MeanLatent())
	moved := 0
	for _, name := range tr.Model.Store.Names() {
		d := tr.Model.Store.Get(name).Sub(start.Store.Get(name)).Abs().MaxAll().Item()
		if strings.HasPrefix(name, "mapping.text.") {
			if d > 0 {
				moved++
			}
		} else if d != 0 {
			t.Errorf("%s moved by %g with only the text path training", name, d)
		}
	}
	if moved == 0 {
		t.Fatal("the text path did not train")
	}
}

// SwapPrompts replaces captions only where the target is the ground
// truth: every row of stage 1 at share 1, none of the I^d_0 stage 2.
func TestSwapPromptsOnlyAgainstTheTruth(t *testing.T) {
	c := Tiny()
	g := newLinearG(c, 32)
	enc := newFakeEncoder(c)
	tc := tinyTrain(2, 2)
	tc.SwapPrompts = 1
	ds := data.NewSynthFace(data.Train, 32, 4)
	if _, _, err := trainOn(t, ds, c, tc, g, enc, "", 7, quietLoop()); err != nil {
		t.Fatal(err)
	}
	own := map[string]bool{}
	for i := 0; i < ds.Len(); i++ {
		s, err := ds.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		own[s.Captions[0]] = true
	}
	// The first two calls are stage 1's steps; the rest (previews, stage 2)
	// must see the data's captions.
	for call, texts := range enc.texts {
		for _, p := range texts {
			if swapped := call < 2; swapped == own[p] {
				t.Errorf("call %d of %d: prompt %q, the data's caption: %v", call, len(enc.texts), p, own[p])
			}
		}
	}
}

// TrainsAgainstTruth: which step counts and ablations leave a stage whose
// target is I^gt, where swapped prompts can act.
func TestTrainsAgainstTruth(t *testing.T) {
	for _, c := range []struct {
		s1, s2 int
		abl    Ablation
		want   bool
	}{
		{1, 0, Full, true}, {0, 1, Full, false}, {0, 1, GTOnly, true}, {1, 1, D0Only, false},
		{0, 1, MOnly, false}, {1, 0, MOnly, true}, {0, 1, NoAttn, false}, {2, 2, NoAttn, true},
	} {
		tc := TrainConfig{Stage1Steps: c.s1, Stage2Steps: c.s2, Ablation: c.abl}
		if got := tc.TrainsAgainstTruth(); got != c.want {
			t.Errorf("steps %d+%d, ablation %q: %v, want %v", c.s1, c.s2, c.abl, got, c.want)
		}
	}
}

// trainTiny trains a fresh model (seeded init) in a temporary run folder
// on four SynthFace samples, taking stage 1 from stage1From when set.
func trainTiny(t *testing.T, c Config, tc TrainConfig, g Generator, enc Encoder, stage1From string, seed uint64, l train.Loop) (*Trainer, *train.Run, error) {
	return trainOn(t, data.NewSynthFace(data.Train, 32, 4), c, tc, g, enc, stage1From, seed, l)
}

// trainOn is trainTiny on any dataset.
func trainOn(t *testing.T, ds data.Dataset, c Config, tc TrainConfig, g Generator, enc Encoder, stage1From string, seed uint64, l train.Loop) (*Trainer, *train.Run, error) {
	m, _ := NewModel(c, torch.CPU, seed)
	m.Mapping.SetMeanLatent(g.MeanLatent())
	dir := t.TempDir()
	run, err := train.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := &Trainer{Cfg: tc, Model: m, G: g, E: enc, Data: ds, Cache: &D0Cache{Dir: dir + "/d0"},
		Dev: torch.CPU, Stage1From: stage1From}
	return tr, run, tr.Train(context.Background(), run, l)
}

// Under PairNoise the I^d_0 stage feeds E, at t = T−1, the z_T each
// pair's I^d_0 was sampled from (Prior of its seed, as inference draws
// it); stage 1 keeps the noised ground truth, and without PairNoise so does
// stage 2.
func TestPairNoiseFeedsTheSamplesPrior(t *testing.T) {
	c := Tiny()
	g := newLinearG(c, 32)
	for _, pair := range []bool{false, true} {
		enc := newFakeEncoder(c)
		enc.keepZt = true
		tc := tinyTrain(1, 1)
		tc.TMin, tc.TMax, tc.PairNoise = 999, 999, pair
		if _, _, err := trainTiny(t, c, tc, g, enc, "", 1, quietLoop()); err != nil {
			t.Fatal(err)
		}
		if len(enc.seeds) != 2 {
			t.Fatalf("I^d_0 sampled for %d seeds, want the batch's 2", len(enc.seeds))
		}
		want := torch.Cat([]*torch.Tensor{enc.Prior(1, torch.NewGenerator(uint64(enc.seeds[0]))), enc.Prior(1, torch.NewGenerator(uint64(enc.seeds[1])))}, 0)
		matches := 0
		for _, z := range enc.zts {
			if z.Size(0) == 2 && z.Sub(want).Abs().MaxAll().Item() == 0 {
				matches++
			}
		}
		if pair && matches != 1 || !pair && matches != 0 {
			t.Errorf("PairNoise %v: %d of %d E passes saw the I^d_0 pairs' z_T, want %d", pair, matches, len(enc.zts), map[bool]int{true: 1, false: 0}[pair])
		}
	}
}

// PairedLatent takes z_T only for the samples at t = T−1.
func TestPairedLatentOnlyAtTheLastStep(t *testing.T) {
	zt := torch.Zeros([]int64{2, 3, 4, 4}, torch.Float32, torch.CPU)
	zT := torch.Ones([]int64{2, 3, 4, 4}, torch.Float32, torch.CPU)
	got := PairedLatent(zt, zT, torch.FromInt64([]int64{999, 500}, 2), 1000)
	if a, b := got.Narrow(0, 0, 1).MinAll().Item(), got.Narrow(0, 1, 1).MaxAll().Item(); a != 1 || b != 0 {
		t.Fatalf("row at t = 999 has min %g (want 1 from z_T), row at t = 500 max %g (want 0 from z_t)", a, b)
	}
}

// The anchor moves Eq. 7's reconstruction from I^d_0 toward I^gt: a = 0
// is Eq. 7, a = 1 is the same loss taken against the truth.
func TestAnchoredModulationLoss(t *testing.T) {
	g := torch.NewGenerator(2)
	d0 := torch.Randn(g, []int64{2, 3, 8, 8}, torch.Float32, torch.CPU)
	gt := torch.Randn(g, []int64{2, 3, 8, 8}, torch.Float32, torch.CPU)
	out := torch.Randn(g, []int64{2, 3, 8, 8}, torch.Float32, torch.CPU)
	w := torch.Randn(g, []int64{2, 4, 5}, torch.Float32, torch.CPU)
	wavg := torch.Zeros([]int64{5}, torch.Float32, torch.CPU)
	lam := Weights{L2: 1, Reg: 0.1}
	eq7 := ModulationLoss(lam, d0, gt, out, w, wavg, nil, nil).Total.Item()
	if got := AnchoredModulationLoss(lam, 0, d0, gt, out, w, wavg, nil, nil).Total.Item(); got != eq7 {
		t.Errorf("a = 0: %g, Eq. 7 gives %g", got, eq7)
	}
	truth := ModulationLoss(lam, gt, gt, out, w, wavg, nil, nil).Total.Item()
	if got := AnchoredModulationLoss(lam, 1, d0, gt, out, w, wavg, nil, nil).Total.Item(); math.Abs(got-truth) > 1e-5 {
		t.Errorf("a = 1: %g, against the truth %g", got, truth)
	}
	if got := AnchoredModulationLoss(lam, 0.5, d0, gt, out, w, wavg, nil, nil).Total.Item(); math.Abs(got-(eq7+truth)/2) > 1e-5 {
		t.Errorf("a = 0.5: %g, want the mean %g", got, (eq7+truth)/2)
	}
}
