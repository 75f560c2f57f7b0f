package torch

import (
	"errors"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestRoundTripValues(t *testing.T) {
	Scoped(func() {
		x := FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
		if got := x.Shape(); len(got) != 2 || got[0] != 2 || got[1] != 3 {
			t.Fatalf("shape %v", got)
		}
		y := x.MulScalar(2).AddScalar(1).Sum([]int64{1}, false).Float32s()
		if y[0] != 15 || y[1] != 33 {
			t.Fatalf("sum rows: %v", y)
		}
		if v := x.MeanAll().Item(); v != 3.5 {
			t.Fatalf("mean %v", v)
		}
		i := FromInt64([]int64{3, 1, 2}, 3)
		if got := i.Argmax(0, false).Item(); got != 0 {
			t.Fatalf("argmax %v", got)
		}
		if got := x.To(Float16).To(Float64).Float64s(); got[5] != 6 {
			t.Fatalf("fp16 round trip %v", got)
		}
	})
}

func TestSeededGeneratorIsDeterministic(t *testing.T) {
	Scoped(func() {
		a := Randn(NewGenerator(42), []int64{16}, Float32, CPU).Float32s()
		b := Randn(NewGenerator(42), []int64{16}, Float32, CPU).Float32s()
		c := Randn(NewGenerator(43), []int64{16}, Float32, CPU).Float32s()
		for i := range a {
			if a[i] != b[i] {
				t.Fatal("same seed, different numbers")
			}
		}
		if a[0] == c[0] && a[1] == c[1] {
			t.Fatal("different seeds gave the same numbers")
		}
	})
}

func TestBadInputsAreErrorsNamingTheOp(t *testing.T) {
	cases := []struct {
		op string
		f  func()
	}{
		{"matmul", func() { Ones([]int64{2, 3}, Float32, CPU).Matmul(Ones([]int64{2, 3}, Float32, CPU)) }},
		{"add", func() { Ones([]int64{2, 3}, Float32, CPU).Add(Ones([]int64{4}, Float32, CPU)) }},
		{"conv2d", func() {
			Conv2d(Ones([]int64{1, 3, 8, 8}, Float32, CPU), Ones([]int64{4, 2, 3, 3}, Float32, CPU), nil, ConvOpts{})
		}},
		{"reshape", func() { Ones([]int64{2, 3}, Float32, CPU).Reshape(4) }},
		{"cat", func() { Cat([]*Tensor{Ones([]int64{2, 3}, Float32, CPU), Ones([]int64{2, 4}, Float32, CPU)}, 0) }},
		{"from_bytes", func() { FromFloat32([]float32{1, 2, 3}, 2, 2) }},
		{"item", func() { Ones([]int64{2}, Float32, CPU).Item() }},
		{"backward", func() { Ones([]int64{2}, Float32, CPU).Backward() }},
		{"zeros", func() { Zeros([]int64{2}, Float32, CUDA(0)) }},
		{"cross_entropy", func() {
			CrossEntropy(Ones([]int64{2, 3}, Float32, CPU), FromInt64([]int64{0, 7}, 2), nil, -100, 0, ReduceMean)
		}},
	}
	for _, c := range cases {
		err := Try(func() { Scoped(c.f) })
		var te *Error
		if !errors.As(err, &te) {
			t.Errorf("%s: want *Error, got %v", c.op, err)
			continue
		}
		if te.Op != c.op || te.Msg == "" || strings.Contains(te.Msg, "\n") {
			t.Errorf("%s: got op %q msg %q", c.op, te.Op, te.Msg)
		}
	}
}

func TestUseAfterScopeCloseIsAnError(t *testing.T) {
	var x *Tensor
	Scoped(func() { x = Ones([]int64{2}, Float32, CPU) })
	err := Try(func() { x.AddScalar(1) })
	if err == nil || !strings.Contains(err.Error(), "freed tensor") {
		t.Fatalf("want freed-tensor error, got %v", err)
	}
}

func TestScopesFreeTemporariesAndKeep(t *testing.T) {
	// LiveDelta pauses the GC so finalizers of other tests' tensors
	// cannot move the counts below.
	LiveDelta(func() {
		before := LiveTensors()
		outer := NewScope()
		var kept *Tensor
		Scoped(func() {
			a := Ones([]int64{4}, Float32, CPU)
			b := a.MulScalar(3).AddScalar(1)
			kept = b.Exp()
			inner := NewScope()
			inner.Keep(kept) // no-op: kept belongs to the Scoped scope
			inner.Close()
			s := current
			s.Keep(kept)
		})
		if kept.Float32s()[0] == 0 {
			t.Fatal("kept tensor lost its value")
		}
		if got := LiveTensors() - before; got != 1 {
			t.Fatalf("want 1 live tensor (kept, owned by outer), got %d", got)
		}
		outer.Close()
		if got := LiveTensors() - before; got != 0 {
			t.Fatalf("outer scope leaked %d tensors", got)
		}
		// Closing an outer scope also closes forgotten inner ones.
		o := NewScope()
		NewScope()
		Ones([]int64{1}, Float32, CPU)
		o.Close()
		if current != nil || LiveTensors() != before {
			t.Fatal("outer Close did not unwind inner scope")
		}
	})
}

func TestNoGradStopsRecording(t *testing.T) {
	Scoped(func() {
		w := Ones([]int64{3}, Float32, CPU).SetRequiresGrad(true)
		var y *Tensor
		NoGrad(func() { y = w.MulScalar(2) })
		if y.RequiresGrad() {
			t.Fatal("op under NoGrad requires grad")
		}
		if !GradEnabled() {
			t.Fatal("grad mode not restored")
		}
		z := w.MulScalar(2).SumAll()
		z.Backward()
		if g := w.Grad().Float32s(); g[0] != 2 {
			t.Fatalf("grad %v", g)
		}
	})
}

func rssKB(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.Atoi(f[1])
	return pages * os.Getpagesize() / 1024
}

// TestScopedLoopKeepsRSSFlat runs 10,000 small training steps and checks
// that resident memory stops growing once the allocator is warm.
func TestScopedLoopKeepsRSSFlat(t *testing.T) {
	steps := 10000
	if testing.Short() {
		steps = 2000
	}
	g := NewGenerator(1)
	w := Randn(g, []int64{8, 4, 3, 3}, Float32, CPU).MulScalar(0.1).SetRequiresGrad(true)
	x := Randn(g, []int64{2, 4, 16, 16}, Float32, CPU)
	Persist(w, x)
	step := func() {
		s := NewScope()
		defer s.Close()
		loss := Conv2d(x, w, nil, Same(1, 1)).Silu().Square().MeanAll()
		loss.Backward()
		NoGrad(func() { w.AddIn(w.Grad(), -1e-3) })
		w.ZeroGrad()
	}
	for i := 0; i < steps/10; i++ {
		step()
	}
	live0, rss0 := LiveTensors(), rssKB(t)
	for i := 0; i < steps; i++ {
		step()
	}
	live1, rss1 := LiveTensors(), rssKB(t)
	if live1 > live0 {
		t.Fatalf("live tensors grew from %d to %d", live0, live1)
	}
	if grow := rss1 - rss0; grow > 20*1024 {
		t.Fatalf("RSS grew by %d KiB over %d steps (%d → %d)", grow, steps, rss0, rss1)
	}
	t.Logf("RSS %d → %d KiB over %d steps", rss0, rss1, steps)
}

func TestParseDevice(t *testing.T) {
	if d, err := ParseDevice("cpu"); err != nil || d != CPU {
		t.Fatalf("cpu: %v %v", d, err)
	}
	if _, err := ParseDevice("tpu"); err == nil {
		t.Fatal("tpu accepted")
	}
	if !CUDAAvailable() {
		_, err := ParseDevice("cuda")
		if err == nil || !strings.Contains(err.Error(), "no CUDA") {
			t.Fatalf("cuda without CUDA: %v", err)
		}
	}
}

func TestThreadsSetting(t *testing.T) {
	old := Threads()
	defer SetThreads(old)
	SetThreads(1)
	if Threads() != 1 {
		t.Fatalf("threads = %d", Threads())
	}
}

// The team size may change from another goroutine while ops run (as
// cpuload.Adapt does): the ops keep their results and later calls use the
// new size.
func TestSetTeamThreadsWhileOpsRun(t *testing.T) {
	old := Threads()
	defer SetThreads(old)
	g := NewGenerator(1)
	a := Randn(g, []int64{96, 96}, Float32, CPU)
	Persist(a)
	want := a.Matmul(a).Float32s()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			SetTeamThreads(1 + i%3)
		}
		SetTeamThreads(3)
	}()
	for i := 0; i < 50; i++ {
		Scoped(func() {
			got := a.Matmul(a).Float32s()
			for k := range want {
				if math.Abs(float64(got[k]-want[k])) > 1e-3 {
					t.Fatalf("step %d: element %d = %g, want %g", i, k, got[k], want[k])
				}
			}
		})
	}
	<-done
	if Threads() != 3 {
		t.Fatalf("threads = %d after SetTeamThreads(3)", Threads())
	}
}

