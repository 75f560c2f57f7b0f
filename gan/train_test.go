package gan

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddgi/data"
	"ddgi/gan/eg3d"
	"ddgi/gan/stylegan2"
	"ddgi/synthface"
	"ddgi/torch"
	"ddgi/train"
)

func tinyPair(t testing.TB) *stylegan2.Pair {
	t.Helper()
	p, err := stylegan2.NewPair(stylegan2.Presets["tiny"], 1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func realBatch(t testing.TB, size, n int) []*data.Sample {
	t.Helper()
	ds := data.NewSynthFace(data.Train, size, n)
	out := make([]*data.Sample, n)
	for i := range out {
		s, err := ds.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

func tinyOpts() Opts {
	c := stylegan2.Presets["tiny"]
	return Opts{Resolution: c.Resolution, Batch: c.Batch, LR: c.LR, R1Gamma: c.R1Gamma, R1Interval: c.R1Interval,
		StyleMixing: c.StyleMixing, EMAKimg: c.EMAKimg, EMARampup: c.EMARampup, DataN: 64, Seed: 3, Label: "tiny", Quiet: true}
}

// TestDLossFalls: a few D updates on fixed reals and fakes lower D's loss.
func TestDLossFalls(t *testing.T) {
	p := tinyPair(t)
	tr := NewTrainer(p, tinyOpts())
	batch := realBatch(t, 16, 4)
	var fakes []*torch.Tensor
	torch.NoGrad(func() {
		fakes = p.Fake(tr.mixedWPlus(4, nil), nil)
	})
	torch.Persist(fakes...)
	reals, _ := p.Real(batch)
	torch.Persist(reals...)
	loss := func() float64 {
		var l float64
		torch.Scoped(func() { l = stylegan2.DLoss(p.Score(reals, nil), p.Score(fakes, nil)).Item() })
		return l
	}
	first := loss()
	for range 10 {
		torch.Scoped(func() {
			stylegan2.DLoss(p.Score(reals, nil), p.Score(fakes, nil)).Backward()
			tr.OptD.Update(p.DS.Trainable())
		})
	}
	if last := loss(); !(last < first-0.05) {
		t.Fatalf("D loss %.4f → %.4f, want a fall", first, last)
	}
}

// TestGLossFalls: a few G updates against a fixed D lower G's loss.
func TestGLossFalls(t *testing.T) {
	p := tinyPair(t)
	tr := NewTrainer(p, tinyOpts())
	p.DS.Freeze("")
	z := tr.latents(4)
	torch.Persist(z)
	loss := func() *torch.Tensor {
		return stylegan2.GLoss(p.Score(p.Fake(stylegan2.Broadcast(p.Map(z, nil), p.NumWS()), nil), nil))
	}
	var first, last float64
	torch.Scoped(func() { first = loss().Item() })
	p.G.SetNoiseSeed(1)
	for range 10 {
		torch.Scoped(func() {
			loss().Backward()
			tr.OptG.Update(p.GS.Trainable())
		})
	}
	torch.Scoped(func() { last = loss().Item() })
	if !(last < first-0.05) {
		t.Fatalf("G loss %.4f → %.4f, want a fall", first, last)
	}
}

// runFiles are what every checkpoint of a GAN run holds.
var runFiles = []string{FileG, FileD, FileGEMA, FileOptG, FileOptD, FileState, FileGrid}

// TestTrainResumeMatchesUninterrupted: a run paused after 5 of 10 steps
// (MaxSteps, checkpointed) and resumed by a second Train ends with the same
// image count and bit-identical G, G_ema and D as one uninterrupted run:
// every RNG state (EG3D's ray jitter too), the data stream's position
// mid-epoch, R1 and path-length steps, the Adam moments and the EMA carry
// over.
func TestTrainResumeMatchesUninterrupted(t *testing.T) {
	o := tinyOpts()
	o.DataN = 16 // 4 batches an epoch: the pause falls mid-epoch
	o.Kimg = 0.04
	o.PLWeight, o.PLInterval = 2, 2
	sg2 := func(seed uint64) (Model, error) { return stylegan2.NewPair(stylegan2.Presets["tiny"], seed) }
	t.Run("stylegan2", func(t *testing.T) { checkResume(t, sg2, o) })

	c := eg3d.Presets["tiny"]
	bb := c.Backbone
	e := Opts{Resolution: c.ImgRes, Batch: 4, LR: bb.LR, R1Gamma: bb.R1Gamma, R1Interval: 2, StyleMixing: bb.StyleMixing,
		EMAKimg: bb.EMAKimg, DataN: 16, Seed: 3, Kimg: 0.04, PoseSwap: 0.5, YawSpread: 0.5, Quiet: true}
	t.Run("eg3d", func(t *testing.T) {
		checkResume(t, func(seed uint64) (Model, error) { return eg3d.NewPair(c, synthface.DefaultOrbit, seed) }, e)
	})
}

func checkResume(t *testing.T, newModel func(seed uint64) (Model, error), o Opts) {
	model := func(seed uint64) Model {
		m, err := newModel(seed)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	whole, paused := t.TempDir(), t.TempDir()
	if err := Train(context.Background(), whole, model(1), o); err != nil {
		t.Fatal(err)
	}
	po := o
	po.MaxSteps = 5
	if err := Train(context.Background(), paused, model(1), po); err != nil {
		t.Fatal(err)
	}
	if st := mustState(t, paused); st.Step != 5 || st.Nimg != 20 {
		t.Fatalf("paused at step %d, %d images; want 5 and 20", st.Step, st.Nimg)
	}
	// Another init seed must not matter: the checkpoint decides.
	if err := Train(context.Background(), paused, model(99), o); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{whole, paused} {
		for _, f := range append(runFiles, "log.jsonl", "loss.png") {
			p := filepath.Join(dir, "latest", f)
			if f == "log.jsonl" || f == "loss.png" {
				p = filepath.Join(dir, f)
			}
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("run folder lacks %s: %v", f, err)
			}
		}
	}
	a, b := mustState(t, whole), mustState(t, paused)
	if a.Nimg != 40 || b.Nimg != a.Nimg || b.Step != a.Step || b.PLMean != a.PLMean {
		t.Fatalf("uninterrupted: step %d, %d images, pl %g; resumed: step %d, %d images, pl %g", a.Step, a.Nimg, a.PLMean, b.Step, b.Nimg, b.PLMean)
	}
	for _, f := range []string{FileG, FileGEMA, FileD} {
		x, err := os.ReadFile(filepath.Join(whole, "latest", f))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(paused, "latest", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between the uninterrupted and the resumed run", f)
		}
	}
	// Export's Resume reads the same checkpoint.
	tr, err := Resume(paused, model(1), o)
	if err != nil || tr.State.Nimg != 40 {
		t.Fatalf("Resume: %v (nimg %d)", err, tr.State.Nimg)
	}
}

func mustState(t *testing.T, dir string) State {
	t.Helper()
	st, err := readState(filepath.Join(dir, "latest"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestTrainTooFewImages: a training set smaller than one batch is a clear
// error, not a run that waits forever for its first batch.
func TestTrainTooFewImages(t *testing.T) {
	o := tinyOpts()
	o.DataN, o.Kimg = 3, 1
	err := Train(context.Background(), t.TempDir(), tinyPair(t), o)
	if err == nil || !strings.Contains(err.Error(), "fewer than one batch") {
		t.Fatalf("got %v", err)
	}
}

// benchStep times training steps of a model at 64² and reports kimg/hour.
func benchStep(b *testing.B, m Model, o Opts) {
	tr := NewTrainer(m, o)
	batch := realBatch(b, 64, o.Batch)
	tr.TrainStep(batch)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		tr.TrainStep(batch)
	}
	b.ReportMetric(float64(o.Batch*b.N)/time.Since(start).Hours()/1000, "kimg/h")
}

// BenchmarkTrainStep64 times small64 StyleGAN2 training steps (batch 16).
func BenchmarkTrainStep64(b *testing.B) {
	c := stylegan2.Presets["small64"]
	p, err := stylegan2.NewPair(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	benchStep(b, p, Opts{Resolution: 64, Batch: c.Batch, LR: c.LR, R1Gamma: c.R1Gamma, R1Interval: c.R1Interval, StyleMixing: c.StyleMixing, EMAKimg: c.EMAKimg, Seed: 1})
}

// BenchmarkTrainStepEG3D64 times small64 EG3D training steps (batch 8).
func BenchmarkTrainStepEG3D64(b *testing.B) {
	c := eg3d.Presets["small64"]
	p, err := eg3d.NewPair(c, synthface.DefaultOrbit, 1)
	if err != nil {
		b.Fatal(err)
	}
	bb := c.Backbone
	benchStep(b, p, Opts{Resolution: 64, Batch: bb.Batch, LR: bb.LR, R1Gamma: bb.R1Gamma, R1Interval: bb.R1Interval, StyleMixing: bb.StyleMixing, EMAKimg: bb.EMAKimg, Seed: 1})
}

// TestTrainStopsCleanlyWhenCancelled: a cancelled run (Ctrl-C, SIGTERM)
// returns *train.Interrupted and leaves a checkpoint; a feeder that has
// closed its channel ends the wait instead of handing a step an empty
// batch (that race once failed a run at SIGTERM with "cat: no tensors").
func TestTrainStopsCleanlyWhenCancelled(t *testing.T) {
	closed := make(chan data.Batch)
	close(closed)
	if _, ok := nextBatch(context.Background(), closed); ok {
		t.Fatal("a closed feeder gave a batch")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	o := tinyOpts()
	o.Kimg = 1
	if err := Train(ctx, dir, tinyPair(t), o); !errors.Is(err, train.ErrInterrupted) {
		t.Fatalf("cancelled run returned %v, want an interruption", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "latest", FileState)); err != nil {
		t.Fatalf("no checkpoint: %v", err)
	}
}

// TestConditioningCamerasSwap: at PoseSwap 0 the mapping sees each fake's
// render camera, at 1 the next fake's, and at 0.5 each row is one of the
// two, both kinds occurring.
func TestConditioningCamerasSwap(t *testing.T) {
	const b = 64
	cams := make([]float32, b*25)
	for i := range cams {
		cams[i] = float32(i / 25) // row i holds i everywhere
	}
	c := torch.FromFloat32(cams, b, 25)
	row := func(x *torch.Tensor, i int) float32 { return x.Narrow(0, int64(i), 1).Float32s()[0] }
	for _, p := range []float64{0, 0.5, 1} {
		o := tinyOpts()
		o.PoseSwap = p
		tr := NewTrainer(tinyPair(t), o)
		got := tr.conditioningCameras(c)
		own, next := 0, 0
		for i := 0; i < b; i++ {
			switch row(got, i) {
			case float32(i):
				own++
			case float32((i + 1) % b):
				next++
			default:
				t.Fatalf("p=%g: row %d is %g, neither its own camera nor the next", p, i, row(got, i))
			}
		}
		switch {
		case p == 0 && own != b, p == 1 && next != b, p == 0.5 && (own < 16 || next < 16):
			t.Errorf("p=%g: %d own, %d swapped of %d", p, own, next, b)
		}
	}
}

// TestOpacityPenaltyEntersGLoss: a tiny EG3D trained a few steps with the
// transparency penalty logs it and ends more opaque than its start.
func TestOpacityPenaltyEntersGLoss(t *testing.T) {
	if v := eg3d.OpacityPenalty(torch.Ones([]int64{2, 1, 4, 4}, torch.Float32, torch.CPU)).Item(); v != 0 {
		t.Fatalf("opaque rays penalised %g", v)
	}
	c := eg3d.Presets["tiny"]
	p, err := eg3d.NewPair(c, synthface.DefaultOrbit, 1)
	if err != nil {
		t.Fatal(err)
	}
	p.Opacity = 20
	bb := c.Backbone
	o := Opts{Resolution: c.ImgRes, Batch: 4, LR: bb.LR, R1Gamma: bb.R1Gamma, R1Interval: bb.R1Interval, EMAKimg: bb.EMAKimg, DataN: 8, Seed: 1, Quiet: true}
	tr := NewTrainer(p, o)
	batch := realBatch(t, c.ImgRes, 4)
	var first, last float64
	for i := range 8 {
		m := tr.TrainStep(batch)
		v, ok := m["transparency"]
		if !ok {
			t.Fatal("step did not log the transparency penalty")
		}
		if i == 0 {
			first = v
		}
		last = v
	}
	if !(last < 0.93*first) {
		t.Fatalf("transparency penalty %.4f → %.4f, want a clear fall", first, last)
	}
}

// imagesOnly hides a dataset's CameraSource.
type imagesOnly struct{ data.Dataset }

// A rank's feed loads only its rows but carries every row's camera (the
// fakes borrow the batch's poses); data that cannot give a camera without
// its image falls back to whole batches.
func TestFeedLoadsARanksRows(t *testing.T) {
	o := Opts{Resolution: 16, Batch: 4, DataN: 8, Seed: 1, YawSpread: 1}
	rows := func(int) []int { return []int{1, 3} }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := feed(ctx, o, 0, rows)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := nextBatch(ctx, ch)
	if !ok || b.Err != nil || len(b.Samples) != 2 || b.Size != 4 || len(b.Cameras) != 4 || b.Samples[1].Camera != b.Cameras[3] {
		t.Fatalf("rank batch: ok %v err %v, %d samples of %d, %d cameras", ok, b.Err, len(b.Samples), b.Size, len(b.Cameras))
	}
	o.Data = imagesOnly{data.NewSynthFace(data.Train, 16, 8)}
	ch, err = feed(ctx, o, 0, rows)
	if err != nil {
		t.Fatal(err)
	}
	if b, ok = nextBatch(ctx, ch); !ok || b.Err != nil || len(b.Samples) != 4 || b.Rows != nil {
		t.Fatalf("whole batch: ok %v err %v, %d samples, rows %v", ok, b.Err, len(b.Samples), b.Rows)
	}
}
