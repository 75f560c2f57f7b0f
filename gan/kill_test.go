package gan

import (
	"context"
	"math/rand"
	"os"
	"os/exec"
	"testing"
	"time"

	"ddgi/train"
)

// TestKilledGANTrainingResumes SIGKILLs a tiny GAN training 20 times at
// random moments while it checkpoints every step (G, D, G_ema, optimizers
// and state in one folder), then resumes: every resume must find a whole
// checkpoint, and the run must have advanced. Full suite only.
func TestKilledGANTrainingResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("kills 20 trainings")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(2))
	for kill := 0; kill < 20; kill++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGANKillChild$")
		cmd.Env = append(os.Environ(), "DDGI_GAN_KILL_CHILD="+dir, "DDGI_THREADS=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The clock starts when the child has claimed the run: loading
		// libtorch alone can outlast the window on a busy machine.
		for deadline := time.Now().Add(time.Minute); train.LockHolder(dir) != cmd.Process.Pid && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(300+rng.Intn(900)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	run, err := train.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	cks, err := run.Checkpoints()
	if err != nil || len(cks) == 0 {
		t.Fatalf("no checkpoint after 20 killed runs (%v)", err)
	}
	for _, c := range cks {
		if err := c.Verify(); err != nil {
			t.Errorf("checkpoint %s: %v", c.Dir, err)
		}
	}
	o := tinyOpts()
	o.Kimg, o.MaxSteps = 1000, 1
	if err := Train(context.Background(), dir, tinyPair(t), o); err != nil {
		t.Fatalf("resume after the kills: %v", err)
	}
	if last := cks[len(cks)-1].Done; last < int64(4*o.Batch) {
		t.Fatalf("20 runs reached only %d images", last)
	}
}

func TestGANKillChild(t *testing.T) {
	dir := os.Getenv("DDGI_GAN_KILL_CHILD")
	if dir == "" {
		t.Skip("the child of TestKilledGANTrainingResumes")
	}
	o := tinyOpts()
	o.Kimg, o.Checkpoint = 1000, time.Nanosecond
	t.Fatal(Train(context.Background(), dir, tinyPair(t), o))
}