func TestFreeExceptKeepsGraphAndChosenTensors(t *testing.T) {
	// LiveDelta pauses the GC so finalizers of other tests' tensors
	// cannot move the counts below.
	LiveDelta(func() {
		before := LiveTensors()
		w := Ones([]int64{3}, Float32, CPU).SetRequiresGrad(true)
		Persist(w)
		s := NewScope()
		h := w.MulScalar(2).Exp()
		loss := h.SumAll()
		s.FreeExcept(loss)
		if err := Try(func() { h.AddScalar(1) }); err == nil {
			t.Fatal("freed tensor still usable")
		}
		loss.Backward() // the graph survives its Go handles
		if g := w.Grad().Float32s()[0]; math.Abs(float64(g)-2*math.Exp(2)) > 1e-4 {
			t.Fatalf("grad %v", g)
		}
		s.Close()
		w.Free()
		if LiveTensors() != before {
			t.Fatalf("leaked %d tensors", LiveTensors()-before)
		}
	})
}

// TestTuneMallocAccepted checks glibc takes the settings that keep freed
// tensor buffers in the heap (init applies them; a rejected value would
// silently bring back a page fault per buffer per step).
func TestTuneMallocAccepted(t *testing.T) {
	if !TuneMalloc() {
		t.Fatal("glibc rejected the mallopt settings")
	}
}

