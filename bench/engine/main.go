// Command engine benchmarks ddgi's Go→libtorch engine against PyTorch from
// Python on the same small conv-net training step (4 × conv3×3 64ch +
// GroupNorm + SiLU, 32², batch 8, Adam), in one run, and prints steps/s of
// each, their ratio, the fraction of the CPU's peak FLOP rate reached, and
// the per-op overhead of a cgo call on a tiny tensor. With -load N it
// measures both engines again while N busy-loop processes it starts
// itself share the cores (the shared-workstation case), and prints the
// loaded ratio and each engine's loaded/quiet throughput.
//
// With -ranks N it also times the Go step as N data-parallel ranks of one
// thread each (ddgi train --nproc N).
//
//	go run ./bench/engine [-threads 2|0] [-steps 60] [-rounds 3] [-load 2] [-load-nice 0] [-ranks 2]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ddgi/internal/cpuload"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
)

type convNet struct {
	convs []*nn.Conv2d
	norms []*nn.GroupNorm
}

func newConvNet(s *nn.Store) *convNet {
	n := &convNet{}
	in := int64(3)
	for i := 0; i < 4; i++ {
		p := s.Root().Subf("%d", i)
		n.convs = append(n.convs, nn.NewConv2d(p.Sub("conv"), in, 64, 3, nn.Conv2dOpts{Padding: 1}))
		n.norms = append(n.norms, nn.NewGroupNorm(p.Sub("norm"), 8, 64))
		in = 64
	}
	return n
}

func (n *convNet) forward(x *torch.Tensor) *torch.Tensor {
	for i := range n.convs {
		x = n.norms[i].Forward(n.convs[i].Forward(x)).Silu()
	}
	return x
}

// flopsPerStep counts multiply-adds ×2 of the convolutions, forward and
// backward (≈3× forward); norms and activations are negligible.
func flopsPerStep() float64 {
	var f float64
	in := 3.0
	for i := 0; i < 4; i++ {
		f += 2 * 8 * 32 * 32 * 64 * in * 9
		in = 64
	}
	return 3 * f
}

func goSteps(steps, warm int) float64 {
	s := nn.NewStore(torch.CPU, 0)
	net := newConvNet(s)
	opt := optim.NewAdam(optim.DefaultAdam(1e-3))
	x := torch.Randn(torch.NewGenerator(0), []int64{8, 3, 32, 32}, torch.Float32, torch.CPU)
	torch.Persist(x)
	step := func() {
		sc := torch.NewScope()
		loss := net.forward(x).Square().MeanAll()
		sc.FreeExcept(loss) // let backward recycle forward buffers, as Python does
		loss.Backward()
		opt.Update(s.Trainable())
		sc.Close()
	}
	for i := 0; i < warm; i++ {
		step()
	}
	t0 := time.Now()
	for i := 0; i < steps; i++ {
		step()
	}
	return float64(steps) / time.Since(t0).Seconds()
}

func goOpMicros() float64 {
	x := torch.Ones([]int64{1}, torch.Float32, torch.CPU)
	torch.Persist(x)
	const n = 20000
	t0 := time.Now()
	for i := 0; i < n; i += 100 {
		torch.Scoped(func() {
			for j := 0; j < 100; j++ {
				x.AddScalar(1)
			}
		})
	}
	return float64(time.Since(t0).Microseconds()) / n
}

type peerResult struct {
	StepsPerS float64 `json:"steps_per_s"`
	OpUs      float64 `json:"op_us"`
}

func peer(python, script string, threads, steps, warm int) (peerResult, error) {
	cmd := exec.Command(python, script, strconv.Itoa(threads), strconv.Itoa(steps), strconv.Itoa(warm))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return peerResult{}, fmt.Errorf("PyTorch peer (%s %s): %w", python, script, err)
	}
	var r peerResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("PyTorch peer output %q: %w", out, err)
	}
	return r, nil
}

