package torchfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"

	"ddgi/safetensors"
)

// npDType is a numpy.dtype as pickled: numpy.dtype('f8', False, True) then
// BUILD (3, '<', ...). Only plain numeric kinds can become values.
type npDType struct {
	str   string // 'f8', 'i8', 'b1', ...
	kind  byte
	size  int
	order byte // '<', '>', '|' or '='
	odd   bool // a structured or otherwise unsupported dtype
}

func numpyDType(_ *machine, a Tuple) (Value, error) {
	if len(a) < 1 || len(a) > 3 {
		return nil, fmt.Errorf("%d arguments", len(a))
	}
	s, ok := a[0].(string)
	if !ok || len(s) < 2 || len(s) > 16 {
		return nil, fmt.Errorf("dtype spec %s", shortRepr(a[0]))
	}
	d := &npDType{str: s, kind: s[0], order: '='}
	n, err := strconv.Atoi(s[1:])
	if err != nil || n <= 0 || n > 1<<20 {
		d.odd = true
	}
	d.size = n
	return &Object{Class: "numpy.dtype", State: s, np: d}, nil
}

func (d *npDType) setState(state Value) error {
	t, ok := state.(Tuple)
	if !ok || len(t) < 2 {
		return fmt.Errorf("numpy.dtype state is a %s", typeName(state))
	}
	o, ok := t[1].(string)
	if !ok || len(o) != 1 {
		return fmt.Errorf("numpy.dtype byte order %s", shortRepr(t[1]))
	}
	d.order = o[0]
	if len(t) > 3 && t[3] != nil { // field names: a structured dtype
		d.odd = true
	}
	return nil
}

// tensorDType maps the dtype to a ddgi element type.
func (d *npDType) tensorDType() (safetensors.DType, error) {
	if d.order == '>' {
		return "", fmt.Errorf("big-endian numpy dtype >%s is not supported", d.str)
	}
	if !d.odd {
		switch fmt.Sprintf("%c%d", d.kind, d.size) {
		case "f2":
			return safetensors.F16, nil
		case "f4":
			return safetensors.F32, nil
		case "f8":
			return safetensors.F64, nil
		case "i1":
			return safetensors.I8, nil
		case "i2":
			return safetensors.I16, nil
		case "i4":
			return safetensors.I32, nil
		case "i8":
			return safetensors.I64, nil
		case "u1":
			return safetensors.U8, nil
		case "b1":
			return safetensors.BOOL, nil
		}
	}
	return "", fmt.Errorf("numpy dtype %s is not supported", d.str)
}

func asNumpyDType(v Value) (*npDType, error) {
	o, ok := v.(*Object)
	if !ok || o.np == nil {
		return nil, fmt.Errorf("dtype argument is a %s", typeName(v))
	}
	return o.np, nil
}

// numpyScalar models numpy.core.multiarray.scalar(dtype, raw bytes): a
// number of a plain numeric dtype becomes a Go bool, int64 or float64.
func numpyScalar(_ *machine, a Tuple) (Value, error) {
	if len(a) != 2 {
		return nil, fmt.Errorf("%d arguments", len(a))
	}
	d, err := asNumpyDType(a[0])
	if err != nil {
		return nil, err
	}
	raw, ok := a[1].([]byte)
	if !ok {
		return nil, fmt.Errorf("scalar of dtype %s from a %s", d.str, typeName(a[1]))
	}
	if d.order == '>' || d.odd || len(raw) != d.size {
		return nil, fmt.Errorf("numpy scalar of dtype %c%s with %d bytes is not supported", d.order, d.str, len(raw))
	}
	le := binary.LittleEndian
	switch d.kind {
	case 'b':
		if d.size == 1 {
			return raw[0] != 0, nil
		}
	case 'f':
		switch d.size {
		case 2:
			return float64(safetensors.Float16frombits(le.Uint16(raw))), nil
		case 4:
			return float64(math.Float32frombits(le.Uint32(raw))), nil
		case 8:
			return math.Float64frombits(le.Uint64(raw)), nil
		}
	case 'i', 'u':
		var u uint64
		for i := len(raw) - 1; i >= 0; i-- {
			u = u<<8 | uint64(raw[i])
		}
		if d.size > 8 {
			break
		}
		if d.kind == 'i' {
			if d.size < 8 && raw[d.size-1]&0x80 != 0 {
				u |= ^uint64(0) << (8 * uint(d.size))
			}
			return int64(u), nil
		}
		if u > math.MaxInt64 {
			return new(big.Int).SetUint64(u), nil
		}
		return int64(u), nil
	}
	return nil, fmt.Errorf("numpy scalar of dtype %s is not supported", d.str)
}

