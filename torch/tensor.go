// Package torch is ddgi's tensor engine: Go tensors with autograd over
// libtorch, reached through a thin C shim (shim.h). Ops panic with *Error on
// bad input (wrong shapes, mismatched devices); API boundaries turn those
// panics into ordinary errors with Try.
//
// Memory: libtorch memory is invisible to Go's garbage collector, so every
// tensor is owned by the innermost open Scope at its creation and freed when
// that scope closes. Tensors made outside any scope (parameters, long-lived
// state) live until Free or, as a safety net, until the GC finalizes them.
//
//	s := torch.NewScope()
//	loss := model.Loss(batch) // temporaries land in s
//	loss.Backward()
//	s.Close() // frees them all
package torch

/*
#cgo CXXFLAGS: -std=c++17 -O2 -I/usr/include/torch/csrc/api/include -Wno-deprecated-declarations -Wno-unused-parameter -fopenmp
#cgo LDFLAGS: -ltorch -ltorch_cpu -lc10 -lgomp
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Error is a failed tensor op: the op's name and libtorch's message.
type Error struct {
	Op  string
	Msg string
}

func (e *Error) Error() string { return "torch: " + e.Op + ": " + e.Msg }

// check panics with *Error when the shim reported a failure.
func check(op string, e C.terr) {
	if e != nil {
		msg := C.GoString(e)
		C.free(unsafe.Pointer(e))
		if os.Getenv("DDGI_DEBUG_STACK") != "" {
			debug.PrintStack()
		}
		panic(&Error{Op: op, Msg: firstLine(msg)})
	}
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

// Try runs f and returns any *Error it panicked with as an error. Other
// panics propagate: they are bugs, not bad input.
func Try(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if te, ok := r.(*Error); ok {
				err = te
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}

// Tensor is a handle to a libtorch tensor.
type Tensor struct {
	h         C.tt
	scope     *Scope
	finalized bool // a GC finalizer is set (only tensors outside every scope need one)
}

// Scope owns the tensors created while it is the innermost open scope.
// Scopes nest; open and close them from one goroutine at a time.
type Scope struct {
	parent  *Scope
	tensors []*Tensor
	closed  bool
}

var (
	scopeMu sync.Mutex
	current *Scope
)

// NewScope opens a scope that collects every tensor created until Close.
func NewScope() *Scope {
	scopeMu.Lock()
	defer scopeMu.Unlock()
	s := &Scope{parent: current}
	current = s
	return s
}

// Close frees every tensor the scope still owns and reopens its parent.
// Closing an outer scope first also closes the scopes inside it.
func (s *Scope) Close() {
	scopeMu.Lock()
	defer scopeMu.Unlock()
	if s.closed {
		return
	}
	for c := current; c != nil && c != s; c = c.parent {
		c.freeAll()
	}
	s.freeAll()
	current = s.parent
}

func (s *Scope) freeAll() {
	for _, t := range s.tensors {
		if t.scope == s {
			t.release()
		}
	}
	s.tensors = nil
	s.closed = true
}

// FreeExcept frees every tensor s owns except keep, without closing s.
// Call it between forward and backward: autograd keeps what it saved, and
// the forward outputs' memory returns to the allocator as backward runs
// (as in Python, where they die with their last reference), which makes
// backward measurably faster.
func (s *Scope) FreeExcept(keep ...*Tensor) {
	scopeMu.Lock()
	defer scopeMu.Unlock()
	kept := s.tensors[:0]
	for _, t := range s.tensors {
		if t.scope != s {
			continue
		}
		isKept := false
		for _, k := range keep {
			if k == t {
				isKept = true
				break
			}
		}
		if isKept {
			kept = append(kept, t)
		} else {
			t.release()
		}
	}
	for i := len(kept); i < len(s.tensors); i++ {
		s.tensors[i] = nil
	}
	s.tensors = kept
}

// Keep moves tensors from s to its parent scope, or makes them long-lived
// when s is outermost, so they survive s.Close.
func (s *Scope) Keep(ts ...*Tensor) {
	scopeMu.Lock()
	defer scopeMu.Unlock()
	for _, t := range ts {
		if t == nil || t.scope != s {
			continue
		}
		t.scope = s.parent
		if s.parent != nil {
			s.parent.tensors = append(s.parent.tensors, t)
		} else {
			t.setFinalizer()
		}
	}
}

// Scoped runs f inside a fresh scope and frees its temporaries afterwards.
func Scoped(f func()) {
	s := NewScope()
	defer s.Close()
	f()
}

// Persist takes tensors out of any scope: they live until Free or GC.
func Persist(ts ...*Tensor) {
	scopeMu.Lock()
	defer scopeMu.Unlock()
	for _, t := range ts {
		if t != nil {
			t.scope = nil
			t.setFinalizer()
		}
	}
}

// LiveTensors counts handles not yet freed (for leak tests). The GC's
// finalizers free unowned tensors at any moment, so a leak test should count
// with LiveDelta, which holds them off.
func LiveTensors() int64 { return live.Load() }

// LiveDelta runs f and returns how many tensors it left alive. It first lets
// pending finalizers drain and then pauses the GC while f runs, so tensors
// that other code dropped earlier cannot be finalized inside the count (a
// test once saw −444 that way).
func LiveDelta(f func()) int64 {
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	for stable, last := 0, int64(-1); stable < 3; {
		runtime.GC()
		time.Sleep(2 * time.Millisecond) // finalizers run on their own goroutine
		if n := live.Load(); n == last {
			stable++
		} else {
			stable, last = 0, n
		}
	}
	before := live.Load()
	f()
	return live.Load() - before
}

var live atomic.Int64

func wrap(h C.tt) *Tensor {
	if h == nil {
		return nil
	}
	t := &Tensor{h: h}
	scopeMu.Lock()
	if current != nil {
		t.scope = current
		current.tensors = append(current.tensors, t)
	} else {
		t.setFinalizer()
	}
	scopeMu.Unlock()
	live.Add(1)
	return t
}

// setFinalizer arms the GC safety net once the tensor belongs to no scope.
// Scoped tensors skip it: the scope frees them, and a finalizer costs about
// 1 µs per op (measured), a third of an op's overhead. Call with scopeMu held.
func (t *Tensor) setFinalizer() {
	if !t.finalized && t.h != nil {
		t.finalized = true
		runtime.SetFinalizer(t, (*Tensor).release)
	}
}

// release frees the libtorch handle once.
func (t *Tensor) release() {
	if t.h == nil {
		return
	}
	C.ts_free(t.h)
	t.h = nil
	live.Add(-1)
}

// Free releases the tensor now. Using it afterwards panics with *Error.
func (t *Tensor) Free() {
	scopeMu.Lock()
	t.scope = nil
	scopeMu.Unlock()
	t.release()
}

// ptr returns the handle, panicking with a clear error after Free or Close.
func (t *Tensor) ptr(op string) C.tt {
	if t == nil {
		panic(&Error{Op: op, Msg: "nil tensor"})
	}
	if t.h == nil {
		panic(&Error{Op: op, Msg: "use of a freed tensor (its scope was closed; Keep it or Persist it)"})
	}
	return t.h
}

// optPtr is ptr for optional inputs such as a missing bias.
func optPtr(op string, t *Tensor) C.tt {
	if t == nil {
		return nil
	}
	return t.ptr(op)
}

// DType is a tensor element type.
type DType int

const (
	Float32 DType = iota
	Float64
	Float16
	BFloat16
	Int64
	Int32
	Uint8
	Bool
	Int8
	Int16
)

var dtypeNames = [...]string{"float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool", "int8", "int16"}

func (d DType) String() string {
	if d >= 0 && int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return "dtype(" + strconv.Itoa(int(d)) + ")"
}

// Size is the element size in bytes.
func (d DType) Size() int {
	switch d {
	case Float64, Int64:
		return 8
	case Float32, Int32:
		return 4
	case Float16, BFloat16, Int16:
		return 2
	}
	return 1
}

// Device is where a tensor lives: CPU or a CUDA device index.
type Device int

// CPU is the host device.
const CPU Device = -1

// Meta is libtorch's shape-only device: tensors there have shapes and
// dtypes but no storage, and mixing them with CPU tensors fails as mixing
// CPU and CUDA does. Tests use it as a stand-in GPU to prove that every
// tensor of a path is created on the device it was asked for.
const Meta Device = -2

// CUDA returns the i-th CUDA device.
func CUDA(i int) Device { return Device(i) }

func (d Device) String() string {
	switch {
	case d == Meta:
		return "meta"
	case d < 0:
		return "cpu"
	}
	return "cuda:" + strconv.Itoa(int(d))
}

// IsCUDA reports whether d is a GPU.
func (d Device) IsCUDA() bool { return d >= 0 }

// CUDAAvailable reports whether the linked libtorch was built with CUDA and
// sees a GPU.
func CUDAAvailable() bool { return C.ts_cuda_available() != 0 }

// ParseDevice reads "cpu", "cuda" or "cuda:N" and checks it exists.
func ParseDevice(s string) (Device, error) {
	switch {
	case s == "" || s == "cpu":
		return CPU, nil
	case s == "cuda" || len(s) > 5 && s[:5] == "cuda:":
		idx := 0
		if s != "cuda" {
			n, err := strconv.Atoi(s[5:])
			if err != nil || n < 0 {
				return CPU, fmt.Errorf("device %q: bad CUDA index", s)
			}
			idx = n
		}
		if !CUDAAvailable() {
			return CPU, fmt.Errorf("device %q: this libtorch (%s) has no CUDA support or sees no GPU; set LIBTORCH to a CUDA build (see README)", s, Version())
		}
		if n := int(C.ts_cuda_device_count()); idx >= n {
			return CPU, fmt.Errorf("device %q: only %d CUDA device(s)", s, n)
		}
		return CUDA(idx), nil
	}
	return CPU, fmt.Errorf("device %q: want cpu, cuda or cuda:N", s)
}

// Version is the linked libtorch's version.
func Version() string { return C.GoString(C.ts_version()) }

// SetThreads sets the one thread count that governs torch's intra-op pool
// and OpenBLAS, which otherwise oversubscribe the cores between them.
func SetThreads(n int) {
	if n < 1 {
		n = 1
	}
	C.ts_set_threads(C.int(n))
}

// SetTeamThreads changes the OpenMP team size of the ops that start from
// now on, on whichever thread calls them; unlike SetThreads it may be called
// from another goroutine while ops run (cpuload.Adapt does).
func SetTeamThreads(n int) {
	C.ts_set_team_threads(C.int(max(1, n)))
}

// Threads is the current intra-op thread count.
func Threads() int { return int(C.ts_get_threads()) }

// ManualSeed seeds libtorch's global generator (dropout, bernoulli without
// an explicit Generator).
func ManualSeed(seed uint64) { C.ts_manual_seed(C.uint64_t(seed)) }

// BLASCore names the CPU kernels OpenBLAS runs, which decide libtorch's
// fp32 matrix products ("" when libtorch was built with another BLAS).
// OPENBLAS_CORETYPE overrides OpenBLAS's own choice: on this project's Zen
// 5 machines the environment sets Haswell (AVX2), where OpenBLAS would pick
// Cooperlake (AVX-512) and SD1.5's U-Net pass runs 10% faster.
func BLASCore() string { return C.GoString(C.ts_blas_core()) }

// attentionReady says whether Attention has an sgemm to call.
var attentionReady = sync.OnceValue(func() bool { return C.ts_attention_ready() != 0 })

func init() {
	// DDGI_THREADS overrides; the default uses every core once.
	n := runtime.NumCPU()
	if v, err := strconv.Atoi(os.Getenv("DDGI_THREADS")); err == nil && v > 0 {
		n = v
	}
	SetThreads(n)
	if os.Getenv("DDGI_MALLOC") != "default" {
		TuneMalloc()
		hugePages(MallocMmapThreshold)
	}
}

// The glibc settings TuneMalloc applies (bench/engine passes the same to
// its PyTorch peer with -peer-malloc).
const (
	MallocMmapThreshold = 32 << 20
	MallocTrimThreshold = 512 << 20
)

// TuneMalloc keeps freed tensor buffers up to 32 MiB in glibc's heap (its
// largest mmap threshold) and returns heap memory to the kernel only beyond
// 512 MiB of free top. With glibc's defaults each training step re-faults its
// activations page by page; measured by bench/engine. DDGI_MALLOC=default
// keeps glibc's behaviour. It reports whether glibc accepted the settings.
func TuneMalloc() bool {
	return C.ts_tune_malloc(MallocMmapThreshold, MallocTrimThreshold) == 1
}

// SetMalloc sets glibc's mmap and trim thresholds (bytes).
func SetMalloc(mmapThreshold, trimThreshold int) bool {
	return C.ts_tune_malloc(C.int64_t(mmapThreshold), C.int64_t(trimThreshold)) == 1
}

// MallocForLargeTensors undoes TuneMalloc for full-size networks, whose
// activations are 32–128 MB each: buffers from 2 MiB go to huge pages
// (HugePages; freed ones kept up to HugeCache), smaller ones stay in glibc's
// heap, which returns free memory beyond 64 MiB. Measured on EG3D-512 (one
// view, 2 threads; then with every buffer from 128 KiB mapped) against
// TuneMalloc's heap: backbone 3.8 → 1.3 s, rendering 6.2 → 3.6 s, peak RSS
// 2.05 → 1.59 GB. Mapping the buffers under 2 MiB too cost CLIP-L's text
// tower half its call (0.2–1.9 MB activations mapped and unmapped per op:
// 1.0 against 0.5 s); StyleGAN2-1024 and SD1.5's U-Net pass lose nothing
// by keeping them. DDGI_MALLOC=default leaves glibc alone throughout.
func MallocForLargeTensors() {
	if os.Getenv("DDGI_MALLOC") != "default" {
		SetMalloc(hugeForLargeTensors, 64<<20)
		hugePages(hugeForLargeTensors)
	}
}

// hugePages is HugePages unless DDGI_HUGEPAGES=off (plain 4 KiB pages, to
// compare or where huge pages misbehave).
func hugePages(minBytes int64) {
	if os.Getenv("DDGI_HUGEPAGES") != "off" {
		HugePages(minBytes)
		cache := int64(DefaultHugeCache)
		if v, err := strconv.ParseInt(os.Getenv("DDGI_HUGE_CACHE_MB"), 10, 64); err == nil && v >= 0 {
			cache = v << 20
		}
		HugeCache(cache)
	}
}

// DefaultHugeCache is how many bytes of freed huge-page buffers are kept
// for reuse unless DDGI_HUGE_CACHE_MB says otherwise (0: none).
const DefaultHugeCache = 512 << 20

// HugeCache keeps up to maxBytes of freed huge-page buffers (HugePages)
// mapped for the next tensors of their size (up to twice the size asked
// for), instead of unmapping them: a fresh mapping is faulted in and
// zeroed by the kernel, which was a quarter of the CPU time of a
// full-size generate. The buffers kept longest are unmapped first; 0
// unmaps them all and keeps none.
func HugeCache(maxBytes int64) { C.ts_huge_cache(C.int64_t(maxBytes)) }

// HugeCached is how many bytes of freed buffers HugeCache keeps now.
func HugeCached() int64 { return int64(C.ts_huge_cached()) }

// hugeForLargeTensors is where full-size networks' buffers go to huge
// pages: every buffer of a 2 MiB page or more.
const hugeForLargeTensors = 2 << 20

// HugePages puts CPU tensor buffers of at least minBytes on transparent
// huge pages, 2 MiB-aligned and mapped for themselves (0: none). Page
// faults were half the CPU time of a full-size generate on this VM (14.6
// million faults, system time 121 s against 124 s of user time); one
// 4,096-token self-attention layer took 2.3 s on 4 KiB pages and 0.41 s on
// 2 MiB ones (BenchmarkSelfAttention64Latent in nn). Init applies it to
// buffers glibc would map anyway (MallocMmapThreshold and up),
// MallocForLargeTensors to every buffer from 2 MiB. It reports whether
// the allocator is in place.
func HugePages(minBytes int64) bool { return C.ts_huge_pages(C.int64_t(minBytes)) == 1 }

// NoGrad runs f with autograd recording off. libtorch's grad mode is per OS
// thread, so the goroutine is pinned to its thread for the duration; ops run
// from other goroutines started inside f still record.
func NoGrad(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev := C.ts_is_grad_enabled()
	C.ts_set_grad_enabled(0)
	defer C.ts_set_grad_enabled(prev)
	f()
}

// GradEnabled reports whether ops on the calling thread record autograd.
func GradEnabled() bool { return C.ts_is_grad_enabled() != 0 }

// Generator is a seeded CPU random source; random tensors are drawn on the
// CPU and then moved, so a seed gives the same numbers on every device.
type Generator struct{ h C.tgen }

// NewGenerator returns a generator seeded with seed.
func NewGenerator(seed uint64) *Generator {
	var h C.tgen
	check("generator", C.ts_generator_new(C.uint64_t(seed), &h))
	g := &Generator{h: h}
	runtime.SetFinalizer(g, func(g *Generator) { C.ts_generator_free(g.h) })
	return g
}

// State is the generator's whole state (libtorch's bytes), for a
// checkpoint that resumes with the very numbers an uninterrupted run draws.
func (g *Generator) State() []byte {
	var h C.tt
	check("generator state", C.ts_generator_get_state(g.h, &h))
	runtime.KeepAlive(g)
	t := wrap(h)
	defer t.Free()
	return t.Bytes()
}

// SetState restores a state State returned; a state libtorch rejects (of
// another size or version) is an error.
func (g *Generator) SetState(state []byte) (err error) {
	return Try(func() {
		t := FromBytes(state, []int64{int64(len(state))}, Uint8, CPU)
		defer t.Free()
		check("generator set state", C.ts_generator_set_state(g.h, t.ptr("generator set state")))
		runtime.KeepAlive(g)
	})
}

func shapeArg(shape []int64) (*C.int64_t, C.int) {
	if len(shape) == 0 {
		return nil, 0
	}
	return (*C.int64_t)(unsafe.Pointer(&shape[0])), C.int(len(shape))
}

// Dim is the number of dimensions.
func (t *Tensor) Dim() int {
	defer func() { runtime.KeepAlive(t) }()
	return int(C.ts_dim(t.ptr("dim")))
}

// Shape returns the sizes of every dimension.
func (t *Tensor) Shape() []int64 {
	defer func() { runtime.KeepAlive(t) }()
	h := t.ptr("shape")
	s := make([]int64, int(C.ts_dim(h)))
	if len(s) > 0 {
		C.ts_shape(h, (*C.int64_t)(unsafe.Pointer(&s[0])))
	}
	return s
}

// Size returns the size of dimension d (negative counts from the end).
func (t *Tensor) Size(d int) int64 {
	s := t.Shape()
	if d < 0 {
		d += len(s)
	}
	if d < 0 || d >= len(s) {
		panic(&Error{Op: "size", Msg: fmt.Sprintf("dim %d out of range for shape %v", d, s)})
	}
	return s[d]
}

// DType is the element type.
func (t *Tensor) DType() DType {
	defer func() { runtime.KeepAlive(t) }()
	return DType(C.ts_dtype(t.ptr("dtype")))
}

// Device is where the tensor lives.
func (t *Tensor) Device() Device {
	defer func() { runtime.KeepAlive(t) }()
	return Device(C.ts_device(t.ptr("device")))
}

// Numel is the number of elements.
func (t *Tensor) Numel() int64 {
	defer func() { runtime.KeepAlive(t) }()
	return int64(C.ts_numel(t.ptr("numel")))
}

// RequiresGrad reports whether autograd tracks t.
func (t *Tensor) RequiresGrad() bool {
	defer func() { runtime.KeepAlive(t) }()
	return C.ts_requires_grad(t.ptr("requires_grad")) != 0
}

// SetRequiresGrad marks a leaf tensor for gradient tracking and returns it.
func (t *Tensor) SetRequiresGrad(on bool) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	check("set_requires_grad", C.ts_set_requires_grad(t.ptr("set_requires_grad"), cbool(on)))
	return t
}

// Grad is the accumulated gradient, or nil when none was computed.
func (t *Tensor) Grad() *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("grad", C.ts_grad(t.ptr("grad"), &h))
	return wrap(h)
}

// ZeroGrad drops the accumulated gradient.
func (t *Tensor) ZeroGrad() {
	defer func() { runtime.KeepAlive(t) }()
	check("zero_grad", C.ts_zero_grad(t.ptr("zero_grad")))
}

// Item returns the single value of a one-element tensor.
func (t *Tensor) Item() float64 {
	defer func() { runtime.KeepAlive(t) }()
	var v C.double
	check("item", C.ts_item(t.ptr("item"), &v))
	return float64(v)
}

func (t *Tensor) String() string {
	if t == nil || t.h == nil {
		return "Tensor(freed)"
	}
	return fmt.Sprintf("Tensor(%v, %v, %v)", t.Shape(), t.DType(), t.Device())
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// WithThreads runs f on one pinned OS thread whose ops use n intra-op
// threads (n < 1: the process-wide count). Small batches run faster on
// one thread than split across two: at batch 1 on 64² inputs most ops are
// too small to share.
func WithThreads(n int, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	C.ts_set_local_threads(C.int(n))
	defer C.ts_set_local_threads(0)
	f()
}

// Concurrently runs independent pieces of work at once, each on its own
// pinned OS thread with an equal share of the intra-op threads (at least
// one) and the caller's grad mode, and returns when all are done. Work
// must not open or close scopes (new tensors join the caller's scope). A
// panic in any piece is re-raised in the caller after all have finished.
func Concurrently(fns ...func()) {
	share := max(Threads()/max(len(fns), 1), 1)
	grad := C.ts_is_grad_enabled()
	panics := make([]any, len(fns))
	var wg sync.WaitGroup
	for i, f := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[i] = recover() }()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			prev := C.ts_is_grad_enabled()
			C.ts_set_grad_enabled(grad)
			defer C.ts_set_grad_enabled(prev)
			WithThreads(share, f)
		}()
	}
	wg.Wait()
	for _, p := range panics {
		if p != nil {
			panic(p)
		}
	}
}

// Chain applies steps to x in turn and frees each intermediate result as
// soon as the next one exists (never x itself, nor the result). Autograd
// keeps what it saved, so this is safe with gradients on; it matters for
// full-size inference, where one activation of a 1024² layer is 128 MB and
// a scope would otherwise hold every one of them until it closes.
func Chain(x *Tensor, steps ...func(*Tensor) *Tensor) *Tensor {
	y := x
	for _, step := range steps {
		next := step(y)
		if y != x && next != y {
			y.Free()
		}
		y = next
	}
	return y
}
