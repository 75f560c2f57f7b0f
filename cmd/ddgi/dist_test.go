package main

import (
	"os"
	"path/filepath"
	"testing"
)

// With DDGI_TEST_AS_DDGI set this test binary is ddgi itself: the ranks
// that `--nproc` launches run the command line they were given.
func TestMain(m *testing.M) {
	if os.Getenv("DDGI_TEST_AS_DDGI") != "" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// `train inversion --nproc 2` launches two ranks over loopback: rank 0
// writes the run folder (checkpoint, log, plot) and the export, and the
// launcher exits 0; a batch that does not split over the ranks is a clear
// error from every rank.
func TestTrainInversionNproc(t *testing.T) {
	dir, w := tinyWeights(t)
	t.Setenv("DDGI_TEST_AS_DDGI", "1")
	t.Setenv("DDGI_THREADS", "1")
	exported := filepath.Join(dir, "inv.safetensors")
	args := []string{"train", "inversion", "--weights", w, "--out", filepath.Join(dir, "run"), "--steps1", "2", "--steps2", "1",
		"--batch", "2", "--n", "4", "--lpips", "0", "--id", "0", "--width", "16", "--checkpoint-every", "2", "--export", exported, "--nproc", "2"}
	if code := run(args); code != 0 {
		t.Fatalf("train inversion --nproc 2 exited %d", code)
	}
	for _, f := range []string{"run/loss.png", "run/log.jsonl", "run/latest/state.json", "inv.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	args[len(args)-1] = "3"
	args[5] = filepath.Join(dir, "run3")
	if code := run(args); code != 1 {
		t.Fatalf("--batch 2 over 3 ranks exited %d, want 1", code)
	}
}
