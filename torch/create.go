package torch

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Zeros returns a zero tensor.
func Zeros(shape []int64, dt DType, dev Device) *Tensor {
	var h C.tt
	p, n := shapeArg(shape)
	check("zeros", C.ts_zeros(p, n, C.int(dt), C.int(dev), &h))
	return wrap(h)
}

// Ones returns a tensor of ones.
func Ones(shape []int64, dt DType, dev Device) *Tensor {
	var h C.tt
	p, n := shapeArg(shape)
	check("ones", C.ts_ones(p, n, C.int(dt), C.int(dev), &h))
	return wrap(h)
}

// Full returns a tensor filled with v.
func Full(shape []int64, v float64, dt DType, dev Device) *Tensor {
	var h C.tt
	p, n := shapeArg(shape)
	check("full", C.ts_full(p, n, C.double(v), C.int(dt), C.int(dev), &h))
	return wrap(h)
}

// Scalar returns a 0-dim float32 tensor.
func Scalar(v float64, dev Device) *Tensor { return Full(nil, v, Float32, dev) }

// Arange returns [start, end) in steps of step.
func Arange(start, end, step float64, dt DType, dev Device) *Tensor {
	var h C.tt
	check("arange", C.ts_arange(C.double(start), C.double(end), C.double(step), C.int(dt), C.int(dev), &h))
	return wrap(h)
}

// Linspace returns n evenly spaced values from start to end inclusive.
func Linspace(start, end float64, n int64, dt DType, dev Device) *Tensor {
	var h C.tt
	check("linspace", C.ts_linspace(C.double(start), C.double(end), C.int64_t(n), C.int(dt), C.int(dev), &h))
	return wrap(h)
}

// Eye returns the n×n identity.
func Eye(n int64, dt DType, dev Device) *Tensor {
	var h C.tt
	check("eye", C.ts_eye(C.int64_t(n), C.int(dt), C.int(dev), &h))
	return wrap(h)
}

func numel(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > (1<<62)/d {
			return 0, fmt.Errorf("shape %v overflows", shape)
		}
		n *= d
	}
	return n, nil
}

// FromBytes copies raw little-endian element bytes into a new tensor.
func FromBytes(data []byte, shape []int64, dt DType, dev Device) *Tensor {
	n, err := numel(shape)
	if err != nil {
		panic(&Error{Op: "from_bytes", Msg: err.Error()})
	}
	if int64(len(data)) != n*int64(dt.Size()) {
		panic(&Error{Op: "from_bytes", Msg: fmt.Sprintf("%d bytes for %v %v, want %d", len(data), dt, shape, n*int64(dt.Size()))})
	}
	var h C.tt
	p, nd := shapeArg(shape)
	var src unsafe.Pointer
	if len(data) > 0 {
		src = unsafe.Pointer(&data[0])
	}
	check("from_bytes", C.ts_from_data(src, p, nd, C.int(dt), C.int(dev), &h))
	return wrap(h)
}

func sliceBytes[T any](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*int(unsafe.Sizeof(v[0])))
}

// FromFloat32 copies a Go slice into a float32 tensor of the given shape.
func FromFloat32(v []float32, shape ...int64) *Tensor {
	return FromBytes(sliceBytes(v), shape, Float32, CPU)
}

// FromFloat64 copies a Go slice into a float64 tensor.
func FromFloat64(v []float64, shape ...int64) *Tensor {
	return FromBytes(sliceBytes(v), shape, Float64, CPU)
}

// FromInt64 copies a Go slice into an int64 tensor.
func FromInt64(v []int64, shape ...int64) *Tensor {
	return FromBytes(sliceBytes(v), shape, Int64, CPU)
}

// FromUint8 copies a Go slice into a uint8 tensor.
func FromUint8(v []uint8, shape ...int64) *Tensor {
	return FromBytes(v, shape, Uint8, CPU)
}

// Bytes copies the tensor's elements (moved to CPU, contiguous) out.
func (t *Tensor) Bytes() []byte {
	defer func() { runtime.KeepAlive(t) }()
	h := t.ptr("bytes")
	buf := make([]byte, t.Numel()*int64(t.DType().Size()))
	var dst unsafe.Pointer
	if len(buf) > 0 {
		dst = unsafe.Pointer(&buf[0])
	}
	check("bytes", C.ts_copy_to(h, dst, C.int64_t(len(buf))))
	return buf
}

