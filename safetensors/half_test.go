package safetensors

import (
	"math"
	"testing"
)

func f32(bits uint32) float32 { return math.Float32frombits(bits) }

func TestFloat16bits(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"zero", 0, 0x0000},
		{"negative zero", f32(0x80000000), 0x8000},
		{"one", 1, 0x3c00},
		{"minus two", -2, 0xc000},
		{"half", 0.5, 0x3800},
		{"0.1", 0.1, 0x2e66},
		{"pi", math.Pi, 0x4248},
		{"max half", 65504, 0x7bff},
		{"just below overflow tie", 65519, 0x7bff},
		{"overflow tie rounds to inf", 65520, 0x7c00},
		{"overflow", 1e6, 0x7c00},
		{"max float32", math.MaxFloat32, 0x7c00},
		{"+inf", float32(math.Inf(1)), 0x7c00},
		{"-inf", float32(math.Inf(-1)), 0xfc00},
		{"quiet nan", f32(0x7fc00000), 0x7e00},
		{"negative nan", f32(0xffc00000), 0xfe00},
		{"signalling nan stays nan", f32(0x7f800001), 0x7e00},
		{"nan payload kept", f32(0x7fa02000), 0x7f01},
		{"1+2^-11 ties to even (down)", 1 + 1.0/2048, 0x3c00},
		{"1+3*2^-11 ties to even (up)", 1 + 3.0/2048, 0x3c02},
		{"1+2^-11+tiny rounds up", 1 + 1.0/2048 + 1.0/(1<<20), 0x3c01},
		{"1+2^-11-tiny rounds down", 1 + 1.0/2048 - 1.0/(1<<20), 0x3c00},
		{"mantissa carry into exponent", 2 - 1.0/4096, 0x4000},
		{"min normal", 1.0 / (1 << 14), 0x0400},
		{"max subnormal", 1023.0 / (1 << 24), 0x03ff},
		{"rounds up to min normal", (1023.0 + 0.5) / (1 << 24), 0x0400},
		{"min subnormal", 1.0 / (1 << 24), 0x0001},
		{"negative min subnormal", -1.0 / (1 << 24), 0x8001},
		{"half min subnormal ties to zero", 1.0 / (1 << 25), 0x0000},
		{"just above half min subnormal", f32(math.Float32bits(1.0/(1<<25)) + 1), 0x0001},
		{"1.5 min subnormal ties to 2", 3.0 / (1 << 25), 0x0002},
		{"2.5 min subnormal ties to 2", 5.0 / (1 << 25), 0x0002},
		{"tiny", 1e-10, 0x0000},
		{"negative tiny", -1e-10, 0x8000},
		{"float32 subnormal", f32(0x00000001), 0x0000},
	}
	for _, tt := range tests {
		if got := Float16bits(tt.in); got != tt.want {
			t.Errorf("%s: Float16bits(%g) = %#04x, want %#04x", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestFloat16frombits(t *testing.T) {
	tests := []struct {
		in   uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0400, 1.0 / (1 << 14)},
		{0x0001, 1.0 / (1 << 24)}, {0x8001, -1.0 / (1 << 24)}, {0x03ff, 1023.0 / (1 << 24)},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))}, {0x3555, 0.333251953125},
	}
	for _, tt := range tests {
		if got := Float16frombits(tt.in); got != tt.want {
			t.Errorf("Float16frombits(%#04x) = %g, want %g", tt.in, got, tt.want)
		}
	}
	if got := Float16frombits(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("Float16frombits(0x8000) = %g, want -0", got)
	}
	if got := Float16frombits(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("Float16frombits(0x7e00) = %g, want NaN", got)
	}
}

// Every half value widens exactly and narrows back to itself; NaNs stay NaN.
func TestFloat16RoundTripAllBits(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := Float16frombits(uint16(h))
		got := Float16bits(f)
		isNaN := h&0x7c00 == 0x7c00 && h&0x3ff != 0
		if isNaN {
			if got&0x7c00 != 0x7c00 || got&0x3ff == 0 || got&0x8000 != uint16(h)&0x8000 {
				t.Fatalf("NaN %#04x -> %g -> %#04x", h, f, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, got)
		}
	}
}

