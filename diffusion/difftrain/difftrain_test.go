package difftrain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/imagebatch"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/synthface"
	"ddgi/text"
	"ddgi/torch"
	"ddgi/train"
)

const tokenizer = "../../weights/tokenizer.json"

// frozenText writes a random tiny text encoder (width 32, the tiny U-Net's
// context) to dir and returns its path.
func frozenText(t *testing.T, dir string) string {
	t.Helper()
	tc, err := text.EncoderPreset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	s := nn.NewStore(torch.CPU, 1)
	text.NewEncoder(s.Root(), tc)
	p := filepath.Join(dir, "text.safetensors")
	if err := s.Save(p, nn.SaveOptions{Config: map[string]any{"encoder": tc}}); err != nil {
		t.Fatal(err)
	}
	return p
}

// tinyOptions is a base run of the tiny U-Net in patch latents (16² images)
// on 8 SynthFace samples; textWeights "" trains a fresh tiny text encoder
// jointly.
func tinyOptions(textWeights string, steps int64) Options {
	if textWeights == "" {
		textWeights = "absent.safetensors"
	}
	return Options{
		Stage: StageBase, Cond: kinds.Mask, Preset: "tiny", Latent: "patch",
		Files: encoder.Files{Tokenizer: tokenizer, Text: textWeights, TextPreset: "tiny", VAE: "absent.safetensors"},
		Steps: steps, Batch: 2, LR: 1e-3, TextLR: 1e-3, EMA: 0.999, DropText: -1, Seed: 3,
		Samples: 8, Workers: 1, CheckpointEvery: time.Hour, PreviewEvery: 1000, PreviewSteps: 2, Quiet: true,
	}
}