// TestHugePages: with the huge-page allocator in place for buffers from
// 1 MiB, tensors on either side of the line compute what they did, are
// freed (a resize reallocates through it too), and the threshold can be
// lifted again.
func TestHugePages(t *testing.T) {
	defer HugePages(MallocMmapThreshold)
	if !HugePages(1 << 20) {
		t.Fatal("the huge-page allocator is not libtorch's CPU allocator")
	}
	g := NewGenerator(7)
	for _, n := range []int64{1000, 1 << 18, 3<<20 + 5} { // 4 KB, 1 MiB, just over 12 MiB
		Scoped(func() {
			x := Randn(g, []int64{n}, Float32, CPU)
			vals := x.Float32s()
			var want float64
			for _, v := range vals {
				want += float64(v) * 2
			}
			got := x.MulScalar(2).SumAll().Item()
			if math.Abs(got-want) > 1e-3*math.Max(1, math.Abs(want)) {
				t.Errorf("%d floats: sum %g, want %g", n, got, want)
			}
			y := Cat([]*Tensor{x, x}, 0) // a fresh buffer of twice the size
			if d := y.Narrow(0, n, n).Sub(x).Abs().MaxAll().Item(); d != 0 {
				t.Errorf("%d floats: copy differs by %g", n, d)
			}
		})
	}
	// Freed huge-page buffers go back to the kernel: 30 buffers of 64 MiB
	// one after another leave resident memory where one left it.
	big := func() { Scoped(func() { Ones([]int64{16 << 20}, Float32, CPU).SumAll().Item() }) }
	big()
	rss0 := rssKB(t)
	for i := 0; i < 30; i++ {
		big()
	}
	if grow := rssKB(t) - rss0; grow > 32*1024 {
		t.Errorf("RSS grew by %d KiB over 30 freed 64 MiB buffers", grow)
	}
	if !HugePages(0) {
		t.Fatal("HugePages(0) dropped the allocator")
	}
	Scoped(func() {
		if s := Ones([]int64{1 << 22}, Float32, CPU).SumAll().Item(); s != 1<<22 {
			t.Errorf("sum of ones after HugePages(0): %g", s)
		}
	})
}

