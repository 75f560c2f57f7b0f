// Package cpuload picks torch's thread count from what else wants the CPU.
//
// With static OpenMP teams the slowest thread gates every parallel region,
// so a team of one thread per core collapses when another process takes a
// core (bench/engine on 2 cores beside two busy loops: 0.30 of the quiet
// throughput with 2 threads, 0.50–0.55 with 3; docs/engine.md). Adapt
// samples the other runnable tasks and moves the team between "one thread
// per core" (quiet), "one per free core" and "one more than the cores"
// (every core contended).
package cpuload

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Threads is the team size for cores CPUs when others runnable tasks
// (weighted by their CPU share, see niceWeight) compete for them: every
// core when nobody does, the free cores when some are free, one more than
// the cores when none is (measured best on 2 cores: 10–11.5 steps/s against
// 6.0 with one thread per core beside two busy loops).
func Threads(cores int, others float64) int {
	if cores < 1 {
		cores = 1
	}
	busy := int(math.Round(others))
	switch {
	case busy <= 0:
		return cores
	case busy < cores:
		return cores - busy
	default:
		return cores + 1
	}
}

// Policy smooths the samples: the target is computed from the mean of the
// last Window samples, and the team changes only when the same new target
// held for Hold consecutive samples (so a short burst, such as a compiler
// or a shell, does not resize the team back and forth).
type Policy struct {
	Cores  int
	Window int
	Hold   int

	samples []float64
	current int
	pending int
	streak  int
}

// NewPolicy starts at one thread per core.
func NewPolicy(cores int) *Policy {
	return &Policy{Cores: max(1, cores), Window: 10, Hold: 5, current: max(1, cores)}
}

// Observe adds a sample of the other runnable tasks and returns the team
// size to use now.
func (p *Policy) Observe(others float64) int {
	p.samples = append(p.samples, others)
	if len(p.samples) > p.Window {
		p.samples = p.samples[len(p.samples)-p.Window:]
	}
	var sum float64
	for _, s := range p.samples {
		sum += s
	}
	target := Threads(p.Cores, sum/float64(len(p.samples)))
	switch {
	case target == p.current:
		p.streak = 0
	case target == p.pending:
		p.streak++
	default:
		p.pending, p.streak = target, 1
	}
	if p.streak >= p.Hold {
		p.current, p.streak = target, 0
	}
	return p.current
}

// Current is the team size last returned.
func (p *Policy) Current() int { return p.current }

// niceWeight is a task's CPU share relative to a nice-0 task under Linux's
// CFS (1.25× per nice level): a busy loop at nice 10 takes about a tenth of
// a core from a nice-0 team, so it counts as 0.11 of a competitor.
func niceWeight(nice int) float64 { return math.Pow(1.25, float64(-nice)) }

// Sampler counts the runnable tasks of other processes.
type Sampler struct {
	Proc string // "/proc" unless a test says otherwise
	Self int    // this process's pid
	// ScanEvery is how often every task of the system is read while the
	// count of others stays the same (a scan costs 3.9 ms here, beside
	// ~150 tasks; Others without one 0.23 ms); between scans the running
	// count of /proc/loadavg is weighted by the last scan's mean nice
	// weight. A changed count rescans after a tenth of it.
	ScanEvery time.Duration

	lastScan  time.Time
	lastPlain int
	weight    float64 // weighted / plain count of the last scan's others
}

// NewSampler reads the running system.
func NewSampler() *Sampler { return &Sampler{Proc: "/proc", Self: os.Getpid(), ScanEvery: time.Second} }

// Others is the weighted count of runnable tasks (threads in state R) that
// belong to other processes, each weighted by niceWeight relative to this
// process's own nice level. /proc/loadavg's running count minus this
// process's runnable threads says how many there are; a scan of every
// task (at most once per ScanEvery) says how much they weigh.
func (s *Sampler) Others() (float64, error) {
	la, err := os.ReadFile(filepath.Join(s.Proc, "loadavg"))
	if err != nil {
		return 0, err
	}
	running, err := loadavgRunning(la)
	if err != nil {
		return 0, err
	}
	own, ownNice := s.ownRunnable()
	plain := running - own
	if plain <= 0 {
		return 0, nil
	}
	since := time.Since(s.lastScan)
	if s.lastScan.IsZero() || since >= s.ScanEvery || (plain != s.lastPlain && since >= s.ScanEvery/10) {
		weighted, n, err := s.scan(ownNice)
		if err != nil {
			return 0, err
		}
		s.lastScan, s.lastPlain = time.Now(), plain
		if n > 0 {
			s.weight = weighted / float64(n)
		} else {
			s.weight = 1
		}
		return weighted, nil
	}
	return float64(plain) * s.weight, nil
}

// scan reads every other process's tasks: the nice-weighted count of the
// runnable ones, and their plain count.
func (s *Sampler) scan(ownNice int) (weighted float64, n int, err error) {
	procs, err := os.ReadDir(s.Proc)
	if err != nil {
		return 0, 0, err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == s.Self {
			continue
		}
		tasks, err := os.ReadDir(filepath.Join(s.Proc, p.Name(), "task"))
		if err != nil {
			continue // the process ended meanwhile
		}
		for _, t := range tasks {
			st, err := os.ReadFile(filepath.Join(s.Proc, p.Name(), "task", t.Name(), "stat"))
			if err != nil {
				continue
			}
			if state, nice, ok := taskState(st); ok && state == 'R' {
				weighted += niceWeight(nice - ownNice)
				n++
			}
		}
	}
	return weighted, n, nil
}

// ownRunnable counts this process's runnable threads and reads its nice level.
func (s *Sampler) ownRunnable() (n, nice int) {
	dir := filepath.Join(s.Proc, strconv.Itoa(s.Self), "task")
	tasks, _ := os.ReadDir(dir)
	for _, t := range tasks {
		st, err := os.ReadFile(filepath.Join(dir, t.Name(), "stat"))
		if err != nil {
			continue
		}
		if state, ni, ok := taskState(st); ok {
			nice = ni
			if state == 'R' {
				n++
			}
		}
	}
	return n, nice
}

// loadavgRunning reads the "running/total" field of /proc/loadavg.
func loadavgRunning(b []byte) (int, error) {
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0, errBadLoadavg
	}
	r, _, ok := strings.Cut(f[3], "/")
	if !ok {
		return 0, errBadLoadavg
	}
	n, err := strconv.Atoi(r)
	if err != nil {
		return 0, errBadLoadavg
	}
	return n, nil
}

var errBadLoadavg = errors.New("cpuload: /proc/loadavg has no running/total field")

// taskState reads the state letter and the nice level of a
// /proc/PID/task/TID/stat line; the command name may hold spaces and
// parentheses, so the fields are counted after the last ')'.
func taskState(stat []byte) (state byte, nice int, ok bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	// After the name: state(3) ppid(4) … priority(18) nice(19).
	if len(f) < 17 || len(f[0]) != 1 {
		return 0, 0, false
	}
	nice, err := strconv.Atoi(f[16])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], nice, true
}

// Adapt samples every interval until ctx ends and calls set with the
// policy's team size whenever it changes. It returns at once, with set
// never called, where /proc cannot be read (not Linux).
func Adapt(ctx context.Context, cores int, interval time.Duration, set func(threads int)) {
	s := NewSampler()
	if _, err := s.Others(); err != nil {
		return
	}
	p := NewPolicy(cores)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		others, err := s.Others()
		if err != nil {
			continue
		}
		before := p.Current()
		if n := p.Observe(others); n != before {
			set(n)
		}
	}
}