// numpyReconstruct models numpy.core.multiarray._reconstruct(ndarray, (0,),
// b'b'): an empty array whose BUILD then brings shape, dtype and data.
func numpyReconstruct(_ *machine, a Tuple) (Value, error) {
	if len(a) != 3 {
		return nil, fmt.Errorf("%d arguments", len(a))
	}
	if c, ok := a[0].(*Object); !ok || c.Class != "numpy.ndarray" {
		return nil, fmt.Errorf("class %s is not numpy.ndarray", typeName(a[0]))
	}
	return &Object{Class: "numpy.ndarray", nd: true}, nil
}

// ndarraySetState: state is ([version,] shape, dtype, is_fortran, data).
func ndarraySetState(o *Object, state Value) error {
	t, ok := state.(Tuple)
	if ok && len(t) == 5 {
		t = t[1:]
	}
	if !ok || len(t) != 4 {
		return fmt.Errorf("numpy.ndarray state is a %s", typeName(state))
	}
	fortran, ok := t[2].(bool)
	if !ok {
		return fmt.Errorf("numpy.ndarray fortran flag is a %s", typeName(t[2]))
	}
	tn, err := numpyTensor(t[3], t[0], t[1], fortran)
	if err != nil {
		return err
	}
	o.State, o.nd = tn, false
	return nil
}

// numpyFromBuffer models numpy.core.numeric._frombuffer(buf, dtype, shape,
// order), which pickle protocol 5 uses.
func numpyFromBuffer(_ *machine, a Tuple) (Value, error) {
	if len(a) != 4 {
		return nil, fmt.Errorf("%d arguments", len(a))
	}
	order, _ := a[3].(string)
	if order != "C" && order != "F" {
		return nil, fmt.Errorf("order %s", shortRepr(a[3]))
	}
	tn, err := numpyTensor(a[0], a[2], a[1], order == "F")
	if err != nil {
		return nil, err
	}
	return &Object{Class: "numpy.ndarray", State: tn}, nil
}

// numpyTensor makes a Tensor over the raw bytes of an array.
func numpyTensor(raw, shapev, dtypev Value, fortran bool) (*Tensor, error) {
	d, err := asNumpyDType(dtypev)
	if err != nil {
		return nil, err
	}
	dt, err := d.tensorDType()
	if err != nil {
		return nil, err
	}
	shape, err := toInts(shapev, "numpy shape")
	if err != nil {
		return nil, err
	}
	n, err := byteSize(dt, shape)
	if err != nil {
		return nil, err
	}
	st := &storage{key: "numpy array", dtype: dt, located: true}
	switch b := raw.(type) {
	case []byte:
		st.r, st.nbytes = bytes.NewReader(b), int64(len(b))
	case *Bytes:
		st.r, st.off, st.nbytes = b.r, b.Offset, b.Len
	default:
		return nil, errors.New("numpy array data is not bytes (object arrays are not supported)")
	}
	if st.nbytes != n {
		return nil, fmt.Errorf("numpy %s array of shape %v needs %d bytes, has %d", dt, shape, n, st.nbytes)
	}
	stride := make([]int64, len(shape))
	acc := int64(1)
	for i := range shape {
		j := len(shape) - 1 - i // row-major: last dimension fastest
		if fortran {
			j = i
		}
		stride[j] = acc
		acc *= max(shape[j], 1)
	}
	return &Tensor{DType: dt, Shape: shape, Stride: stride, st: st}, nil
}