// TestHugeCache: a freed huge-page buffer is kept for the next tensor of
// its size, the cache keeps no more than its bound (the longest-kept
// buffer goes first), a kept buffer serves up to twice its size and no
// more, and reused memory computes like fresh.
func TestHugeCache(t *testing.T) {
	defer HugeCache(DefaultHugeCache)
	defer HugePages(MallocMmapThreshold)
	if !HugePages(1 << 20) {
		t.Fatal("the huge-page allocator is not libtorch's CPU allocator")
	}
	runtime.GC() // earlier tests' tensors freed now, not inside the counts
	const mb = 1 << 20
	alloc := func(floats int64) *Tensor { return Ones([]int64{floats}, Float32, CPU) }
	HugeCache(0)
	HugeCache(20 * mb)
	x := alloc(2 * mb) // 8 MiB
	x.Free()
	if c := HugeCached(); c != 8*mb {
		t.Fatalf("after freeing 8 MiB: %d bytes kept", c)
	}
	y := alloc(2 * mb)
	if c := HugeCached(); c != 0 {
		t.Errorf("an 8 MiB tensor did not take the kept 8 MiB buffer: %d kept", c)
	}
	if s := y.SumAll().Item(); s != 2*mb {
		t.Errorf("sum of ones in a reused buffer: %g", s)
	}
	y.Free()
	z := alloc(5 * mb) // 20 MiB: over twice the kept 8 MiB, a new mapping
	if c := HugeCached(); c != 8*mb {
		t.Errorf("a 20 MiB tensor changed the kept bytes to %d", c)
	}
	z.Free() // 28 MiB would exceed 20: the older 8 MiB goes
	if c := HugeCached(); c != 20*mb {
		t.Errorf("over the bound: %d bytes kept, want the newest 20 MiB", c)
	}
	w := alloc(3 * mb) // 12 MiB fits in the kept 20 MiB (at most twice)
	if c := HugeCached(); c != 0 {
		t.Errorf("a 12 MiB tensor did not take the kept 20 MiB buffer: %d kept", c)
	}
	w.Free()
	HugeCache(0)
	if c := HugeCached(); c != 0 {
		t.Errorf("HugeCache(0) kept %d bytes", c)
	}
}

