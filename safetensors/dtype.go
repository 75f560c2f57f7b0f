// Package safetensors reads and writes the safetensors format used for every
// ddgi checkpoint and shipped weight file.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON header, then one byte buffer that the tensors tile contiguously:
//
//	{"__metadata__":{"format":"ddgi"},
//	 "mapping.fc0.weight":{"dtype":"F32","shape":[512,512],"data_offsets":[0,1048576]}, ...}
//
// Offsets are relative to the start of the buffer, data is little-endian and
// row-major (C order). The package handles only bytes, dtypes and shapes; the
// tensor engines convert a Tensor into their own type. Files written here are
// byte-for-byte what the reference Python/Rust library writes for the same
// tensors and metadata (see docs/safetensors.md).
package safetensors

import "fmt"

// DType names an element type exactly as it appears in the header.
type DType string

// Element types supported by ddgi. The names are the header spellings.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	BOOL DType = "BOOL"
)

// DTypes returns every supported element type, widest first.
func DTypes() []DType { return []DType{F64, I64, F32, I32, F16, BF16, I16, I8, U8, BOOL} }

// Size is the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, BOOL:
		return 1
	}
	return 0
}

// Valid reports whether d is one of the supported dtypes.
func (d DType) Valid() bool { return d.Size() != 0 }

// String returns the header spelling.
func (d DType) String() string { return string(d) }

// writeRank orders dtypes the way the reference serializer orders tensors in
// the buffer: it sorts by its Dtype enum (BOOL < U8 < I8 < I16 < F16 < BF16 <
// I32 < F32 < F64 < I64) descending, then by name. Widest-first keeps every
// tensor naturally aligned, since the header is padded to 8 bytes.
func (d DType) writeRank() int {
	switch d {
	case BOOL:
		return 0
	case U8:
		return 1
	case I8:
		return 2
	case I16:
		return 5
	case F16:
		return 7
	case BF16:
		return 8
	case I32:
		return 9
	case F32:
		return 11
	case F64:
		return 12
	case I64:
		return 13
	}
	panic(fmt.Sprintf("safetensors: unknown dtype %q", string(d)))
}
