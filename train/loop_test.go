package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// counterJob is a Job without tensors: its "weights" are two numbers that
// every step changes, saved to two files (like G and D) so a checkpoint
// that mixed steps would show.
type counterJob struct {
	W, V     float64
	Steps    int64
	nanAt    int64
	previews int
}

func (j *counterJob) Step(ctx context.Context, done int64) (Result, error) {
	if j.nanAt > 0 && done == j.nanAt {
		return Result{Losses: map[string]float64{"loss": math.NaN()}}, nil
	}
	j.W = 0.9*j.W + float64(done%7)
	j.V = j.V + 1
	j.Steps++
	return Result{Losses: map[string]float64{"loss": 1 / (1 + j.W)}, Info: map[string]float64{"stage": 1}}, nil
}

func (j *counterJob) Save(dir string) error {
	for name, v := range map[string]float64{"w.json": j.W, "v.json": j.V} {
		b, _ := json.Marshal(map[string]float64{"value": v, "steps": float64(j.Steps)})
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (j *counterJob) Load(dir string) error {
	var w, v map[string]float64
	for name, dst := range map[string]*map[string]float64{"w.json": &w, "v.json": &v} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return err
		}
	}
	if w["steps"] != v["steps"] {
		return fmt.Errorf("w.json at step %v, v.json at step %v", w["steps"], v["steps"])
	}
	j.W, j.V, j.Steps = w["value"], v["value"], int64(w["steps"])
	return nil
}

func (j *counterJob) Preview(path string) error {
	j.previews++
	return os.WriteFile(path, []byte("png"), 0o644)
}

