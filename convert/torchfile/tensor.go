package torchfile

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"

	"ddgi/safetensors"
)

// maxRank bounds the number of dimensions of a tensor.
const maxRank = 64

// storage is one stretch of tensor bytes in the file: nbytes at off of r.
type storage struct {
	r       io.ReaderAt
	off     int64
	nbytes  int64
	dtype   safetensors.DType // the element type the file declared it with
	key     string
	located bool // false until a legacy file's data section has been walked
}

// Tensor is a tensor found in the file, not yet read: its element type,
// shape, strides and offset (in elements) into its storage. Tensors made from
// one storage share it, as in PyTorch.
type Tensor struct {
	DType  safetensors.DType
	Shape  []int64
	Stride []int64
	Offset int64

	st   *storage
	bare bool // a storage by itself (a persistent id), before a rebuild gives it a shape
}

// NumElements is the product of the shape.
func (t *Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// bareStorage is what a persistent id turns into: the whole storage (or a
// legacy view of it) as a 1-D tensor.
func bareStorage(st *storage, offset, numel int64) *Tensor {
	return &Tensor{DType: st.dtype, Shape: []int64{numel}, Stride: []int64{1}, Offset: offset, st: st, bare: true}
}

func toInt(v Value) (int64, error) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case bool:
		if v {
			return 1, nil
		}
		return 0, nil
	case *big.Int:
		return 0, fmt.Errorf("integer %s out of range", v)
	}
	return 0, fmt.Errorf("%s is not an int", typeName(v))
}