// peakGFLOPS estimates the FP32 peak: cores × GHz × FLOPs per cycle (two FMA
// units: 32 with AVX2, 64 with AVX-512).
func peakGFLOPS(threads int) (float64, string) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0, "unknown CPU"
	}
	defer f.Close()
	var mhz float64
	perCycle := 16.0
	model := "unknown CPU"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "cpu MHz":
			if mhz == 0 {
				mhz, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		case "model name":
			model = strings.TrimSpace(v)
		case "flags":
			fl := " " + v + " "
			if strings.Contains(fl, " avx512f ") {
				perCycle = 64
			} else if strings.Contains(fl, " avx2 ") && perCycle < 32 {
				perCycle = 32
			}
		}
	}
	return float64(threads) * mhz / 1000 * perCycle, model
}

// spin is a busy-loop process of -load: one thread that never sleeps.
func spin() {
	x := 0
	for {
		x++
	}
}

// startLoad starts n busy-loop copies of this program at the given nice
// level; stop kills them.
func startLoad(n, nice int) (stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var procs []*exec.Cmd
	stop = func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}
	for i := 0; i < n; i++ {
		c := exec.Command("nice", "-n", strconv.Itoa(nice), exe, "-spin")
		if err := c.Start(); err != nil {
			stop()
			return nil, err
		}
		procs = append(procs, c)
	}
	time.Sleep(200 * time.Millisecond) // let them reach their loop
	return stop, nil
}

// measurement is the best of rounds of each engine, alternating.
type measurement struct {
	goSteps, pySteps, rankSteps float64
	py                          peerResult
}

