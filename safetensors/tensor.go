package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Tensor is one named entry of a file: its element type, its shape (row
// major, an empty shape is a scalar) and its little-endian bytes.
type Tensor struct {
	DType DType
	Shape []int64
	Data  []byte
}

// NumElements is the product of the shape (1 for a scalar). It does not
// check for overflow; Validate does.
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	return n
}

// Validate checks that the dtype is known, the shape is non-negative and its
// byte size fits in an int64, and Data holds exactly that many bytes.
func (t Tensor) Validate() error {
	if !t.DType.Valid() {
		return fmt.Errorf("unknown dtype %q", string(t.DType))
	}
	nbytes, err := byteSize(t.DType, t.Shape)
	if err != nil {
		return err
	}
	if uint64(len(t.Data)) != nbytes {
		return fmt.Errorf("data holds %d bytes but %s %v needs %d", len(t.Data), t.DType, t.Shape, nbytes)
	}
	return nil
}

// byteSize returns elements(shape) * d.Size(), failing on a negative
// dimension or when the count overflows int64. Zero dimensions are skipped
// in the overflow check, so [0, 1<<32, 1<<32] is rejected too: its row-major
// strides would overflow in any tensor library.
func byteSize(d DType, shape []int64) (uint64, error) {
	n := uint64(d.Size())
	empty := false
	for _, dim := range shape {
		if dim < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if dim == 0 {
			empty = true
			continue
		}
		hi, lo := bits.Mul64(n, uint64(dim))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("%s %v: byte size overflows int64", d, shape)
		}
		n = lo
	}
	if empty {
		return 0, nil
	}
	return n, nil
}

// checkLen builds a tensor shell after checking that shape holds n elements.
func checkLen(d DType, shape []int64, n int) (Tensor, error) {
	t := Tensor{DType: d, Shape: append([]int64{}, shape...)}
	nbytes, err := byteSize(d, shape)
	if err != nil {
		return Tensor{}, fmt.Errorf("safetensors: %w", err)
	}
	if nbytes/uint64(d.Size()) != uint64(n) {
		return Tensor{}, fmt.Errorf("safetensors: shape %v holds %d elements, got %d values", shape, nbytes/uint64(d.Size()), n)
	}
	return t, nil
}

// FromFloat32 returns an F32 tensor of the given shape holding a copy of v.
// len(v) must equal the product of shape.
func FromFloat32(shape []int64, v []float32) (Tensor, error) {
	t, err := checkLen(F32, shape, len(v))
	if err != nil {
		return Tensor{}, err
	}
	t.Data = make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(x))
	}
	return t, nil
}

// FromInt64 returns an I64 tensor of the given shape holding a copy of v.
func FromInt64(shape []int64, v []int64) (Tensor, error) {
	t, err := checkLen(I64, shape, len(v))
	if err != nil {
		return Tensor{}, err
	}
	t.Data = make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(t.Data[8*i:], uint64(x))
	}
	return t, nil
}

// Float32 decodes a floating-point tensor (F32, F16, BF16 or F64; F64 is
// rounded to nearest) into a new slice.
func (t Tensor) Float32() ([]float32, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("safetensors: Float32: %w", err)
	}
	n := len(t.Data) / max(t.DType.Size(), 1)
	out := make([]float32, n)
	le := binary.LittleEndian
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(t.Data[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = Float16frombits(le.Uint16(t.Data[2*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = BFloat16frombits(le.Uint16(t.Data[2*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(t.Data[8*i:])))
		}
	default:
		return nil, fmt.Errorf("safetensors: Float32: %s is not a floating-point dtype", t.DType)
	}
	return out, nil
}

// Int64 decodes an integer or BOOL tensor (I64, I32, I16, I8, U8, BOOL) into
// a new slice.
func (t Tensor) Int64() ([]int64, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("safetensors: Int64: %w", err)
	}
	n := len(t.Data) / max(t.DType.Size(), 1)
	out := make([]int64, n)
	le := binary.LittleEndian
	switch t.DType {
	case I64:
		for i := range out {
			out[i] = int64(le.Uint64(t.Data[8*i:]))
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(le.Uint32(t.Data[4*i:])))
		}
	case I16:
		for i := range out {
			out[i] = int64(int16(le.Uint16(t.Data[2*i:])))
		}
	case I8:
		for i := range out {
			out[i] = int64(int8(t.Data[i]))
		}
	case U8, BOOL:
		for i := range out {
			out[i] = int64(t.Data[i])
		}
	default:
		return nil, fmt.Errorf("safetensors: Int64: %s is not an integer dtype", t.DType)
	}
	return out, nil
}

// ToFloat32 returns the tensor converted to F32 (from F32, F16, BF16 or F64).
func (t Tensor) ToFloat32() (Tensor, error) {
	v, err := t.Float32()
	if err != nil {
		return Tensor{}, err
	}
	return FromFloat32(t.Shape, v)
}

// ToFloat16 returns the tensor converted to F16 with round-to-nearest-even
// (from F32, F16, BF16 or F64; F64 is rounded once, directly to half).
func (t Tensor) ToFloat16() (Tensor, error) { return t.toHalf(F16, 5, 10) }

// ToBFloat16 returns the tensor converted to BF16 with round-to-nearest-even
// (from F32, F16, BF16 or F64; F64 is rounded once, directly to bfloat16).
func (t Tensor) ToBFloat16() (Tensor, error) { return t.toHalf(BF16, 8, 7) }

func (t Tensor) toHalf(d DType, eb, mb uint) (Tensor, error) {
	var vals []float64
	if t.DType == F64 {
		if err := t.Validate(); err != nil {
			return Tensor{}, fmt.Errorf("safetensors: To%s: %w", d, err)
		}
		vals = make([]float64, len(t.Data)/8)
		for i := range vals {
			vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
		}
	} else {
		v, err := t.Float32()
		if err != nil {
			return Tensor{}, err
		}
		vals = make([]float64, len(v))
		for i, x := range v {
			vals[i] = float64(x)
		}
	}
	out := Tensor{DType: d, Shape: append([]int64{}, t.Shape...), Data: make([]byte, 2*len(vals))}
	for i, x := range vals {
		binary.LittleEndian.PutUint16(out.Data[2*i:], uint16(narrow(x, eb, mb)))
	}
	return out, nil
}
