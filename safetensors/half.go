package safetensors

import (
	"encoding/binary"
	"math"
	"sync"
)

// Float16bits returns the IEEE 754 binary16 encoding of f, rounded to nearest
// even. Values beyond the half range become ±Inf, tiny values become
// subnormals or ±0, NaN stays a (quiet) NaN.
func Float16bits(f float32) uint16 { return uint16(narrow(float64(f), 5, 10)) }

// Float16frombits returns the float32 value of a binary16 encoding; the
// conversion is exact.
func Float16frombits(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0x1f: // Inf or NaN: keep the payload.
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0: // zero or subnormal: mant * 2^-24, exact in float32.
		v := float32(mant) / (1 << 24)
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp-15+127)<<23 | mant<<13)
}

// BFloat16bits returns the bfloat16 encoding of f (the top half of a
// float32), rounded to nearest even. NaN stays a (quiet) NaN.
func BFloat16bits(f float32) uint16 { return uint16(narrow(float64(f), 8, 7)) }

// BFloat16frombits returns the float32 value of a bfloat16 encoding (exact).
func BFloat16frombits(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// narrow rounds x to nearest even in a binary format with eb exponent bits
// and mb explicit mantissa bits (binary16: 5,10; bfloat16: 8,7) and returns
// its encoding. Rounding straight from float64 avoids the double rounding of
// going through float32 first.
func narrow(x float64, eb, mb uint) uint64 {
	b := math.Float64bits(x)
	sign := (b >> 63) << (eb + mb)
	exp := int(b>>52) & 0x7ff
	mant := b & (1<<52 - 1)
	maxExp := 1<<eb - 1
	inf := uint64(maxExp) << mb
	switch {
	case exp == 0x7ff && mant == 0:
		return sign | inf
	case exp == 0x7ff: // NaN: set the quiet bit, keep the top payload bits.
		return sign | inf | 1<<(mb-1) | mant>>(52-mb)
	case exp == 0: // float64 zero or subnormal: far below any target's range.
		return sign
	}
	e := exp - 1023 + (1<<(eb-1) - 1) // biased exponent in the target format
	if e >= maxExp {
		return sign | inf
	}
	sig := mant | 1<<52 // 53-bit significand with the implicit bit
	if e >= 1 {
		// Normal: q carries the implicit bit, so a mantissa carry lands in
		// the exponent and, from the largest exponent, produces Inf.
		q := roundShift(sig, 52-mb)
		return sign | (uint64(e-1)<<mb + q)
	}
	// Subnormal in the target: units of the smallest subnormal.
	s := 52 - mb + uint(1-e)
	if s > 53 { // below half the smallest subnormal
		return sign
	}
	return sign | roundShift(sig, s)
}

// roundShift returns v >> s rounded to nearest, ties to even (1 <= s <= 63).
func roundShift(v uint64, s uint) uint64 {
	q := v >> s
	r := v & (1<<s - 1)
	half := uint64(1) << (s - 1)
	if r > half || (r == half && q&1 == 1) {
		q++
	}
	return q
}

// f16ToBF16 maps every binary16 encoding to the bfloat16 nearest its value
// (built once by Float16frombits and BFloat16bits: exact, ties to even).
var f16ToBF16 = sync.OnceValue(func() *[1 << 16]uint16 {
	var t [1 << 16]uint16
	for h := range t {
		t[h] = BFloat16bits(Float16frombits(uint16(h)))
	}
	return &t
})

// F16ToBF16 rewrites little-endian binary16 values in b as bfloat16, in
// place (both take two bytes): how an fp16 checkpoint is loaded into a
// bf16 network without a float32 copy.
func F16ToBF16(b []byte) {
	t := f16ToBF16()
	for i := 0; i+1 < len(b); i += 2 {
		v := t[binary.LittleEndian.Uint16(b[i:])]
		binary.LittleEndian.PutUint16(b[i:], v)
	}
}
