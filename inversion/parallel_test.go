package inversion

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ddgi/data"
	"ddgi/dist"
	"ddgi/torch"
	"ddgi/train"
)

// The ranks of TestTwoRanksTrainLikeOneProcess are this test binary run
// again with DDGI_INV_WORKER naming the run folder.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DDGI_INV_WORKER"); dir != "" {
		if err := parallelWorker(dir); err != nil {
			fmt.Fprintf(os.Stderr, "worker: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// parallelTrain runs both stages of a tiny inversion (global batch 4, the
// full method: stage 2 trains against cached I^d_0) in dir as one rank of
// group (nil: one process) and returns M and T's weights.
func parallelTrain(dir string, group train.Group) ([]float32, error) {
	torch.SetThreads(1)
	c := Tiny()
	g := newLinearG(c, 32)
	m, _ := NewModel(c, torch.CPU, 5)
	m.Mapping.SetMeanLatent(g.MeanLatent())
	run, err := train.OpenRank(dir, group)
	if err != nil {
		return nil, err
	}
	tc := tinyTrain(3, 3)
	tc.Batch = 4
	tr := &Trainer{Cfg: tc, Model: m, G: g, E: newFakeEncoder(c), Data: data.NewSynthFace(data.Train, 32, 8),
		Cache: &D0Cache{Dir: filepath.Join(dir, "d0")}, Dev: torch.CPU}
	l := quietLoop()
	l.Group = group
	if err := tr.Train(context.Background(), run, l); err != nil {
		return nil, err
	}
	var w []float32
	for _, name := range m.Store.Names() {
		w = append(w, m.Store.Get(name).Float32s()...)
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

// Two ranks of 2 rows each over loopback Gloo train M and T as one process
// with batches of 4 does: the trainer takes its rows of each batch, with
// the timesteps, noise and I^d_0 seeds one process gives those rows.
func TestTwoRanksTrainLikeOneProcess(t *testing.T) {
	tmp := t.TempDir()
	ref, err := parallelTrain(filepath.Join(tmp, "one"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "two")
	t.Setenv("DDGI_INV_WORKER", dir)
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
		t.Logf("rank %d: max |Δw| = %.3g against one process", rank, d)
		if d > 1e-5 {
			t.Fatalf("rank %d: weights differ from one process by %g", rank, d)
		}
	}
	// Rank 0 alone wrote the run folder's previews and log.
	if _, err := os.Stat(filepath.Join(dir, "log.jsonl")); err != nil {
		t.Fatal(err)
	}
}
