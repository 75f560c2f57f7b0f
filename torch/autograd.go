package torch

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"unsafe"
)

// Backward accumulates d(t)/d(leaf) into every leaf's Grad. t must be a
// scalar unless grad (same shape as t) is given.
func (t *Tensor) Backward() {
	defer func() { runtime.KeepAlive(t) }()
	check("backward", C.ts_backward(t.ptr("backward"), nil, 0))
}

// BackwardWith backpropagates an explicit output gradient; retain keeps the
// graph for another backward pass.
func (t *Tensor) BackwardWith(grad *Tensor, retain bool) {
	defer func() { runtime.KeepAlive(grad); runtime.KeepAlive(t) }()
	check("backward", C.ts_backward(t.ptr("backward"), optPtr("backward", grad), cbool(retain)))
}

// GradOpts tune Grad.
type GradOpts struct {
	// GradOutputs weight each output (nil entries or a nil slice mean ones
	// for scalar outputs).
	GradOutputs []*Tensor
	// CreateGraph records the gradient computation itself, so the result can
	// be differentiated again (R1 penalty, gradient checks of gradients).
	CreateGraph bool
	// RetainGraph keeps the forward graph for later passes.
	RetainGraph bool
	// AllowUnused returns nil for inputs the outputs do not depend on
	// instead of failing.
	AllowUnused bool
}

// Grad returns d(sum of outputs)/d(inputs) without touching .Grad fields.
func Grad(outputs, inputs []*Tensor, o GradOpts) []*Tensor {
	defer func() { runtime.KeepAlive(outputs); runtime.KeepAlive(inputs); runtime.KeepAlive(o.GradOutputs) }()
	outs, freeOuts := handleArray(handles("grad", outputs))
	defer freeOuts()
	ins, freeIns := handleArray(handles("grad", inputs))
	defer freeIns()
	var gouts *C.tt
	if o.GradOutputs != nil {
		if len(o.GradOutputs) != len(outputs) {
			panic(&Error{Op: "grad", Msg: fmt.Sprintf("%d grad outputs for %d outputs", len(o.GradOutputs), len(outputs))})
		}
		hs := make([]C.tt, len(outputs))
		for i, g := range o.GradOutputs {
			hs[i] = optPtr("grad", g)
		}
		p, free := handleArray(hs)
		defer free()
		gouts = p
	}
	res := (*C.tt)(C.calloc(C.size_t(len(inputs)), C.size_t(unsafe.Sizeof(C.tt(nil)))))
	defer C.free(unsafe.Pointer(res))
	check("grad", C.ts_autograd_grad(outs, C.int(len(outputs)), ins, C.int(len(inputs)), gouts,
		cbool(o.CreateGraph), cbool(o.RetainGraph), cbool(o.AllowUnused), res))
	out := make([]*Tensor, len(inputs))
	for i, h := range unsafe.Slice(res, len(inputs)) {
		out[i] = wrap(h)
	}
	return out
}

// LoadPT reads a PyTorch state_dict saved with torch.save (zip format) into
// a name→tensor map of long-lived CPU tensors.
func LoadPT(path string) (m map[string]*Tensor, err error) {
	// libtorch's reader trusts its input: a file that is not a zip archive
	// (a legacy pickle, a safetensors file) can crash it, so check first.
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	magic := make([]byte, 4)
	_, err = io.ReadFull(f, magic)
	f.Close()
	if err != nil || string(magic) != "PK\x03\x04" {
		return nil, fmt.Errorf("load %s: not a torch.save zip archive (ddgi convert reads older formats)", path)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var n C.int
	var names **C.char
	var ts *C.tt
	if e := C.ts_load_pt(cpath, &n, &names, &ts); e != nil {
		msg := C.GoString(e)
		C.free(unsafe.Pointer(e))
		return nil, fmt.Errorf("load %s: %s", path, firstLine(msg))
	}
	defer C.free(unsafe.Pointer(names))
	defer C.free(unsafe.Pointer(ts))
	m = make(map[string]*Tensor, int(n))
	nameSlice := unsafe.Slice(names, int(n))
	for i, h := range unsafe.Slice(ts, int(n)) {
		t := wrap(h)
		Persist(t)
		m[C.GoString(nameSlice[i])] = t
		C.free(unsafe.Pointer(nameSlice[i]))
	}
	return m, nil
}