// WriteBytes copies p into the raw storage of a contiguous CPU tensor at
// byte offset off, without a temporary tensor (loaders stream weights in
// this way); its bytes must be the tensor's dtype in native order.
func (t *Tensor) WriteBytes(off int64, p []byte) {
	defer func() { runtime.KeepAlive(t) }()
	if len(p) == 0 {
		return
	}
	check("write_bytes", C.ts_write_bytes(t.ptr("write_bytes"), C.int64_t(off), unsafe.Pointer(&p[0]), C.int64_t(len(p))))
}

func copyOut[T any](t *Tensor, dt DType, op string) []T {
	defer func() { runtime.KeepAlive(t) }()
	if t.DType() != dt {
		t = t.To(dt)
	}
	out := make([]T, t.Numel())
	var dst unsafe.Pointer
	if len(out) > 0 {
		dst = unsafe.Pointer(&out[0])
	}
	check(op, C.ts_copy_to(t.ptr(op), dst, C.int64_t(len(out)*dt.Size())))
	return out
}

// Float32s copies the elements out as float32 (converting if needed).
func (t *Tensor) Float32s() []float32 { return copyOut[float32](t, Float32, "float32s") }

// Float64s copies the elements out as float64.
func (t *Tensor) Float64s() []float64 { return copyOut[float64](t, Float64, "float64s") }

// Int64s copies the elements out as int64.
func (t *Tensor) Int64s() []int64 { return copyOut[int64](t, Int64, "int64s") }

// Randn draws standard normal values from g.
func Randn(g *Generator, shape []int64, dt DType, dev Device) *Tensor {
	defer runtime.KeepAlive(g) // its finalizer must not free it while C draws from it
	var h C.tt
	p, n := shapeArg(shape)
	check("randn", C.ts_randn(p, n, g.h, C.int(dt), &h))
	return onDevice(wrap(h), dev)
}

// Rand draws uniform [0,1) values from g.
func Rand(g *Generator, shape []int64, dt DType, dev Device) *Tensor {
	defer runtime.KeepAlive(g) // its finalizer must not free it while C draws from it
	var h C.tt
	p, n := shapeArg(shape)
	check("rand", C.ts_rand(p, n, g.h, C.int(dt), &h))
	return onDevice(wrap(h), dev)
}

// RandInt draws int64 values in [low, high) from g.
func RandInt(g *Generator, low, high int64, shape []int64, dev Device) *Tensor {
	defer runtime.KeepAlive(g) // its finalizer must not free it while C draws from it
	var h C.tt
	p, n := shapeArg(shape)
	check("randint", C.ts_randint(C.int64_t(low), C.int64_t(high), p, n, g.h, &h))
	return onDevice(wrap(h), dev)
}

// RandPerm returns a random permutation of 0..n-1.
func RandPerm(g *Generator, n int64, dev Device) *Tensor {
	defer runtime.KeepAlive(g) // its finalizer must not free it while C draws from it
	var h C.tt
	check("randperm", C.ts_randperm(C.int64_t(n), g.h, &h))
	return onDevice(wrap(h), dev)
}

// Bernoulli draws 0/1 with probabilities p (p on CPU).
func Bernoulli(g *Generator, p *Tensor) *Tensor {
	dev := p.Device()
	var h C.tt
	cpu := p.ToDevice(CPU)
	check("bernoulli", C.ts_bernoulli(cpu.ptr("bernoulli"), g.h, &h))
	runtime.KeepAlive(g)
	runtime.KeepAlive(cpu)
	return onDevice(wrap(h), dev)
}

func onDevice(t *Tensor, dev Device) *Tensor {
	if dev == CPU {
		return t
	}
	return t.ToDevice(dev)
}

// To converts the element type, keeping the device.
func (t *Tensor) To(dt DType) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("to", C.ts_to(t.ptr("to"), C.int(dt), C.int(t.Device()), &h))
	return wrap(h)
}

// ToDevice moves the tensor, keeping the element type.
func (t *Tensor) ToDevice(dev Device) *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("to_device", C.ts_to(t.ptr("to_device"), C.int(t.DType()), C.int(dev), &h))
	return wrap(h)
}

// Contiguous returns a tensor with row-major memory layout.
func (t *Tensor) Contiguous() *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("contiguous", C.ts_contiguous(t.ptr("contiguous"), &h))
	return wrap(h)
}

// Clone copies the data (and keeps the autograd graph).
func (t *Tensor) Clone() *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("clone", C.ts_clone(t.ptr("clone"), &h))
	return wrap(h)
}

// Detach shares the data but leaves the autograd graph.
func (t *Tensor) Detach() *Tensor {
	defer func() { runtime.KeepAlive(t) }()
	var h C.tt
	check("detach", C.ts_detach(t.ptr("detach"), &h))
	return wrap(h)
}