func toInts(v Value, what string) ([]int64, error) {
	it := items(v)
	if it == nil {
		if _, ok := v.(Tuple); !ok {
			return nil, fmt.Errorf("%s is a %s, not a tuple", what, typeName(v))
		}
	}
	if len(it) > maxRank {
		return nil, fmt.Errorf("%s has %d dimensions (limit %d)", what, len(it), maxRank)
	}
	out := make([]int64, len(it))
	for i, e := range it {
		x, err := toInt(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if x < 0 {
			return nil, fmt.Errorf("%s %v has a negative entry", what, out[:i+1])
		}
		out[i] = x
	}
	return out, nil
}

// rebuild makes a tensor over a bare storage after checking that every
// element it can address lies inside that storage.
func rebuild(stv, offv, sizev, stridev Value, dtype safetensors.DType) (*Tensor, error) {
	base, ok := stv.(*Tensor)
	if !ok || !base.bare {
		return nil, fmt.Errorf("expects a storage, got a %s", typeName(stv))
	}
	if dtype == "" {
		dtype = base.DType
	}
	es := int64(dtype.Size())
	if es == 0 {
		return nil, fmt.Errorf("unsupported dtype %q", dtype)
	}
	bs := int64(base.DType.Size())
	// The storage (or legacy view) as bytes, then in elements of dtype.
	startB, lenB := base.Offset*bs, base.Shape[0]*bs
	if startB%es != 0 {
		return nil, fmt.Errorf("storage view at byte %d is not aligned to %s", startB, dtype)
	}
	avail := lenB / es
	off, err := toInt(offv)
	if err != nil {
		return nil, fmt.Errorf("storage offset: %w", err)
	}
	shape, err := toInts(sizev, "size")
	if err != nil {
		return nil, err
	}
	stride, err := toInts(stridev, "stride")
	if err != nil {
		return nil, err
	}
	if len(stride) != len(shape) {
		return nil, fmt.Errorf("size %v and stride %v differ in rank", shape, stride)
	}
	if off < 0 || off > avail {
		return nil, fmt.Errorf("storage offset %d outside a storage of %d elements", off, avail)
	}
	if _, err := byteSize(dtype, shape); err != nil {
		return nil, err
	}
	last, empty, err := lastIndex(off, shape, stride)
	if err != nil {
		return nil, err
	}
	if !empty && last >= avail {
		return nil, fmt.Errorf("%s tensor of size %v, stride %v at offset %d needs element %d of a storage of %d elements",
			dtype, shape, stride, off, last, avail)
	}
	return &Tensor{DType: dtype, Shape: shape, Stride: stride, Offset: startB/es + off, st: base.st}, nil
}

// lastIndex is the highest storage element the tensor addresses.
func lastIndex(off int64, shape, stride []int64) (last int64, empty bool, err error) {
	last = off
	for i, d := range shape {
		if d == 0 {
			return 0, true, nil
		}
		hi, lo := mulOK(d-1, stride[i])
		if !hi || lo > math.MaxInt64-last {
			return 0, false, fmt.Errorf("size %v with stride %v overflows", shape, stride)
		}
		last += lo
	}
	return last, false, nil
}

func mulOK(a, b int64) (bool, int64) {
	if a == 0 || b == 0 {
		return true, 0
	}
	if a > math.MaxInt64/b {
		return false, 0
	}
	return true, a * b
}

// byteSize is numel*elemsize, failing when it overflows int64. As in
// ddgi/safetensors, zero dimensions do not hide an overflow of the others.
func byteSize(d safetensors.DType, shape []int64) (int64, error) {
	n := int64(d.Size())
	empty := false
	for _, x := range shape {
		if x == 0 {
			empty = true
			continue
		}
		ok, p := mulOK(n, x)
		if !ok {
			return 0, fmt.Errorf("%s tensor of size %v: byte size overflows", d, shape)
		}
		n = p
	}
	if empty {
		return 0, nil
	}
	return n, nil
}

func rebuildTensor(_ *machine, a Tuple) (Value, error) {
	if len(a) != 4 {
		return nil, fmt.Errorf("%d arguments, want 4", len(a))
	}
	return rebuild(a[0], a[1], a[2], a[3], "")
}

// rebuildTensorV2: (storage, offset, size, stride, requires_grad,
// backward_hooks[, metadata]); the last three do not change the data.
func rebuildTensorV2(_ *machine, a Tuple) (Value, error) {
	if len(a) != 6 && len(a) != 7 {
		return nil, fmt.Errorf("%d arguments, want 6 or 7", len(a))
	}
	return rebuild(a[0], a[1], a[2], a[3], "")
}

// rebuildTensorV3 (PyTorch 2.3+ for dtypes without a typed storage) carries
// the dtype after the hooks, over an untyped storage.
func rebuildTensorV3(_ *machine, a Tuple) (Value, error) {
	if len(a) != 7 && len(a) != 8 {
		return nil, fmt.Errorf("%d arguments, want 7 or 8", len(a))
	}
	dt, ok := a[6].(*Object)
	if !ok || dt.g == nil || !dt.g.isDType {
		return nil, fmt.Errorf("dtype argument is a %s", typeName(a[6]))
	}
	if dt.g.dtype == "" {
		return nil, fmt.Errorf("dtype %s is not supported", dt.Class)
	}
	return rebuild(a[0], a[1], a[2], a[3], dt.g.dtype)
}

// rebuildParameter: an nn.Parameter is its data tensor here.
func rebuildParameter(_ *machine, a Tuple) (Value, error) {
	if len(a) != 3 && len(a) != 4 {
		return nil, fmt.Errorf("%d arguments, want 3 or 4", len(a))
	}
	t, ok := a[0].(*Tensor)
	if !ok || t.bare {
		return nil, fmt.Errorf("data is a %s, not a tensor", typeName(a[0]))
	}
	return t, nil
}

// rebuildFromType: (func, type, args, state) for tensors with Python
// attributes (PyTorch 2.x); only plain tensors and parameters are accepted,
// and the attributes are dropped.
func rebuildFromType(m *machine, a Tuple) (Value, error) {
	if len(a) != 4 {
		return nil, fmt.Errorf("%d arguments, want 4", len(a))
	}
	ty, ok := a[1].(*Object)
	if !ok || (ty.Class != "torch.Tensor" && ty.Class != "torch.nn.parameter.Parameter") {
		return nil, fmt.Errorf("tensor type %s is not supported", typeName(a[1]))
	}
	f, ok := a[0].(*Object)
	if !ok || f.g == nil {
		return nil, fmt.Errorf("function is a %s", typeName(a[0]))
	}
	switch f.Class {
	case "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3":
	default:
		return nil, fmt.Errorf("function %s is not supported", f.Class)
	}
	return m.call(f, a[2])
}

// Read returns the tensor's elements as a contiguous, row-major,
// little-endian safetensors.Tensor of exactly NumElements*DType.Size bytes.
// It reads only the bytes the tensor spans, whatever else shares its storage.
func (t *Tensor) Read() (out safetensors.Tensor, err error) {
	defer func() {
		if !catchPanics {
			return
		}
		if r := recover(); r != nil {
			err = fmt.Errorf("torchfile: internal error reading tensor: %v", r)
		}
	}()
	if t.st == nil {
		return out, errors.New("torchfile: not a tensor made by this package")
	}
	if !t.st.located {
		return out, fmt.Errorf("torchfile: storage %q has no data in the file", t.st.key)
	}
	// The fields are exported, so check them again before sizing anything.
	es := int64(t.DType.Size())
	if es == 0 || len(t.Stride) != len(t.Shape) || t.Offset < 0 {
		return out, fmt.Errorf("torchfile: tensor %s %v stride %v offset %d is malformed", t.DType, t.Shape, t.Stride, t.Offset)
	}
	for i := range t.Shape {
		if t.Shape[i] < 0 || t.Stride[i] < 0 {
			return out, fmt.Errorf("torchfile: tensor %v stride %v has a negative entry", t.Shape, t.Stride)
		}
	}
	n, err := byteSize(t.DType, t.Shape)
	if err != nil {
		return out, fmt.Errorf("torchfile: %w", err)
	}
	last, empty, err := lastIndex(t.Offset, t.Shape, t.Stride)
	if err != nil {
		return out, fmt.Errorf("torchfile: %w", err)
	}
	if !empty && last >= t.st.nbytes/es {
		return out, fmt.Errorf("torchfile: tensor runs past its storage %q", t.st.key)
	}
	out = safetensors.Tensor{DType: t.DType, Shape: append([]int64{}, t.Shape...), Data: make([]byte, n)}
	if n == 0 {
		return out, nil
	}
	lo, span := t.Offset*es, (last-t.Offset+1)*es
	if span == n && contiguous(t.Shape, t.Stride) {
		return out, readFull(t.st, lo, out.Data)
	}
	if span > 2*n && span > 1<<20 {
		// A sparse view (a few rows of a big storage, say): read each run
		// from the file rather than everything in between.
		err := gather(out.Data, t.Shape, t.Stride, es, func(dst []byte, at int64) error {
			return readFull(t.st, lo+at*es, dst)
		})
		return out, err
	}
	buf := make([]byte, span)
	if err := readFull(t.st, lo, buf); err != nil {
		return out, err
	}
	err = gather(out.Data, t.Shape, t.Stride, es, func(dst []byte, at int64) error {
		copy(dst, buf[at*es:])
		return nil
	})
	return out, err
}

func readFull(st *storage, off int64, p []byte) error {
	got, err := st.r.ReadAt(p, st.off+off)
	if got == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("torchfile: reading storage %q: %w", st.key, err)
}

// contiguous reports a row-major layout (dimensions of size 1 may have any stride).
func contiguous(shape, stride []int64) bool {
	want := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}

// gather fills dst in row-major order from a strided view, fetching a run
// of the innermost dimension at a time when it is contiguous, else one
// element at a time. fetch(dst, at) copies len(dst) bytes from element at of
// the view's span.
func gather(dst []byte, shape, stride []int64, es int64, fetch func(dst []byte, at int64) error) error {
	rank := len(shape)
	if rank == 0 {
		return fetch(dst[:es], 0)
	}
	inner, innerStride := shape[rank-1], stride[rank-1]
	idx := make([]int64, rank-1)
	var pos, d int64 // element offset of idx in the span; bytes written
	for {
		if innerStride == 1 || inner == 1 {
			if err := fetch(dst[d:d+inner*es], pos); err != nil {
				return err
			}
			d += inner * es
		} else {
			for j := int64(0); j < inner; j++ {
				if err := fetch(dst[d:d+es], pos+j*innerStride); err != nil {
					return err
				}
				d += es
			}
		}
		// Advance the outer index like an odometer.
		k := rank - 2
		for ; k >= 0; k-- {
			idx[k]++
			pos += stride[k]
			if idx[k] < shape[k] {
				break
			}
			pos -= stride[k] * shape[k]
			idx[k] = 0
		}
		if k < 0 {
			return nil
		}
	}
}