func openRun(t *testing.T) *Run {
	t.Helper()
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLoopRunsToTotalAndCheckpoints(t *testing.T) {
	r := openRun(t)
	j := &counterJob{}
	l := &Loop{Label: "test", Total: 50, PreviewEvery: 20, Quiet: true, CheckpointEvery: time.Hour}
	if err := l.Run(context.Background(), r, j); err != nil {
		t.Fatal(err)
	}
	if j.Steps != 50 {
		t.Fatalf("%d steps, want 50", j.Steps)
	}
	c, ok, err := r.Latest()
	if err != nil || !ok || c.Done != 50 {
		t.Fatalf("latest checkpoint %+v ok=%v err=%v, want one at 50", c, ok, err)
	}
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(r.Path("latest")); err != nil || filepath.Base(target) != filepath.Base(c.Dir) {
		t.Fatalf("latest -> %q (%v), want %s", target, err, c.Dir)
	}
	for _, n := range []int{20, 40, 50} {
		if _, err := os.Stat(r.Path(fmt.Sprintf("preview-%09d.png", n))); err != nil {
			t.Errorf("preview at %d: %v", n, err)
		}
	}
	steps, vals, err := r.ReadLog()
	if err != nil || len(steps) != 3 || steps[2] != 50 || len(vals["loss"]) != 3 {
		t.Fatalf("log rows %v %v (%v), want steps 20, 40, 50", steps, vals, err)
	}
	if _, err := os.Stat(r.Path("loss.png")); err != nil {
		t.Fatal("no loss plot:", err)
	}
}

func TestLoopResumeEqualsUninterrupted(t *testing.T) {
	whole := &counterJob{}
	if err := (&Loop{Total: 40, Quiet: true}).Run(context.Background(), openRun(t), whole); err != nil {
		t.Fatal(err)
	}
	r := openRun(t)
	first := &counterJob{}
	if err := (&Loop{Total: 40, MaxSteps: 17, Quiet: true}).Run(context.Background(), r, first); err != nil {
		t.Fatal(err)
	}
	if first.Steps != 17 {
		t.Fatalf("first leg ran %d steps, want 17", first.Steps)
	}
	second := &counterJob{}
	if err := (&Loop{Total: 40, Quiet: true}).Run(context.Background(), r, second); err != nil {
		t.Fatal(err)
	}
	if *second != *whole {
		t.Fatalf("resumed run ended at %+v, uninterrupted at %+v", *second, *whole)
	}
	steps, _, _ := r.ReadLog()
	for i := 1; i < len(steps); i++ {
		if steps[i] <= steps[i-1] {
			t.Fatalf("log steps not increasing after resume: %v", steps)
		}
	}
}

func TestLoopInterruptCheckpointsAndSaysSo(t *testing.T) {
	r := openRun(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	j := &stopAfter{n: 5, cancel: func() { cancel(signalCause{syscall.SIGTERM}) }}
	err := (&Loop{Total: 100, Quiet: true, CheckpointEvery: time.Hour}).Run(ctx, r, j)
	var in *Interrupted
	if !errors.As(err, &in) || !errors.Is(err, ErrInterrupted) {
		t.Fatalf("got %v, want *Interrupted", err)
	}
	if in.Done != 5 || ExitCode(err) != 128+int(syscall.SIGTERM) {
		t.Fatalf("interrupted at %d with exit %d, want 5 and %d", in.Done, ExitCode(err), 128+int(syscall.SIGTERM))
	}
	if c, ok, _ := r.Latest(); !ok || c.Done != 5 {
		t.Fatalf("no checkpoint at the interruption: %+v", c)
	}
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != 1 {
		t.Fatal("ExitCode of nil or a plain error")
	}
}

type stopAfter struct {
	counterJob
	n      int64
	cancel func()
}

func (s *stopAfter) Step(ctx context.Context, done int64) (Result, error) {
	r, err := s.counterJob.Step(ctx, done)
	if done+1 == s.n {
		s.cancel()
	}
	return r, err
}

func TestLoopRefusesNaNLoss(t *testing.T) {
	r := openRun(t)
	err := (&Loop{Total: 30, Quiet: true}).Run(context.Background(), r, &counterJob{nanAt: 12})
	if err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Fatalf("got %v, want a NaN loss error", err)
	}
}

func TestResumeFallsBackFromACorruptCheckpoint(t *testing.T) {
	r := openRun(t)
	if err := (&Loop{Total: 10, MaxSteps: 4, Quiet: true, CheckpointEvery: 0}).Run(context.Background(), r, &counterJob{}); err != nil {
		t.Fatal(err)
	}
	cs, _ := r.Checkpoints()
	if len(cs) != 2 { // Keep 2: checkpoints at 3 and 4 remain
		t.Fatalf("%d checkpoints kept, want 2", len(cs))
	}
	newest := cs[len(cs)-1]
	if err := os.WriteFile(newest.Path("w.json"), []byte(`{"value":1e9,"steps":4}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.Path(checkpointsDir), stalePrefix+"99-x"), 0o755); err != nil {
		t.Fatal(err)
	}
	j := &counterJob{}
	l := &Loop{Total: 10, MaxSteps: 1, Quiet: true}
	if err := l.Run(context.Background(), r, j); err != nil {
		t.Fatal(err)
	}
	if j.Steps != cs[0].Done+1 {
		t.Fatalf("resumed from step %d, want the older checkpoint %d", j.Steps-1, cs[0].Done)
	}
	ents, _ := os.ReadDir(r.Path(checkpointsDir))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), stalePrefix) {
			t.Fatalf("stale %s not removed", e.Name())
		}
	}
}

func TestOlderRunFolderIsNamed(t *testing.T) {
	r := openRun(t)
	os.WriteFile(r.Path("state.json"), []byte(`{"step":3}`), 0o644)
	err := (&Loop{Total: 5, Quiet: true}).Run(context.Background(), r, &counterJob{})
	if err == nil || !strings.Contains(err.Error(), "older ddgi") {
		t.Fatalf("got %v", err)
	}
}

// TestKilledRunsLeaveWholeCheckpoints SIGKILLs a training process 20 times at random
// moments while it checkpoints every step; each resume must find a
// checkpoint whose files agree (the child below checks that in Load).
func TestKilledRunsLeaveWholeCheckpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("kills 20 processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	for kill := 0; kill < 20; kill++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
		cmd.Env = append(os.Environ(), "DDGI_KILL_CHILD="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Start the clock once the child has claimed the run (its pid in
		// .lock): loading libtorch alone can outlast the whole window on a
		// busy machine, and then no kill would land inside a checkpoint.
		waitClaimed(t, dir, cmd.Process.Pid)
		time.Sleep(time.Duration(100+rng.Intn(300)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	j := &counterJob{}
	if err := (&Loop{Total: 1 << 40, MaxSteps: 1, Quiet: true}).Run(context.Background(), r, j); err != nil {
		t.Fatal(err)
	}
	if j.Steps < 2 {
		t.Fatalf("20 runs of ~250 ms reached only %d steps", j.Steps)
	}
}

// waitClaimed waits (up to a minute) until process pid holds dir's lock.
func waitClaimed(t *testing.T, dir string, pid int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if LockHolder(dir) == pid {
			return
		}
	}
	t.Fatalf("process %d did not claim %s within a minute", pid, dir)
}

func TestKillChild(t *testing.T) {
	dir := os.Getenv("DDGI_KILL_CHILD")
	if dir == "" {
		t.Skip("the child of TestKilledRunsLeaveWholeCheckpoints")
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = (&Loop{Total: 1 << 40, Quiet: true, CheckpointEvery: 0, Keep: 3}).Run(context.Background(), r, &slowJob{})
	t.Fatal(err)
}

// slowJob saves big enough files that a kill often lands inside Save.
type slowJob struct{ counterJob }

func (s *slowJob) Save(dir string) error {
	if err := s.counterJob.Save(dir); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "pad.bin"), make([]byte, 1<<20), 0o644)
}

// threadJob records the OS thread of every call the loop makes into it.
type threadJob struct {
	counterJob
	tids map[int]bool
}

func (j *threadJob) Step(ctx context.Context, done int64) (Result, error) {
	j.tids[syscall.Gettid()] = true
	time.Sleep(200 * time.Microsecond) // a parked goroutine may wake on another thread
	return j.counterJob.Step(ctx, done)
}

func (j *threadJob) Save(dir string) error {
	j.tids[syscall.Gettid()] = true
	return j.counterJob.Save(dir)
}

// TestLoopStaysOnOneThread: every Step and Save of a run happen on one OS
// thread, so libtorch's per-thread state cannot make two identical runs
// round differently (the VAE's resume test caught that).
func TestLoopStaysOnOneThread(t *testing.T) {
	j := &threadJob{tids: map[int]bool{}}
	busy, stop := make(chan struct{}), make(chan struct{})
	for range 4 { // keep the other threads occupied so the scheduler moves goroutines
		go func() {
			for {
				select {
				case <-stop:
					busy <- struct{}{}
					return
				default:
					runtime.Gosched()
				}
			}
		}()
	}
	l := &Loop{Label: "t", Total: 20, Quiet: true} // a checkpoint every step: file I/O also frees the thread
	err := l.Run(context.Background(), openRun(t), j)
	close(stop)
	for range 4 {
		<-busy
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(j.tids) != 1 {
		t.Errorf("a run's steps and saves ran on %d OS threads, want 1", len(j.tids))
	}
}
