package dist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
	"ddgi/train"
)

// The ranks of these tests are this test binary run again with
// DDGI_DIST_WORKER set: each trains tinyJob in a run folder.
func TestMain(m *testing.M) {
	if os.Getenv("DDGI_DIST_WORKER") != "" {
		if err := worker(); err != nil {
			fmt.Fprintf(os.Stderr, "worker rank %s: %v\n", os.Getenv("RANK"), err)
			os.Exit(train.ExitCode(err))
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const (
	tinyRows  = 64 // dataset size
	tinyBatch = 8  // global batch
)

// tinyJob fits a two-layer MLP to a fixed random dataset with Adam: each
// step takes the next global batch of rows, this rank's share of it.
type tinyJob struct {
	store *nn.Store
	opt   *optim.Adam
	x, y  *torch.Tensor
	shard train.Shard
	st    tinyState
	dieAt int64         // rank kills itself (SIGKILL) before this step; 0: never
	slow  time.Duration // sleep in every step (for the interrupt test)
}

type tinyState struct {
	Step int64
}

func newTinyJob() *tinyJob {
	s := nn.NewStore(torch.CPU, 7)
	r := s.Root()
	r.Param("w1", []int64{16, 3}, nn.Normal(0.5))
	r.Param("b1", []int64{16}, nn.Constant(0))
	r.Param("w2", []int64{2, 16}, nn.Normal(0.5))
	r.Param("b2", []int64{2}, nn.Constant(0))
	g := torch.NewGenerator(11)
	x := torch.Randn(g, []int64{tinyRows, 3}, torch.Float32, torch.CPU)
	y := torch.Randn(g, []int64{tinyRows, 2}, torch.Float32, torch.CPU)
	torch.Persist(x, y)
	return &tinyJob{store: s, opt: optim.NewAdam(optim.DefaultAdam(0.01)), x: x, y: y}
}

func (j *tinyJob) Step(ctx context.Context, done int64) (train.Result, error) {
	if j.dieAt > 0 && done == j.dieAt {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	time.Sleep(j.slow)
	var loss float64
	torch.Scoped(func() {
		lo, n := j.shard.Rows(tinyBatch)
		start := (done*tinyBatch)%tinyRows + int64(lo)
		x, y := j.x.Narrow(0, start, int64(n)), j.y.Narrow(0, start, int64(n))
		s := j.store
		h := torch.Linear(x, s.Get("w1"), s.Get("b1")).Tanh()
		l := torch.MSELoss(torch.Linear(h, s.Get("w2"), s.Get("b2")), y, torch.ReduceMean)
		loss = l.Item()
		j.shard.Backward(l, s.Trainable())
		j.opt.Update(s.Trainable())
	})
	j.st.Step = done + 1
	return train.Result{Losses: map[string]float64{"loss": loss}}, nil
}

func (j *tinyJob) Save(dir string) error {
	return train.SaveModel(dir, j.store, nil, j.opt, j.st)
}

func (j *tinyJob) Load(dir string) error {
	return train.LoadModel(dir, j.store, j.opt, &j.st, func(tinyState) bool { return true })
}

func (j *tinyJob) Distribute(s train.Shard) error {
	j.shard = s
	return s.Check(tinyBatch)
}

func (j *tinyJob) Replicated() []*torch.Tensor {
	var ts []*torch.Tensor
	for _, name := range j.store.Names() {
		ts = append(ts, j.store.Get(name))
	}
	return append(ts, j.opt.Moments()...)
}

// worker trains in DDGI_DIST_RUN for DDGI_DIST_STEPS steps (a pause after
// DDGI_DIST_MAX steps when set) and writes its weights to final-<rank>.json.
func worker() error {
	torch.SetThreads(1)
	env := func(k string) int64 {
		n, _ := strconv.ParseInt(os.Getenv(k), 10, 64)
		return n
	}
	loop := train.Loop{Label: "tiny", Total: env("DDGI_DIST_STEPS"), MaxSteps: env("DDGI_DIST_MAX"), CheckpointEvery: time.Nanosecond, Quiet: true}
	c, ok, err := FromEnv()
	if err != nil {
		return err
	}
	rank := 0
	if ok {
		g, err := Join(c)
		if err != nil {
			return err
		}
		defer g.Close()
		loop.Group, rank = g, c.Rank
	}
	dir := os.Getenv("DDGI_DIST_RUN")
	run, err := train.OpenRank(dir, loop.Group)
	if err != nil {
		return err
	}
	job := newTinyJob()
	if die := os.Getenv("DDGI_DIST_DIE"); die != "" && strings.HasPrefix(die, strconv.Itoa(rank)+"@") {
		job.dieAt, _ = strconv.ParseInt(strings.TrimPrefix(die, strconv.Itoa(rank)+"@"), 10, 64)
	}
	job.slow, _ = time.ParseDuration(os.Getenv("DDGI_DIST_SLOW"))
	ctx, stop := train.SignalContext(context.Background())
	defer stop()
	if err := loop.Run(ctx, run, job); err != nil {
		return err
	}
	var w []float32
	for _, name := range job.store.Names() {
		w = append(w, job.store.Get(name).Float32s()...)
	}
	b, _ := json.Marshal(w)
	return os.WriteFile(filepath.Join(dir, fmt.Sprintf("final-%d.json", rank)), b, 0o644)
}

// trainRanks runs n ranks of the worker (n = 1: the worker in this
// process, with no group at all).
func trainRanks(t *testing.T, n int, dir string, steps, maxSteps int64, die string, timeout time.Duration) (string, error) {
	t.Helper()
	t.Setenv("DDGI_DIST_WORKER", "1")
	t.Setenv("DDGI_DIST_RUN", dir)
	t.Setenv("DDGI_DIST_STEPS", strconv.FormatInt(steps, 10))
	t.Setenv("DDGI_DIST_MAX", strconv.FormatInt(maxSteps, 10))
	t.Setenv("DDGI_DIST_DIE", die)
	t.Setenv("DDGI_THREADS", "1")
	t.Setenv("DDGI_BUCKET_MB", "0.0005") // a bucket per tensor or two: all-reduces overlap backward
	if n == 1 {
		t.Setenv("WORLD_SIZE", "")
		return "", worker()
	}
	var out bytes.Buffer
	err := Launch(context.Background(), n, []string{"-test.run=^$"}, LaunchOptions{Timeout: timeout, Grace: 3 * timeout, Stdout: &out, Stderr: &out})
	return out.String(), err
}

func weights(t *testing.T, dir string, rank int) []float32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("final-%d.json", rank)))
	if err != nil {
		t.Fatal(err)
	}
	var w []float32
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// 20 steps as 2 ranks of 4 rows each over loopback Gloo give the weights
// of 20 steps in one process with batches of 8; so does a 2-rank run
// paused at step 10 and resumed.
func TestTwoRanksMatchOneProcess(t *testing.T) {
	tmp := t.TempDir()
	one, two, resumed := filepath.Join(tmp, "one"), filepath.Join(tmp, "two"), filepath.Join(tmp, "resumed")
	if out, err := trainRanks(t, 1, one, 20, 0, "", 0); err != nil {
		t.Fatalf("one process: %v\n%s", err, out)
	}
	if out, err := trainRanks(t, 2, two, 20, 0, "", 30*time.Second); err != nil {
		t.Fatalf("two ranks: %v\n%s", err, out)
	}
	if out, err := trainRanks(t, 2, resumed, 20, 10, "", 30*time.Second); err != nil {
		t.Fatalf("two ranks, first 10 steps: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(resumed, "checkpoints", fmt.Sprintf("%012d", 10))); err != nil {
		t.Fatalf("no checkpoint at the pause: %v", err)
	}
	if out, err := trainRanks(t, 2, resumed, 20, 0, "", 30*time.Second); err != nil {
		t.Fatalf("two ranks, resumed: %v\n%s", err, out)
	}
	ref := weights(t, one, 0)
	for _, c := range []struct {
		dir  string
		rank int
	}{{two, 0}, {two, 1}, {resumed, 0}, {resumed, 1}} {
		d := maxDiff(ref, weights(t, c.dir, c.rank))
		t.Logf("%s rank %d: max |Δw| = %.3g against one process", filepath.Base(c.dir), c.rank, d)
		if d > 1e-5 {
			t.Errorf("%s rank %d: weights differ from one process by %g", filepath.Base(c.dir), c.rank, d)
		}
	}
	if d := maxDiff(weights(t, one, 0), weights(t, two, 0)); d == 0 {
		t.Log("bit-identical")
	}
	// The one-process run's first step differs from the start: training
	// happened (guards against comparing untouched initial weights).
	init := newTinyJob()
	var w0 []float32
	for _, name := range init.store.Names() {
		w0 = append(w0, init.store.Get(name).Float32s()...)
	}
	if maxDiff(w0, ref) < 1e-3 {
		t.Fatal("the weights barely moved in 20 steps: the comparison proves nothing")
	}
}

// A rank killed mid-run makes the other exit with a clear error well
// within the timeout; rerunning resumes from the last checkpoint and
// finishes with the weights of an uninterrupted run.
func TestDeadRankStopsTheOther(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "killed")
	const timeout = 20 * time.Second
	start := time.Now()
	out, err := trainRanks(t, 2, dir, 20, 0, "1@7", timeout)
	el := time.Since(start)
	var re *RankError
	if !errors.As(err, &re) {
		t.Fatalf("want a rank to fail, got %v\n%s", err, out)
	}
	t.Logf("after %v: %v; output:\n%s", el.Round(time.Millisecond), err, out)
	if el > timeout {
		t.Fatalf("the surviving rank took %v (timeout %v)", el, timeout)
	}
	if !strings.Contains(out, "worker rank 0:") || !strings.Contains(out, "rank 0 of 2") {
		t.Fatalf("rank 0 did not report the failure itself:\n%s", out)
	}
	if out, err := trainRanks(t, 2, dir, 20, 0, "", timeout); err != nil {
		t.Fatalf("resume after the kill: %v\n%s", err, out)
	}
	one := filepath.Join(tmp, "one")
	if out, err := trainRanks(t, 1, one, 20, 0, "", 0); err != nil {
		t.Fatalf("one process: %v\n%s", err, out)
	}
	if d := maxDiff(weights(t, one, 0), weights(t, dir, 1)); d > 1e-5 {
		t.Fatalf("resumed run differs from one process by %g", d)
	}
}

// Cancelling the launcher (as Ctrl-C does) sends every rank SIGTERM: they
// stop at the same step, rank 0 checkpoints, each exits 143; the rerun
// resumes there and ends with the weights of an uninterrupted run.
func TestInterruptStopsEveryRankAtACheckpoint(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "stopped")
	t.Setenv("DDGI_DIST_WORKER", "1")
	t.Setenv("DDGI_DIST_RUN", dir)
	t.Setenv("DDGI_DIST_STEPS", "20")
	t.Setenv("DDGI_DIST_MAX", "0")
	t.Setenv("DDGI_DIST_DIE", "")
	t.Setenv("DDGI_DIST_SLOW", "300ms")
	t.Setenv("DDGI_THREADS", "1")
	// Cancel once the ranks are training (a SIGTERM before a rank has set
	// up its signal handling just kills it).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if cks, _ := (&train.Run{Dir: dir}).Checkpoints(); len(cks) >= 2 {
				cancel()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var out bytes.Buffer
	err := Launch(ctx, 2, []string{"-test.run=^$"}, LaunchOptions{Timeout: 20 * time.Second, Stdout: &out, Stderr: &out})
	var re *RankError
	if !errors.As(err, &re) || re.Code != 143 {
		t.Fatalf("want ranks ending with status 143, got %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "terminated at"); n != 2 {
		t.Fatalf("%d ranks reported the stop, want 2 (%v):\n%s", n, err, out.String())
	}
	cks, _ := (&train.Run{Dir: dir}).Checkpoints()
	if len(cks) == 0 || cks[len(cks)-1].Done >= 20 {
		t.Fatalf("checkpoints %v: want one before the end", cks)
	}
	t.Logf("stopped at %d steps: %s", cks[len(cks)-1].Done, strings.TrimSpace(out.String()))
	t.Setenv("DDGI_DIST_SLOW", "0s")
	if out, err := trainRanks(t, 2, dir, 20, 0, "", 20*time.Second); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	one := filepath.Join(tmp, "one")
	if _, err := trainRanks(t, 1, one, 20, 0, "", 0); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(weights(t, one, 0), weights(t, dir, 0)); d > 1e-5 {
		t.Fatalf("resumed run differs from one process by %g", d)
	}
}

func TestFromEnv(t *testing.T) {
	for _, k := range []string{"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "GLOO_SOCKET_IFNAME", "DDGI_DIST_TIMEOUT", "DDGI_BUCKET_MB"} {
		t.Setenv(k, "")
	}
	if _, ok, err := FromEnv(); ok || err != nil {
		t.Fatalf("no variables: ok %v, err %v", ok, err)
	}
	t.Setenv("WORLD_SIZE", "2")
	t.Setenv("RANK", "1")
	if _, _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "MASTER_ADDR") {
		t.Fatalf("missing MASTER_ADDR: %v", err)
	}
	t.Setenv("MASTER_ADDR", "10.0.0.1")
	t.Setenv("MASTER_PORT", "29500")
	c, ok, err := FromEnv()
	if err != nil || !ok || c.Rank != 1 || c.Size != 2 || c.Port != 29500 {
		t.Fatalf("got %+v %v %v", c, ok, err)
	}
	if c.device().Host != "" {
		t.Fatalf("a remote master binds loopback: %+v", c.device())
	}
	// Without LOCAL_RANK every rank keeps the device it is given; with it a
	// bare "cuda" becomes that rank's GPU.
	if c.LocalRank != -1 || RankDevice("cuda", c) != "cuda" {
		t.Fatalf("no LOCAL_RANK: local rank %d, device %q", c.LocalRank, RankDevice("cuda", c))
	}
	t.Setenv("LOCAL_RANK", "3")
	if c, _, err = FromEnv(); err != nil || c.LocalRank != 3 {
		t.Fatalf("LOCAL_RANK=3: %+v %v", c, err)
	}
	for spec, want := range map[string]string{"cuda": "cuda:3", "cuda:1": "cuda:1", "cpu": "cpu"} {
		if got := RankDevice(spec, c); got != want {
			t.Errorf("--device %s on local rank 3: %q, want %q", spec, got, want)
		}
	}
	t.Setenv("LOCAL_RANK", "x")
	if _, _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "LOCAL_RANK") {
		t.Fatalf("LOCAL_RANK=x: %v", err)
	}
	t.Setenv("LOCAL_RANK", "")
	t.Setenv("RANK", "2")
	if _, _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "outside a world of 2") {
		t.Fatalf("rank 2 of 2: %v", err)
	}
	t.Setenv("RANK", "0")
	t.Setenv("DDGI_DIST_TIMEOUT", "soon")
	if _, _, err := FromEnv(); err == nil {
		t.Fatal("bad DDGI_DIST_TIMEOUT accepted")
	}
	t.Setenv("DDGI_DIST_TIMEOUT", "")
	for v, want := range map[string]float64{"0.5": 0.5, "-1": -1} {
		t.Setenv("DDGI_BUCKET_MB", v)
		if c, _, err := FromEnv(); err != nil || c.BucketMB != want {
			t.Errorf("DDGI_BUCKET_MB=%s: %v %v", v, c.BucketMB, err)
		}
	}
	for _, v := range []string{"0", "big"} {
		t.Setenv("DDGI_BUCKET_MB", v)
		if _, _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "DDGI_BUCKET_MB") {
			t.Errorf("DDGI_BUCKET_MB=%s: %v", v, err)
		}
	}
}