// TestConcurrentlyMatchesSequential: work run side by side gives the same
// tensors as run in turn, inherits the caller's grad mode, records
// autograd graphs that backpropagate, and re-raises a piece's panic.
func TestConcurrentlyMatchesSequential(t *testing.T) {
	Scoped(func() {
		g := NewGenerator(4)
		a := Randn(g, []int64{64, 64}, Float32, CPU)
		b := Randn(g, []int64{64, 64}, Float32, CPU)
		want1, want2 := a.Matmul(b).Tanh(), b.Matmul(a).Sigmoid()
		var got1, got2 *Tensor
		Concurrently(func() { got1 = a.Matmul(b).Tanh() }, func() { got2 = b.Matmul(a).Sigmoid() })
		if d := got1.Sub(want1).Abs().MaxAll().Item() + got2.Sub(want2).Abs().MaxAll().Item(); d > 1e-6 {
			t.Fatalf("concurrent results differ by %g", d)
		}
		NoGrad(func() {
			x := a.Detach().SetRequiresGrad(true)
			Concurrently(func() { got1 = x.MulScalar(2) })
		})
		if got1.RequiresGrad() {
			t.Fatal("work under NoGrad recorded a graph")
		}
		x := a.Detach().SetRequiresGrad(true)
		Concurrently(func() { got1 = x.Mul(x).SumAll() }, func() { got2 = x.MulScalar(3).SumAll() })
		got1.Add(got2).Backward()
		if d := x.Grad().Sub(x.Detach().MulScalar(2).AddScalar(3)).Abs().MaxAll().Item(); d > 1e-5 {
			t.Fatalf("gradient through concurrent pieces off by %g", d)
		}
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("a panicking piece did not reach the caller")
			}
		}()
		Concurrently(func() {}, func() { a.Matmul(Zeros([]int64{3, 3}, Float32, CPU)) })
	})
}

// TestGeneratorStateResumes: a generator restored from State draws what
// the original draws next, and a malformed state is an error.
func TestGeneratorStateResumes(t *testing.T) {
	Scoped(func() {
		g := NewGenerator(7)
		Randn(g, []int64{5}, Float32, CPU) // leave a cached normal sample behind
		st := g.State()
		want := Randn(g, []int64{9}, Float32, CPU).Float32s()
		h := NewGenerator(99)
		if err := h.SetState(st); err != nil {
			t.Fatal(err)
		}
		got := Randn(h, []int64{9}, Float32, CPU).Float32s()
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("restored generator drew %v, want %v", got, want)
			}
		}
		if err := h.SetState(st[:10]); err == nil {
			t.Fatal("a truncated state was accepted")
		}
	})
}

// TestUnscopedTemporariesSurviveGC: a tensor outside any scope is freed by
// its finalizer, and Go may run it as soon as the tensor's last use has
// handed its handle to C — while the C call still reads it. Chains of
// unscoped temporaries under a collector running all the time must neither
// crash nor compute garbage (every C call keeps its operands alive).
func TestUnscopedTemporariesSurviveGC(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	defer func() { close(stop); <-done }()
	want := Randn(NewGenerator(7), []int64{64, 1024}, Float32, CPU).MulScalar(2).AddScalar(1).SumAll().Item()
	for i := 0; i < 100; i++ {
		got := Randn(NewGenerator(7), []int64{64, 1024}, Float32, CPU).MulScalar(2).AddScalar(1).SumAll().Item()
		if got != want {
			t.Fatalf("round %d: %g, want %g", i, got, want)
		}
		b := FromBytes(make([]byte, 4<<20), []int64{1 << 20}, Float32, CPU).AddScalar(float64(i)).Bytes()
		if len(b) != 4<<20 {
			t.Fatalf("round %d: %d bytes", i, len(b))
		}
	}
}

// TestSoftmaxInPlace: SoftmaxIn leaves in t what Softmax returns, in fp32
// and bf16, and refuses a tensor autograd records with an error.
func TestSoftmaxInPlace(t *testing.T) {
	Scoped(func() {
		for _, dt := range []DType{Float32, BFloat16} {
			x := Randn(NewGenerator(3), []int64{2, 3, 5, 7}, Float32, CPU).MulScalar(4).To(dt)
			want := x.Softmax(-1)
			x.SoftmaxIn(-1)
			if d := x.Sub(want).Abs().MaxAll().Item(); d != 0 {
				t.Errorf("%v: in place differs from Softmax by %g", dt, d)
			}
		}
		x := Randn(NewGenerator(4), []int64{3, 4}, Float32, CPU)
		x.SetRequiresGrad(true)
		if err := Try(func() { x.MulScalar(2).SoftmaxIn(-1) }); err == nil {
			t.Error("SoftmaxIn on a recorded tensor: no error")
		}
	})
}
