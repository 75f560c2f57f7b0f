package difftrain

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ddgi/dist"
	"ddgi/nn"
	"ddgi/torch"
	"ddgi/train"
)

// The ranks of TestTwoRanksTrainLikeOneProcess are this test binary run
// again with DDGI_DIFF_WORKER naming the run folder.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DDGI_DIFF_WORKER"); dir != "" {
		if err := parallelWorker(dir); err != nil {
			fmt.Fprintf(os.Stderr, "worker: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// parallelTrain runs 4 steps of the tiny U-Net with a jointly trained text
// encoder (global batch 4) in dir as one rank of group (nil: one process)
// and returns the U-Net's and the text encoder's weights.
func parallelTrain(dir string, group train.Group) ([]float32, error) {
	torch.SetThreads(1)
	o := tinyOptions("", 4)
	o.Batch, o.Group = 4, group
	run, err := train.OpenRank(dir, group)
	if err != nil {
		return nil, err
	}
	j, err := New(run, o)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	if err := j.Loop().Run(context.Background(), run, j); err != nil {
		return nil, err
	}
	var w []float32
	for _, s := range []*nn.Store{j.trained, j.textS} {
		for _, name := range s.Names() {
			w = append(w, s.Get(name).Float32s()...)
		}
	}
	return w, nil
}

func parallelWorker(dir string) error {
	c, ok, err := dist.FromEnv()
	if err != nil || !ok {
		return fmt.Errorf("no group in the environment (%v)", err)
	}
	g, err := dist.Join(c)
	if err != nil {
		return err
	}
	defer g.Close()
	w, err := parallelTrain(dir, g)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(w)
	return os.WriteFile(filepath.Join(dir, fmt.Sprintf("final-%d.json", c.Rank)), b, 0o644)
}

// Two ranks of 2 rows each over loopback Gloo train the U-Net and the
// jointly trained text encoder as one process with batches of 4 does:
// every rank draws the whole batch's latents, drops, timesteps and noise
// and keeps its rows.
func TestTwoRanksTrainLikeOneProcess(t *testing.T) {
	tmp := t.TempDir()
	ref, err := parallelTrain(filepath.Join(tmp, "one"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "two")
	t.Setenv("DDGI_DIFF_WORKER", dir)
	t.Setenv("DDGI_THREADS", "1")
	if err := dist.Launch(context.Background(), 2, []string{"-test.run=^$"}, dist.LaunchOptions{Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for rank := range 2 {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("final-%d.json", rank)))
		if err != nil {
			t.Fatal(err)
		}
		var w []float32
		if err := json.Unmarshal(b, &w); err != nil || len(w) != len(ref) {
			t.Fatalf("rank %d: %d weights (%v), want %d", rank, len(w), err, len(ref))
		}
		var d float64
		for i := range w {
			d = max(d, math.Abs(float64(w[i]-ref[i])))
		}
		// Adam's first step moves each weight by lr·g/(|g|+ε): by ±lr for a
		// clear gradient, by a rounding-sensitive fraction of lr for one
		// near zero. Summing the batch in another order gives the latter
		// 2e-5 here (the same after 1, 2 and 4 steps); a rank that trains on
		// the wrong rows moves weights by about lr (1e-3).
		t.Logf("rank %d: max |Δw| = %.3g against one process (lr %g)", rank, d, tinyOptions("", 1).LR)
		if d > 5e-5 {
			t.Fatalf("rank %d: weights differ from one process by %g", rank, d)
		}
	}
}
