package torch

/*
#cgo CXXFLAGS: -DUSE_C10D_GLOO
#include <stdlib.h>
#include "dist.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Rendezvous is where the ranks of a process group meet: a TCP store at
// Addr:Port.
type Rendezvous struct {
	Addr string
	Port int
	// Client makes rank 0 a client of a store another process serves
	// (torchrun's agent); otherwise rank 0 serves it.
	Client bool
	// Prefix keeps the group's keys apart from other users of the store.
	Prefix string
}

// GlooDevice says which local address a Gloo process group binds to.
type GlooDevice struct {
	// Host binds to this host name or address ("127.0.0.1" for loopback).
	Host string
	// Interface binds to a network interface ("eth0"); used when Host is empty.
	Interface string
}

// ProcessGroup is a c10d Gloo process group over a TCP rendezvous store:
// libtorch's own collectives, the ones torch.distributed runs on CPU.
// Collectives return errors (a dead peer, a timeout) rather than panic, so
// a rank can report and exit.
type ProcessGroup struct {
	mu         sync.Mutex
	h          C.tpg
	Rank, Size int
}

// NewProcessGroup joins a group of size ranks at the rendezvous store. It
// blocks until every rank has joined or timeout passes; timeout also
// bounds every collective.
func NewProcessGroup(rv Rendezvous, rank, size int, timeout time.Duration, dev GlooDevice) (*ProcessGroup, error) {
	addr, port := rv.Addr, rv.Port
	if size < 1 || rank < 0 || rank >= size {
		return nil, fmt.Errorf("process group: rank %d outside a world of %d", rank, size)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("process group: port %d outside 1–65535", port)
	}
	kind, name := 2, ""
	switch {
	case dev.Host != "":
		kind, name = 0, dev.Host
	case dev.Interface != "":
		kind, name = 1, dev.Interface
	}
	caddr, cname, cprefix := C.CString(addr), C.CString(name), C.CString(rv.Prefix)
	defer C.free(unsafe.Pointer(caddr))
	defer C.free(unsafe.Pointer(cname))
	defer C.free(unsafe.Pointer(cprefix))
	var h C.tpg
	if err := distErr(C.ts_pg_new(caddr, C.int(port), C.int(rank), C.int(size), C.int64_t(timeout.Milliseconds()),
		cbool(!rv.Client), cprefix, C.int(kind), cname, &h)); err != nil {
		return nil, fmt.Errorf("process group (rank %d of %d, store %s:%d): %w", rank, size, addr, port, err)
	}
	return &ProcessGroup{h: h, Rank: rank, Size: size}, nil
}

// AllReduceSum replaces each tensor by its sum over the ranks (one flat
// buffer per dtype, so one collective per step).
func (g *ProcessGroup) AllReduceSum(ts []*Tensor) error {
	return g.collective("all-reduce", ts, func(arr *C.tt, n C.int) C.terr { return C.ts_pg_allreduce_sum(g.h, arr, n) })
}

// Broadcast overwrites each tensor with root's copy.
func (g *ProcessGroup) Broadcast(ts []*Tensor, root int) error {
	return g.collective("broadcast", ts, func(arr *C.tt, n C.int) C.terr { return C.ts_pg_broadcast(g.h, arr, n, C.int(root)) })
}

// Barrier returns once every rank has reached it.
func (g *ProcessGroup) Barrier() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.h == nil {
		return errClosedGroup
	}
	if err := distErr(C.ts_pg_barrier(g.h)); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	return nil
}

// Close leaves the group and frees it.
func (g *ProcessGroup) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.h != nil {
		C.ts_pg_free(g.h)
		g.h = nil
	}
}

var errClosedGroup = errors.New("process group is closed")

func (g *ProcessGroup) collective(op string, ts []*Tensor, f func(*C.tt, C.int) C.terr) error {
	defer func() { runtime.KeepAlive(ts) }()
	if len(ts) == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.h == nil {
		return errClosedGroup
	}
	var arr *C.tt
	var free func()
	if err := Try(func() { arr, free = handleArray(handles(op, ts)) }); err != nil {
		return err
	}
	defer free()
	if err := distErr(f(arr, C.int(len(ts)))); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// distErr turns the shim's error string into an error: its first line,
// without the "[./gloo/…/pair.cc:589] " source location Gloo starts with.
func distErr(e C.terr) error {
	if e == nil {
		return nil
	}
	msg := firstLine(C.GoString(e))
	C.free(unsafe.Pointer(e))
	if strings.HasPrefix(msg, "[") {
		if i := strings.Index(msg, "] "); i > 0 && strings.Contains(msg[:i], ":") {
			msg = msg[i+2:]
		}
	}
	return errors.New(msg)
}

// Overlap is data-parallel backward for one fixed list of parameters with
// the gradient all-reduce overlapped, as PyTorch's DDP does it: the
// parameters are cut into buckets of about BucketBytes, and a bucket's
// all-reduce starts on Gloo's thread as soon as backward has accumulated
// its last gradient, while backward works on earlier layers. Buckets start
// in one fixed order on every rank; after the first step they are regrouped
// by the order in which gradients arrived (rank 0's, broadcast).
type Overlap struct {
	g      *ProcessGroup
	h      C.tov
	params []*Tensor
	// Early is how many of the last Backward's Buckets started their
	// all-reduce before backward returned: the overlap achieved.
	Early, Buckets int
}

// NewOverlap prepares overlapped backward for params (leaf tensors that
// require gradients). bucketBytes ≤ 0 means 1 MiB.
func (g *ProcessGroup) NewOverlap(params []*Tensor, bucketBytes int64) (*Overlap, error) {
	defer func() { runtime.KeepAlive(params) }()
	if len(params) == 0 {
		return nil, errors.New("overlapped backward: no parameters")
	}
	if bucketBytes <= 0 {
		bucketBytes = 1 << 20
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.h == nil {
		return nil, errClosedGroup
	}
	var arr *C.tt
	var free func()
	if err := Try(func() { arr, free = handleArray(handles("overlap", params)) }); err != nil {
		return nil, err
	}
	defer free()
	var h C.tov
	if err := distErr(C.ts_ov_new(g.h, arr, C.int(len(params)), C.int64_t(bucketBytes), &h)); err != nil {
		return nil, fmt.Errorf("overlapped backward: %w", err)
	}
	return &Overlap{g: g, h: h, params: append([]*Tensor(nil), params...)}, nil
}

// Params is the parameter list o was made for.
func (o *Overlap) Params() []*Tensor { return o.params }

// Backward backpropagates the scalar loss and leaves each parameter's
// gradient summed over the ranks, or averaged when mean. Every rank must
// call it with the same graph shape. Parameters without a gradient this
// step are left alone.
func (o *Overlap) Backward(loss *Tensor, mean bool) error {
	defer func() { runtime.KeepAlive(loss) }()
	o.g.mu.Lock()
	defer o.g.mu.Unlock()
	if o.g.h == nil || o.h == nil {
		return errClosedGroup
	}
	var early, total C.int
	var err error
	if terr := Try(func() { err = distErr(C.ts_ov_backward(o.h, loss.ptr("backward"), cbool(mean), &early, &total)) }); terr != nil {
		return terr
	}
	if err != nil {
		return fmt.Errorf("backward with all-reduce: %w", err)
	}
	o.Early, o.Buckets = int(early), int(total)
	return nil
}

// Close frees o (the hooks it left on the parameters do nothing after).
func (o *Overlap) Close() {
	o.g.mu.Lock()
	defer o.g.mu.Unlock()
	if o.h != nil {
		C.ts_ov_free(o.h)
		o.h = nil
	}
}
