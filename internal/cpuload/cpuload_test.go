package cpuload

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestThreadsFollowTheFreeCores(t *testing.T) {
	for _, c := range []struct {
		cores  int
		others float64
		want   int
	}{
		{2, 0, 2}, {2, 0.3, 2}, {2, 1, 1}, {2, 2, 3}, {2, 5, 3},
		{16, 4, 12}, {16, 15.6, 17}, {1, 1, 2}, {1, 0, 1}, {0, 0, 1},
	} {
		if got := Threads(c.cores, c.others); got != c.want {
			t.Errorf("Threads(%d cores, %.1f others) = %d, want %d", c.cores, c.others, got, c.want)
		}
	}
}

func TestPolicyIgnoresBurstsAndFollowsLastingLoad(t *testing.T) {
	p := NewPolicy(2)
	for i := 0; i < 20; i++ {
		p.Observe(0)
	}
	p.Observe(3) // a compiler starting and ending
	p.Observe(0)
	for i := 0; i < 10; i++ {
		if n := p.Observe(0); n != 2 {
			t.Fatalf("a one-sample burst moved the team to %d", n)
		}
	}
	var n, after int
	for i := 1; i <= 20 && n != 3; i++ {
		n, after = p.Observe(2), i
	}
	if n != 3 || after > 15 {
		t.Fatalf("two lasting competitors: team %d after %d samples, want 3 within 15", n, after)
	}
	for i := 0; i < 30; i++ {
		n = p.Observe(0)
	}
	if n != 2 {
		t.Fatalf("quiet again: team %d, want 2", n)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func stat(pid, name string, state byte, nice int) string {
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime priority nice num_threads …
	return pid + " (" + name + ") " + string(state) + " 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 " +
		strconv.Itoa(nice) + " 1 0 0 0 0\n"
}

func TestSamplerWeighsOtherRunnableTasksByNice(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "loadavg"), "2.00 1.00 0.50 4/120 999\n")
	writeFile(t, filepath.Join(dir, "100/task/100/stat"), stat("100", "ddgi", 'R', 0))
	writeFile(t, filepath.Join(dir, "100/task/101/stat"), stat("101", "ddgi", 'S', 0))
	writeFile(t, filepath.Join(dir, "200/task/200/stat"), stat("200", "a (busy) loop", 'R', 0))
	writeFile(t, filepath.Join(dir, "300/task/300/stat"), stat("300", "train", 'R', 10))
	writeFile(t, filepath.Join(dir, "300/task/301/stat"), stat("301", "train", 'S', 10))
	writeFile(t, filepath.Join(dir, "400/task/400/stat"), stat("400", "idle", 'S', 0))
	s := &Sampler{Proc: dir, Self: 100}
	got, err := s.Others()
	if err != nil {
		t.Fatal(err)
	}
	want := 1 + math.Pow(1.25, -10)
	if math.Abs(got-want) > 1e-9 {
		t.Fatalf("others = %.4f, want %.4f (one nice-0 busy task, one at nice 10)", got, want)
	}
	// Only this process runs: no scan, nobody else.
	writeFile(t, filepath.Join(dir, "loadavg"), "1.00 1.00 0.50 1/120 999\n")
	if got, err := s.Others(); err != nil || got != 0 {
		t.Fatalf("alone: others = %v, %v", got, err)
	}
	writeFile(t, filepath.Join(dir, "loadavg"), "garbage\n")
	if _, err := s.Others(); err == nil {
		t.Fatal("a malformed /proc/loadavg was accepted")
	}
}

func meanOthers(t *testing.T, s *Sampler) float64 {
	var sum float64
	const n = 20
	for i := 0; i < n; i++ {
		v, err := s.Others()
		if err != nil {
			t.Fatal(err)
		}
		sum += v
		time.Sleep(25 * time.Millisecond)
	}
	return sum / n
}

// Two busy loops started here must show up as about two competitors on
// the real /proc, whatever else the machine runs.
func TestSamplerSeesBusyProcesses(t *testing.T) {
	if _, err := os.Stat("/proc/loadavg"); err != nil {
		t.Skip("no /proc/loadavg on this system")
	}
	s := NewSampler()
	before := meanOthers(t, s)
	var procs []*exec.Cmd
	for i := 0; i < 2; i++ {
		c := exec.Command("/bin/sh", "-c", "while :; do :; done")
		if err := c.Start(); err != nil {
			t.Skip("cannot start a busy loop:", err)
		}
		procs = append(procs, c)
	}
	defer func() {
		for _, c := range procs {
			c.Process.Kill()
			c.Wait()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	after := meanOthers(t, s)
	if after-before < 1.2 {
		t.Fatalf("others %.2f before, %.2f beside two busy loops; want a rise of about 2", before, after)
	}
}

// BenchmarkOthersBusy is one sample's cost while another process runs (the
// full /proc scan); Adapt takes ten a second.
func BenchmarkOthersBusy(b *testing.B) {
	c := exec.Command("/bin/sh", "-c", "while :; do :; done")
	if err := c.Start(); err != nil {
		b.Skip(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	s := NewSampler()
	for i := 0; i < b.N; i++ {
		if _, err := s.Others(); err != nil {
			b.Fatal(err)
		}
	}
}