func measure(python, script string, threads, steps, rounds, ranks int) (measurement, error) {
	var m measurement
	for r := 0; r < rounds; r++ {
		if g := goSteps(steps, 5); g > m.goSteps {
			m.goSteps = g
		}
		if ranks > 1 {
			g, err := rankSteps(ranks, steps, 5)
			if err != nil {
				return m, err
			}
			m.rankSteps = max(m.rankSteps, g)
		}
		if python == "" {
			continue // -python "": the Go engine alone
		}
		p, err := peer(python, script, threads, steps, 5)
		if err != nil {
			return m, err
		}
		if p.StepsPerS > m.pySteps {
			m.pySteps, m.py = p.StepsPerS, p
		}
	}
	return m, nil
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-spin" {
		spin()
	}
	if len(os.Args) == 4 && os.Args[1] == "-rank-worker" {
		steps, _ := strconv.Atoi(os.Args[2])
		warm, _ := strconv.Atoi(os.Args[3])
		if err := rankWorker(steps, warm); err != nil {
			fmt.Fprintln(os.Stderr, "bench rank:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// One OS thread for every torch call: OpenMP keeps one warm thread team
	// per calling thread.
	runtime.LockOSThread()
	threads := flag.Int("threads", runtime.NumCPU(), "intra-op threads for both engines; 0: Go's team follows the free cores as ddgi's does without DDGI_THREADS (internal/cpuload), PyTorch gets one per core")
	steps := flag.Int("steps", 60, "timed steps per round")
	rounds := flag.Int("rounds", 3, "rounds, alternating Go and PyTorch; the best of each is kept")
	python := flag.String("python", "/usr/bin/python3", "Python with torch (Debian python3-torch); \"\" times the Go engine alone")
	peerMalloc := flag.Bool("peer-malloc", false, "give the PyTorch peer ddgi's glibc malloc settings too (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_)")
	load := flag.Int("load", 0, "then measure again beside this many busy-loop processes started here (0: quiet only)")
	loadNice := flag.Int("load-nice", 0, "nice level of the busy loops (a background training runs at 10)")
	ranks := flag.Int("ranks", 1, "also time the Go step as this many data-parallel ranks of one thread each (ddgi train --nproc: c10d/Gloo on loopback, batch split), quiet and under -load")
	flag.Parse()
	if *peerMalloc {
		os.Setenv("MALLOC_MMAP_THRESHOLD_", strconv.Itoa(torch.MallocMmapThreshold))
		os.Setenv("MALLOC_TRIM_THRESHOLD_", strconv.Itoa(torch.MallocTrimThreshold))
	}
	var team atomic.Int64 // Go's team size of the moment under -threads 0
	var teams sync.Map    // every team size used, for the report
	if *threads <= 0 {
		*threads = runtime.NumCPU()
		team.Store(int64(*threads))
		go cpuload.Adapt(context.Background(), *threads, 100*time.Millisecond, func(n int) {
			torch.SetTeamThreads(n)
			team.Store(int64(n))
		})
		go func() {
			for {
				teams.Store(team.Load(), true)
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	teamSizes := func() string {
		var ns []string
		teams.Range(func(k, _ any) bool { ns = append(ns, strconv.FormatInt(k.(int64), 10)); return true })
		teams.Clear()
		if len(ns) == 0 {
			return ""
		}
		sort.Strings(ns)
		return " (Go's team: " + strings.Join(ns, ", ") + " threads)"
	}
	torch.SetThreads(*threads)
	script := filepath.Join("bench", "engine", "peer.py")
	quiet, err := measure(*python, script, *threads, *steps, *rounds, *ranks)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	bestGo, bestPy, py := quiet.goSteps, quiet.pySteps, quiet.py
	peak, model := peakGFLOPS(*threads)
	gf := flopsPerStep() * bestGo / 1e9
	fmt.Printf("CPU: %s, %d threads%s, libtorch %s\n", model, *threads, teamSizes(), torch.Version())
	malloc := "tuned (torch.TuneMalloc)"
	if os.Getenv("DDGI_MALLOC") == "default" {
		malloc = "glibc defaults (DDGI_MALLOC=default)"
	}
	peerMallocNote := "glibc defaults"
	if *peerMalloc {
		peerMallocNote = "ddgi's settings (-peer-malloc)"
	}
	fmt.Printf("malloc: Go %s, PyTorch %s\n", malloc, peerMallocNote)
	fmt.Printf("OpenMP: GOMP_SPINCOUNT=%q OMP_WAIT_POLICY=%q (both engines)\n", os.Getenv("GOMP_SPINCOUNT"), os.Getenv("OMP_WAIT_POLICY"))
	fmt.Printf("conv-net training step (4×conv3×3 64ch+GroupNorm+SiLU, 32², batch 8, Adam):\n")
	fmt.Printf("  Go (ddgi/torch): %7.2f steps/s  (%.1f GFLOPS", bestGo, gf)
	if peak > 0 {
		fmt.Printf(", %.0f%% of the %.0f GFLOPS FP32 peak", 100*gf/peak, peak)
	}
	fmt.Printf(")\n  PyTorch (Python): %7.2f steps/s\n  ratio Go/PyTorch: %.2f\n", bestPy, bestGo/bestPy)
	fmt.Printf("per-op overhead, one-element add: Go %.2f µs, PyTorch %.2f µs\n", goOpMicros(), py.OpUs)
	if *ranks > 1 {
		fmt.Printf("  Go, %d ranks × 1 thread: %7.2f steps/s  (%.2f of Go in one process; ratio to PyTorch %.2f)\n", *ranks, quiet.rankSteps, quiet.rankSteps/bestGo, quiet.rankSteps/bestPy)
	}
	if *load <= 0 {
		return
	}
	stop, err := startLoad(*load, *loadNice)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: starting the load:", err)
		os.Exit(1)
	}
	loaded, err := measure(*python, script, *threads, *steps, *rounds, *ranks)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Printf("beside %d busy-loop processes at nice %d%s:\n", *load, *loadNice, teamSizes())
	fmt.Printf("  Go (ddgi/torch): %7.2f steps/s  (%.2f of quiet)\n", loaded.goSteps, loaded.goSteps/bestGo)
	fmt.Printf("  PyTorch (Python): %7.2f steps/s  (%.2f of quiet)\n", loaded.pySteps, loaded.pySteps/bestPy)
	fmt.Printf("  ratio Go/PyTorch: %.2f\n", loaded.goSteps/loaded.pySteps)
	if *ranks > 1 {
		fmt.Printf("  Go, %d ranks × 1 thread: %7.2f steps/s  (%.2f of its quiet rate, %.2f of one process's quiet rate; ratio to PyTorch %.2f)\n",
			*ranks, loaded.rankSteps, loaded.rankSteps/quiet.rankSteps, loaded.rankSteps/bestGo, loaded.rankSteps/loaded.pySteps)
	}
}
