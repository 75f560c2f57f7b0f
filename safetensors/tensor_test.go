package safetensors

import (
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestFromFloat32(t *testing.T) {
	tt, err := FromFloat32([]int64{2, 2}, []float32{0, 1, -2, 0.5})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0, 0, 0, 0x3f}
	if tt.DType != F32 || !reflect.DeepEqual(tt.Shape, []int64{2, 2}) || !reflect.DeepEqual(tt.Data, want) {
		t.Fatalf("FromFloat32 = %+v", tt)
	}
	if tt.NumElements() != 4 {
		t.Errorf("NumElements = %d", tt.NumElements())
	}
	got, err := tt.Float32()
	if err != nil || !reflect.DeepEqual(got, []float32{0, 1, -2, 0.5}) {
		t.Errorf("Float32 = %v, %v", got, err)
	}
	if _, err := FromFloat32([]int64{2, 3}, []float32{1}); err == nil || !strings.Contains(err.Error(), "holds 6 elements, got 1") {
		t.Errorf("length mismatch: %v", err)
	}
	if _, err := FromFloat32([]int64{-1}, nil); err == nil {
		t.Error("negative shape accepted")
	}
	s, err := FromFloat32(nil, []float32{7})
	if err != nil || s.NumElements() != 1 || len(s.Data) != 4 {
		t.Errorf("scalar: %+v %v", s, err)
	}
}

func TestShapeIsCopied(t *testing.T) {
	shape := []int64{3}
	tt, _ := FromInt64(shape, []int64{1, 2, 3})
	shape[0] = 99
	if tt.Shape[0] != 3 {
		t.Error("tensor aliases the caller's shape")
	}
}

func TestInt64(t *testing.T) {
	tt, err := FromInt64([]int64{3}, []int64{-1, 0, math.MaxInt64})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tt.Int64()
	if err != nil || !reflect.DeepEqual(got, []int64{-1, 0, math.MaxInt64}) {
		t.Fatalf("Int64 = %v, %v", got, err)
	}
	cases := []struct {
		d    DType
		data []byte
		want []int64
	}{
		{I32, []byte{0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0}, []int64{-1, 2}},
		{I16, []byte{0xfe, 0xff, 3, 0}, []int64{-2, 3}},
		{I8, []byte{0x80, 5}, []int64{-128, 5}},
		{U8, []byte{0x80, 5}, []int64{128, 5}},
		{BOOL, []byte{1, 0}, []int64{1, 0}},
	}
	for _, c := range cases {
		got, err := Tensor{DType: c.d, Shape: []int64{2}, Data: c.data}.Int64()
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Int64 = %v, %v; want %v", c.d, got, err, c.want)
		}
	}
	if _, err := (Tensor{DType: F32, Shape: []int64{1}, Data: make([]byte, 4)}).Int64(); err == nil {
		t.Error("Int64 of F32 succeeded")
	}
	if _, err := (Tensor{DType: I32, Shape: []int64{2}, Data: make([]byte, 4)}).Int64(); err == nil {
		t.Error("Int64 with short data succeeded")
	}
}

func TestFloatConversions(t *testing.T) {
	vals := []float32{0, 1, -2, 0.1, 65504, 1e-7, float32(math.Inf(-1))}
	src, _ := FromFloat32([]int64{7}, vals)

	h, err := src.ToFloat16()
	if err != nil || h.DType != F16 || len(h.Data) != 14 {
		t.Fatalf("ToFloat16 = %+v, %v", h, err)
	}
	for i, v := range vals {
		if got, want := binary.LittleEndian.Uint16(h.Data[2*i:]), Float16bits(v); got != want {
			t.Errorf("F16[%d] = %#04x, want %#04x", i, got, want)
		}
	}
	back, err := h.Float32()
	if err != nil || back[1] != 1 || back[2] != -2 || back[4] != 65504 {
		t.Errorf("F16 -> Float32 = %v, %v", back, err)
	}

	bf, err := src.ToBFloat16()
	if err != nil || bf.DType != BF16 {
		t.Fatalf("ToBFloat16 = %+v, %v", bf, err)
	}
	if got := binary.LittleEndian.Uint16(bf.Data[6:]); got != 0x3dcd {
		t.Errorf("BF16(0.1) = %#04x", got)
	}
	f32t, err := bf.ToFloat32()
	if err != nil || f32t.DType != F32 {
		t.Fatalf("ToFloat32 = %+v, %v", f32t, err)
	}

	// F64 goes straight to half (no double rounding) and rounds to F32.
	x := 1 + 1.0/2048 + 1.0/(1<<40)
	d := Tensor{DType: F64, Shape: []int64{1}, Data: binary.LittleEndian.AppendUint64(nil, math.Float64bits(x))}
	h64, err := d.ToFloat16()
	if err != nil || binary.LittleEndian.Uint16(h64.Data) != 0x3c01 {
		t.Errorf("F64 ToFloat16 = %x, %v", h64.Data, err)
	}
	f, err := d.Float32()
	if err != nil || f[0] != float32(x) {
		t.Errorf("F64 Float32 = %v, %v", f, err)
	}

	if _, err := (Tensor{DType: I32, Shape: []int64{1}, Data: make([]byte, 4)}).Float32(); err == nil {
		t.Error("Float32 of I32 succeeded")
	}
	if _, err := (Tensor{DType: I64, Shape: []int64{1}, Data: make([]byte, 8)}).ToFloat16(); err == nil {
		t.Error("ToFloat16 of I64 succeeded")
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		t    Tensor
		want string
	}{
		{Tensor{DType: "F8", Shape: []int64{1}, Data: []byte{0}}, `unknown dtype "F8"`},
		{Tensor{DType: F32, Shape: []int64{-1}}, "negative dimension"},
		{Tensor{DType: F32, Shape: []int64{1 << 32, 1 << 32}}, "byte size overflows"},
		{Tensor{DType: F64, Shape: []int64{1 << 62}}, "byte size overflows"},
		{Tensor{DType: F32, Shape: []int64{2}, Data: make([]byte, 4)}, "data holds 4 bytes but F32 [2] needs 8"},
	}
	for _, c := range cases {
		err := c.t.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%v %v) = %v, want %q", c.t.DType, c.t.Shape, err, c.want)
		}
	}
	if err := (Tensor{DType: U8, Shape: []int64{0, 5}}).Validate(); err != nil {
		t.Errorf("empty tensor: %v", err)
	}
}

func TestDTypeSize(t *testing.T) {
	want := map[DType]int{F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1, "U64": 0, "": 0}
	for d, n := range want {
		if d.Size() != n {
			t.Errorf("%q.Size() = %d, want %d", d, d.Size(), n)
		}
	}
	if len(DTypes()) != 10 {
		t.Errorf("DTypes() = %v", DTypes())
	}
}
