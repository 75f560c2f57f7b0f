package inversion

import (
	"context"
	"math"
	"os"
	"testing"

	"ddgi/data"
	"ddgi/internal/fixture"
	"ddgi/torch"
)

// TestTrainOnCelebAMaskHQFolder trains the full method end to end on a
// folder in CelebAMask-HQ layout opened by data.Open, as `ddgi train
// inversion --data <folder>` does: stage 1 pauses halfway and resumes,
// the loss stays finite and falls, I^d_0 is sampled once per pair, and the
// final checkpoint verifies.
func TestTrainOnCelebAMaskHQFolder(t *testing.T) {
	dir := t.TempDir()
	const n = 6
	if err := fixture.CelebAMaskHQ(dir, n, 64); err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open(dir, data.OpenOptions{Size: 32, Split: data.Train, OnBad: data.StopOnBad})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != n {
		t.Fatalf("data.Open found %d samples, want %d", ds.Len(), n)
	}
	s, err := ds.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	classes := map[uint8]bool{}
	for _, l := range s.Mask {
		classes[l] = true
	}
	if len(classes) < 4 || len(s.Captions) == 0 {
		t.Fatalf("sample 0 has %d mask classes and %d captions: the parts or captions were not read", len(classes), len(s.Captions))
	}

	c := Tiny()
	g := newLinearG(c, 32)
	enc := newFakeEncoder(c)
	tc := tinyTrain(10, 4)
	l := quietLoop()
	l.MaxSteps = 5
	tr, run, err := trainOn(t, ds, c, tc, g, enc, "", 1, l)
	if err != nil {
		t.Fatal(err)
	}
	if ck, _, _ := run.Latest(); ck.Done != 5 {
		t.Fatalf("paused run checkpointed at %d, want 5", ck.Done)
	}
	m, _ := NewModel(c, torch.CPU, 2)
	tr = &Trainer{Cfg: tc, Model: m, G: g, E: enc, Data: ds, Cache: tr.Cache, Dev: torch.CPU}
	if err := tr.Train(context.Background(), run, quietLoop()); err != nil {
		t.Fatal(err)
	}
	ck, ok, err := run.Latest()
	if err != nil || !ok || ck.Done != 14 {
		t.Fatalf("final checkpoint: %+v %v %v", ck, ok, err)
	}
	if err := ck.Verify(); err != nil {
		t.Fatal(err)
	}
	steps, vals, err := run.ReadLog()
	if err != nil || len(steps) != 14 {
		t.Fatalf("log: %d rows, %v", len(steps), err)
	}
	loss := vals["loss"]
	for i, v := range loss {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("loss of step %d is %v", i+1, v)
		}
	}
	if first, last := (loss[0]+loss[1]+loss[2])/3, (loss[7]+loss[8]+loss[9])/3; !(last < first) {
		t.Fatalf("stage-1 loss did not fall on the folder: %v", loss[:10])
	}
	// Stage 2 reads 8 pairs, all 6 samples: each sampled once, from its
	// own z_T (folder samples have no renderer seed; the index stands in).
	if enc.calls != n {
		t.Fatalf("diffusion sampler ran for %d pairs, want %d", enc.calls, n)
	}
	seen := map[int64]bool{}
	for _, sd := range enc.seeds {
		seen[sd] = true
	}
	if len(seen) != n {
		t.Fatalf("I^d_0 seeds %v: want %d distinct", enc.seeds, n)
	}
	for _, f := range []string{"preview-000000010.png", "preview-000000014.png", "latest/" + Stage1File} {
		if _, err := os.Stat(run.Path(f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}
