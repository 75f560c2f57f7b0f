package texttrain

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"ddgi/nn"
	"ddgi/synthface"
	"ddgi/text"
	"ddgi/torch"
	"ddgi/train"
)

// tinyOptions is a run that takes well under a second a step: the tiny
// encoder, a two-level image tower on 16² images, 12 training pairs.
func tinyOptions(steps int64) Options {
	return Options{
		Preset: "tiny", Tokenizer: "../../weights/tokenizer.json", Size: 16, Embed: 8, ImageWidths: []int64{4, 8},
		Steps: steps, Batch: 6, LR: 1, EvalEvery: 3, Seed: 7, Tune: TuneAll,
		Samples: 12, Bench: 6, Workers: 1, Quiet: true,
	}
}

// trainLoss is the contrastive loss over every training pair (first
// captions), the same batch each time it is called.
func trainLoss(t *testing.T, j *Job) float64 {
	t.Helper()
	idx := make([]int, j.trainSet.Len())
	caps := make([]string, len(idx))
	for i := range idx {
		idx[i], caps[i] = i, j.trainSet.Captions[i][0]
	}
	var loss float64
	err := torch.Try(func() {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				ids, err := j.tok.EncodeBatch(caps, int(j.st.Config.Encoder.Context))
				if err != nil {
					t.Fatal(err)
				}
				txt, img := j.model.Embed(ids, j.trainSet.Images(idx))
				loss = text.ContrastiveLoss(txt, img, j.model.LogitScale).Item()
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
	o := tinyOptions(40)
	o.EvalEvery = 1000
	j, err := New(context.Background(), run, o)
	if err != nil {
		t.Fatal(err)
	}
	before := trainLoss(t, j)
	for done := int64(0); done < 40; done++ {
		if _, err := j.Step(context.Background(), done); err != nil {
			t.Fatal(err)
		}
	}
	after := trainLoss(t, j)
	t.Logf("loss over the training pairs %.4f → %.4f", before, after)
	if !(after < 0.8*before) {
		t.Errorf("contrastive loss over the training pairs %.4f → %.4f after 40 steps, want a drop of 20%%", before, after)
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
// resuming to 6 gives the weights, optimizer state and bench retrieval rows
// of one uninterrupted 6-step run; the finished run writes the probe report
// and a re-loadable fp16 export.
func TestResumeIsBitIdentical(t *testing.T) {
	ctx := context.Background()
	whole, parts := t.TempDir(), t.TempDir()
	o := tinyOptions(6)
	o.Export = filepath.Join(whole, "text.safetensors")
	if err := Train(ctx, whole, o); err != nil {
		t.Fatal(err)
	}
	o.Export = ""
	o.MaxSteps = 3
	if err := Train(ctx, parts, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(parts, FileProbe)); err == nil {
		t.Error("a paused run wrote the probe report")
	}
	o.MaxSteps = 0
	if err := Train(ctx, parts, o); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"latest/" + train.FileModel, "latest/" + train.FileOptim, "latest/" + train.StateFile, EvalDir + "/log.jsonl"} {
		if !bytes.Equal(readFile(t, filepath.Join(whole, f)), readFile(t, filepath.Join(parts, f))) {
			t.Errorf("%s differs between the uninterrupted and the resumed run", f)
		}
	}
	if n := bytes.Count(readFile(t, filepath.Join(parts, EvalDir, "log.jsonl")), []byte("\n")); n != 2 {
		t.Errorf("%d retrieval rows, want 2 (steps 3 and 6)", n)
	}
	if !bytes.Contains(readFile(t, filepath.Join(whole, FileProbe)), []byte("Male")) {
		t.Error("probe report lacks the attribute rows")
	}
	if _, _, err := text.LoadEncoder(filepath.Join(whole, "text.safetensors"), torch.CPU); err != nil {
		t.Errorf("export: %v", err)
	}
}

// TestNewTokensFineTune: --init --tune new-tokens on an artwork mix moves
// only the embeddings of tokens that no photo caption uses (the rest of
// the tower and every photo token stay the initial weights) and records the
// fine-tune in the checkpoint's state; a resume with another --tune, and
// new-tokens without --init, are refused.
func TestNewTokensFineTune(t *testing.T) {
	dir := t.TempDir()
	enc, err := text.EncoderPreset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	init := filepath.Join(dir, "init.safetensors")
	if err := torch.Try(func() {
		s := nn.NewStore(torch.CPU, 11)
		text.NewEncoder(s.Root(), enc)
		if err := s.Save(init, nn.SaveOptions{Config: map[string]any{"encoder": enc}}); err != nil {
			t.Fatal(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	arts, err := synthface.ParseArts("statue")
	if err != nil {
		t.Fatal(err)
	}
	o := tinyOptions(3)
	o.Init, o.Tune, o.ArtProb, o.Arts = init, TuneNewTokens, 1, arts
	o.Export = filepath.Join(dir, "text_art.safetensors")
	out := filepath.Join(dir, "run")
	if err := Train(context.Background(), out, o); err != nil {
		t.Fatal(err)
	}
	_, a, err := text.LoadEncoder(init, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := text.LoadEncoder(o.Export, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := text.LoadTokenizer(o.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	caption := Corpus(1)[0] // a photo caption
	photo := map[int64]bool{}
	for _, id := range tok.Encode(caption) {
		photo[id] = true
	}
	statue := tok.Encode("A marble statue.")
	for _, name := range a.Names() {
		x, y := a.Get(name), b.Get(name)
		tol := 2e-3 * (1 + x.Abs().MaxAll().Item()) // fp16 export
		if name != "embeddings.token_embedding.weight" {
			if d := x.Sub(y).Abs().MaxAll().Item(); d > tol {
				t.Errorf("%s moved by %g under --tune new-tokens", name, d)
			}
			continue
		}
		moved := 0
		for _, id := range append(statue, tok.Encode(caption)...) {
			d := x.Narrow(0, id, 1).Sub(y.Narrow(0, id, 1)).Abs().MaxAll().Item()
			if photo[id] && d > tol {
				t.Errorf("photo token %d moved by %g", id, d)
			}
			if !photo[id] && d > tol {
				moved++
			}
		}
		if moved == 0 {
			t.Error("no token of \"A marble statue.\" moved")
		}
	}
	var st State
	if err := train.ReadState(filepath.Join(out, "latest"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Tune != TuneNewTokens || st.Init != init || st.ArtProb != 1 || len(st.Arts) != 1 || st.Arts[0] != "statue" || st.Step != 3 {
		t.Errorf("state %+v", st)
	}
	o.Tune, o.Steps = TuneAll, 4
	if err := Train(context.Background(), out, o); err == nil {
		t.Error("resuming a new-tokens run with --tune all was accepted")
	}
	o = tinyOptions(3)
	o.Tune = TuneNewTokens
	if err := Train(context.Background(), filepath.Join(dir, "t2"), o); err == nil {
		t.Error("--tune new-tokens without --init was accepted")
	}
}