// Midpoints between neighbouring halves round to the even one, and points
// just off the midpoint round to the nearer one.
func TestFloat16Midpoints(t *testing.T) {
	for h := uint16(0); h < 0x7bff; h++ {
		lo, hi := float64(Float16frombits(h)), float64(Float16frombits(h+1))
		mid := (lo + hi) / 2 // exact in float64
		wantMid := h
		if h&1 == 1 {
			wantMid = h + 1
		}
		if got := uint16(narrow(mid, 5, 10)); got != wantMid {
			t.Fatalf("midpoint of %#04x,%#04x: got %#04x want %#04x", h, h+1, got, wantMid)
		}
		eps := (hi - lo) / 1024
		if got := uint16(narrow(mid-eps, 5, 10)); got != h {
			t.Fatalf("below midpoint of %#04x: got %#04x", h, got)
		}
		if got := uint16(narrow(mid+eps, 5, 10)); got != h+1 {
			t.Fatalf("above midpoint of %#04x: got %#04x", h, got)
		}
	}
}

func TestBFloat16bits(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"zero", 0, 0x0000},
		{"negative zero", f32(0x80000000), 0x8000},
		{"one", 1, 0x3f80},
		{"minus two", -2, 0xc000},
		{"0.1", 0.1, 0x3dcd},
		{"pi", math.Pi, 0x4049},
		{"tie to even down", f32(0x3f808000), 0x3f80},
		{"tie to even up", f32(0x3f818000), 0x3f82},
		{"above tie", f32(0x3f808001), 0x3f81},
		{"max float32 overflows", math.MaxFloat32, 0x7f80},
		{"largest finite bf16", f32(0x7f7f0000), 0x7f7f},
		{"+inf", float32(math.Inf(1)), 0x7f80},
		{"-inf", float32(math.Inf(-1)), 0xff80},
		{"quiet nan", f32(0x7fc00000), 0x7fc0},
		{"signalling nan stays nan", f32(0x7f800001), 0x7fc0},
		{"subnormal tie to zero", f32(0x00008000), 0x0000},
		{"subnormal tie to even", f32(0x00018000), 0x0002},
		{"subnormal exact", f32(0x00010000), 0x0001},
		{"subnormal to min normal", f32(0x007fffff), 0x0080},
	}
	for _, tt := range tests {
		if got := BFloat16bits(tt.in); got != tt.want {
			t.Errorf("%s: BFloat16bits(%g) = %#04x, want %#04x", tt.name, tt.in, got, tt.want)
		}
	}
}

// bfloat16 of a float32 is the classic bit trick; check it on a sweep.
func TestBFloat16MatchesBitTrick(t *testing.T) {
	for i := uint64(0); i < 1<<32; i += 65521 {
		b := uint32(i)
		f := math.Float32frombits(b)
		if math.IsNaN(float64(f)) {
			continue
		}
		want := uint16((b + 0x7fff + (b>>16)&1) >> 16)
		if got := BFloat16bits(f); got != want {
			t.Fatalf("BFloat16bits(%#08x) = %#04x, want %#04x", b, got, want)
		}
		if back := BFloat16frombits(want); math.Float32bits(back) != uint32(want)<<16 {
			t.Fatalf("BFloat16frombits(%#04x) = %#08x", want, math.Float32bits(back))
		}
	}
}

// Rounding a float64 straight to half avoids double rounding through float32.
func TestNarrowFromFloat64NoDoubleRounding(t *testing.T) {
	x := 1 + 1.0/2048 + 1.0/(1<<40) // above the 0x3c00/0x3c01 midpoint by less than a float32 ulp
	if via32 := Float16bits(float32(x)); via32 != 0x3c00 {
		t.Fatalf("setup: via float32 got %#04x", via32)
	}
	if got := uint16(narrow(x, 5, 10)); got != 0x3c01 {
		t.Errorf("narrow(%v) = %#04x, want 0x3c01", x, got)
	}
}
