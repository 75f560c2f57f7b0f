package vaetrain

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"ddgi/diffusion/vae"
	"ddgi/torch"
	"ddgi/train"
)

// tinyOptions is a run on the tiny preset (16² images, 8² latents).
func tinyOptions(steps int64) Options {
	return Options{Preset: "tiny", Steps: steps, Batch: 4, LR: 3e-3, KL: 1e-6, Seed: 5,
		Samples: 8, Bench: 8, Workers: 1, Quiet: true}
}

// reconLoss is the reconstruction loss of the first 8 training images
// through the posterior mean: the same batch each time.
func reconLoss(t *testing.T, j *Job) float64 {
	t.Helper()
	var loss float64
	err := torch.Try(func() {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				x := j.trainSet.Images([]int{0, 1, 2, 3, 4, 5, 6, 7})
				mean, _ := j.model.Encode(x)
				r, _, _ := vae.ReconLoss(j.model.Decode(mean), x)
				loss = r.Item()
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return loss
}

func TestStepsLowerTheLoss(t *testing.T) {
	run, err := train.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	j, err := New(context.Background(), run, tinyOptions(25))
	if err != nil {
		t.Fatal(err)
	}
	before := reconLoss(t, j)
	for done := int64(0); done < 25; done++ {
		if _, err := j.Step(context.Background(), done); err != nil {
			t.Fatal(err)
		}
	}
	after := reconLoss(t, j)
	t.Logf("reconstruction loss %.4f → %.4f", before, after)
	if !(after < 0.8*before) {
		t.Errorf("reconstruction loss %.4f → %.4f after 25 steps, want a drop of 20%%", before, after)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestResumeIsBitIdentical: 3 steps, a checkpointed pause, then a new job
// resuming to 6 (the posterior noise replayed) gives the weights and
// optimizer state of one uninterrupted 6-step run. The finished run
// records the scale factor in eval/, in the latest checkpoint's config and
// in the fp16 export.
func TestResumeIsBitIdentical(t *testing.T) {
	ctx := context.Background()
	whole, parts := t.TempDir(), t.TempDir()
	o := tinyOptions(6)
	if err := Train(ctx, whole, o); err != nil {
		t.Fatal(err)
	}
	o.MaxSteps = 3
	if err := Train(ctx, parts, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(parts, EvalDir, "log.jsonl")); err == nil {
		t.Error("a paused run measured the bench")
	}
	o.MaxSteps = 0
	o.Export = filepath.Join(parts, "vae.safetensors")
	if err := Train(ctx, parts, o); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"latest/" + train.FileModel, "latest/" + train.FileOptim, "latest/" + train.StateFile, EvalDir + "/log.jsonl"} {
		if !bytes.Equal(readFile(t, filepath.Join(whole, f)), readFile(t, filepath.Join(parts, f))) {
			t.Errorf("%s differs between the uninterrupted and the resumed run", f)
		}
	}
	var row map[string]float64
	if err := json.Unmarshal(readFile(t, filepath.Join(parts, EvalDir, "log.jsonl")), &row); err != nil {
		t.Fatal(err)
	}
	scale := row["scale_factor"]
	if !(scale > 0) || row["step"] != 6 {
		t.Fatalf("eval row %v", row)
	}
	for _, f := range []string{o.Export, filepath.Join(parts, "latest", train.FileModel)} {
		m, _, err := vae.Load(f, torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		if m.Config.Scale != scale {
			t.Errorf("%s: scale factor %v, eval row says %v", f, m.Config.Scale, scale)
		}
	}
	o.Batch = 2
	if err := Train(ctx, parts, o); err == nil {
		t.Error("resuming with another --batch was accepted")
	}
}