func openRun(t *testing.T) *train.Run {
	t.Helper()
	r, err := train.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newJob builds a job in a fresh run folder.
func newJob(t *testing.T, o Options) (*Job, *train.Run) {
	t.Helper()
	r := openRun(t)
	j, err := New(r, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Close)
	return j, r
}

// heldOutLoss is the objective on the preview batch (bench faces) under
// fixed noise, averaged over a few draws of timesteps and noise.
func heldOutLoss(t *testing.T, j *Job) float64 {
	t.Helper()
	var sum float64
	const draws = 6
	err := torch.Try(func() {
		torch.Scoped(func() {
			torch.NoGrad(func() {
				for k := range draws {
					l, err := j.objective(imagebatch.Batch{Image: j.fixed.Image, Mask: j.fixed.Mask, Scribble: j.fixed.Scribble, Captions: j.fixed.Captions}, len(j.fixed.Captions), torch.NewGenerator(uint64(100+k)))
					if err != nil {
						t.Fatal(err)
					}
					sum += l.Item()
				}
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return sum / draws
}

// trainLowersLoss runs steps steps and checks the held-out loss fell.
func trainLowersLoss(t *testing.T, o Options) *Job {
	t.Helper()
	j, r := newJob(t, o)
	before := heldOutLoss(t, j)
	if err := j.Loop().Run(context.Background(), r, j); err != nil {
		t.Fatal(err)
	}
	after := heldOutLoss(t, j)
	t.Logf("%s: held-out loss %.4f → %.4f after %d steps", o.Stage, before, after, j.State().Step)
	if !(after < 0.9*before) {
		t.Errorf("%s: held-out loss %.4f → %.4f after %d steps, want a clear drop", o.Stage, before, after, j.State().Step)
	}
	if _, err := os.Stat(r.Path(fmt.Sprintf("preview-%09d.png", o.Steps))); err != nil {
		t.Error("no final preview:", err)
	}
	return j
}

// TestTrainingLowersTheLoss trains a tiny base U-Net (frozen text
// encoder), exports it, and trains a mask branch on that base.
func TestTrainingLowersTheLoss(t *testing.T) {
	dir := t.TempDir()
	o := tinyOptions(frozenText(t, dir), 30)
	j := trainLowersLoss(t, o)
	base := filepath.Join(dir, "base.safetensors")
	if err := j.Export(base); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "base_text.safetensors")); err == nil {
		t.Error("a frozen text encoder was exported beside the U-Net")
	}

	o.Stage, o.Cond, o.Base, o.Steps, o.LR = StageControl, kinds.Mask, base, 40, 1e-2
	cj := trainLowersLoss(t, o)
	if cj.trained == cj.m.Store || cj.m.Store.Trainable() != nil {
		t.Error("the control stage trains the base U-Net")
	}
	branch := filepath.Join(dir, "mask.safetensors")
	if err := cj.Export(branch); err != nil {
		t.Fatal(err)
	}
	m, err := diffusion.Load(base, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if err := encoder.LoadBranch(m, branch, kinds.Mask); err != nil {
		t.Fatal(err)
	}
}

// checkpointFiles reads every file of the run's latest checkpoint.
func checkpointFiles(t *testing.T, r *train.Run) map[string][]byte {
	t.Helper()
	c, ok, err := r.Latest()
	if err != nil || !ok {
		t.Fatalf("no checkpoint (%v)", err)
	}
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range ents {
		if files[e.Name()], err = os.ReadFile(c.Path(e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// TestResumeIsExact: N steps straight and N/2, a pause (checkpoint, new
// process state) and a resume end at the same step with bit-identical
// weights, EMA, optimizer and jointly trained text encoder.
func TestResumeIsExact(t *testing.T) {
	// Bit-exact needs every torch call on one OS thread, as cmd/ddgi's
	// main pins it: libtorch keeps per-thread state, and a goroutine moved
	// between threads measurably changed the last bits (1e-6) of a run.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const n = 6
	o := tinyOptions("", n) // joint text encoder: its weights and optimizer resume too
	whole, wr := newJob(t, o)
	if err := whole.Loop().Run(context.Background(), wr, whole); err != nil {
		t.Fatal(err)
	}

	r := openRun(t)
	first, err := New(r, o)
	if err != nil {
		t.Fatal(err)
	}
	l := first.Loop()
	l.MaxSteps = n / 2
	if err := l.Run(context.Background(), r, first); err != nil {
		t.Fatal(err)
	}
	first.Close()
	if first.State().Step != n/2 {
		t.Fatalf("paused at step %d, want %d", first.State().Step, n/2)
	}
	second, err := New(r, o)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.Loop().Run(context.Background(), r, second); err != nil {
		t.Fatal(err)
	}
	if whole.State().Step != n || second.State().Step != n {
		t.Fatalf("final steps %d and %d, want %d", whole.State().Step, second.State().Step, n)
	}
	a, b := checkpointFiles(t, wr), checkpointFiles(t, r)
	for _, name := range []string{FileEMA, train.FileModel, train.FileOptim, FileText, FileOptimText, train.StateFile} {
		if a[name] == nil || !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s differs between the straight and the resumed run (or is missing)", name)
		}
	}
	if !second.State().Joint {
		t.Error("the resumed run forgot its jointly trained text encoder")
	}

	// Resuming under another stage is refused.
	o.Stage, o.Base = StageControl, "absent.safetensors"
	if _, err := New(r, o); err == nil || !strings.Contains(err.Error(), "holds a base") {
		t.Errorf("control stage in a base run folder: %v", err)
	}
}

// TestArtworksAreKept: the art share and styles are recorded in the
// checkpoint's state, and a resume keeps them over new options.
func TestArtworksAreKept(t *testing.T) {
	o := tinyOptions(frozenText(t, t.TempDir()), 2)
	o.ArtProb, o.Arts = 0.5, []synthface.Art{synthface.ArtStatue, synthface.ArtSketch}
	j, r := newJob(t, o)
	if err := j.Loop().Run(context.Background(), r, j); err != nil {
		t.Fatal(err)
	}
	c, _, _ := r.Latest()
	b, err := os.ReadFile(c.Path(train.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Step != 2 || st.ArtProb != 0.5 || strings.Join(st.Arts, ",") != "statue,sketch" {
		t.Errorf("state: step %d, art %v %v", st.Step, st.ArtProb, st.Arts)
	}
	o.ArtProb, o.Arts, o.Steps = 0, nil, 3
	again, err := New(r, o)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if s := again.State(); s.ArtProb != 0.5 || len(s.Arts) != 2 {
		t.Errorf("resumed state dropped the artworks: %v %v", s.ArtProb, s.Arts)
	}
}

// TestInitFineTunes: Init starts the base U-Net from given weights (the
// export after one step at a negligible learning rate equals them to fp16
// precision), and is refused for a branch.
func TestInitFineTunes(t *testing.T) {
	dir := t.TempDir()
	c, err := diffusion.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	init := filepath.Join(dir, "init.safetensors")
	m, err := diffusion.New(diffusion.PatchConfig(c), torch.CPU, 9)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(init, false); err != nil {
		t.Fatal(err)
	}
	o := tinyOptions(frozenText(t, dir), 1)
	o.Init, o.LR, o.Preset = init, 1e-12, "no-such-preset" // the preset is unused when fine-tuning
	exported := filepath.Join(dir, "ft.safetensors")
	o.Export = exported
	if err := Train(context.Background(), filepath.Join(dir, "run"), o); err != nil {
		t.Fatal(err)
	}
	e, err := diffusion.Load(exported, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range m.Store.Names() {
		x, y := m.Store.Get(name), e.Store.Get(name)
		if d := x.Sub(y).Abs().MaxAll().Item(); d > 2e-3*(1+x.Abs().MaxAll().Item()) {
			t.Fatalf("%s moved by %g: Init not applied", name, d)
		}
	}
	o.Stage = StageControl
	if _, err := New(openRun(t), o); err == nil {
		t.Error("Init accepted for a branch")
	}
}
