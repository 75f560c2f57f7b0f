package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
)

// assemble builds a file byte by byte: u64 little-endian header length,
// the header exactly as given (no padding added), then data.
func assemble(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

func readBytes(b []byte) (*File, error) { return Read(bytes.NewReader(b), int64(len(b))) }

func f32le(v ...float32) []byte {
	var out []byte
	for _, x := range v {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
	}
	return out
}

func mustF32(t *testing.T, shape []int64, v ...float32) Tensor {
	t.Helper()
	tt, err := FromFloat32(shape, v)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func write(t *testing.T, f *File) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Byte vectors from the reference implementation's own serializer tests
// (huggingface/safetensors, safetensors/src/tensor.rs): Write must produce
// them exactly and Read must accept them.
func TestReferenceVectors(t *testing.T) {
	data := f32le(0, 1, 2, 3, 4, 5)
	cases := []struct {
		name   string
		f      *File
		header string
		hlen   byte // the first byte of the reference output
	}{
		{
			name:   "serialization",
			f:      &File{Tensors: map[string]Tensor{"attn.0": mustF32(t, []int64{1, 2, 3}, 0, 1, 2, 3, 4, 5)}},
			header: `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`,
			hlen:   64,
		},
		{
			name:   "forced alignment",
			f:      &File{Tensors: map[string]Tensor{"attn0": mustF32(t, []int64{1, 1, 2, 3}, 0, 1, 2, 3, 4, 5)}},
			header: `{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}` + "       ",
			hlen:   72,
		},
		{
			name:   "empty",
			f:      &File{},
			header: "{}      ",
			hlen:   8,
		},
		{
			name:   "empty with metadata",
			f:      &File{Metadata: map[string]string{"framework": "pt"}},
			header: `{"__metadata__":{"framework":"pt"}}` + "     ",
			hlen:   40,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := append([]byte{c.hlen, 0, 0, 0, 0, 0, 0, 0}, c.header...)
			if len(c.f.Tensors) > 0 {
				want = append(want, data...)
			}
			got := write(t, c.f)
			if !bytes.Equal(got, want) {
				t.Fatalf("Write:\n got %q\nwant %q", got, want)
			}
			f, err := readBytes(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.Tensors, orEmpty(c.f.Tensors)) || !reflect.DeepEqual(f.Metadata, orEmptyMeta(c.f.Metadata)) {
				t.Fatalf("Read = %+v, want %+v", f, c.f)
			}
		})
	}
}

func orEmpty(m map[string]Tensor) map[string]Tensor {
	if m == nil {
		return map[string]Tensor{}
	}
	return m
}

func orEmptyMeta(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Files written by older Python versions (from the reference's Python tests):
// unpadded header, and metadata with padding.
func TestReadPythonFiles(t *testing.T) {
	raw := append([]byte("<\x00\x00\x00\x00\x00\x00\x00"), `{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}`...)
	raw = append(raw, make([]byte, 16)...)
	f, err := readBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.Tensors["test"].Int64(); err != nil || !reflect.DeepEqual(v, []int64{0, 0, 0, 0}) {
		t.Fatalf("test = %v, %v", v, err)
	}

	raw = append([]byte("f\x00\x00\x00\x00\x00\x00\x00"),
		`{"__metadata__":{"framework":"pt"},"test1":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}       `...)
	raw = append(raw, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0)
	f, err = readBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["framework"] != "pt" {
		t.Errorf("metadata = %v", f.Metadata)
	}
	if v, _ := f.Tensors["test1"].Int64(); !reflect.DeepEqual(v, []int64{1, 2, 3, 4}) {
		t.Errorf("test1 = %v", v)
	}
	if !reflect.DeepEqual(f.Tensors["test1"].Shape, []int64{2, 2}) {
		t.Errorf("shape = %v", f.Tensors["test1"].Shape)
	}
}

// Hand-assembled file exercising what readers must accept: any key order,
// whitespace, tensors listed out of buffer order, unknown entry members,
// scalars, empty tensors, escaped names.
func TestReadHandAssembled(t *testing.T) {
	header := "{ \"b\\u00e9\" : {\"shape\": [], \"data_offsets\": [8, 12], \"dtype\": \"F32\", \"extra\": 1},\n" +
		"  \"a\": {\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},\n" +
		"  \"__metadata__\": { \"format\" : \"ddgi\", \"config\": \"{\\\"dim\\\":4}\" },\n" +
		"  \"empty\": {\"dtype\":\"U8\",\"shape\":[0,3],\"data_offsets\":[12,12]},\n" +
		"  \"z\": {\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[12,14]} }  "
	var data []byte
	data = binary.LittleEndian.AppendUint64(data, math.Float64bits(-1.5))
	data = append(data, f32le(2.5)...)
	data = append(data, 1, 0)
	f, err := readBytes(assemble(header, data))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Names(); !reflect.DeepEqual(got, []string{"a", "bé", "empty", "z"}) {
		t.Errorf("Names = %q", got)
	}
	if !reflect.DeepEqual(f.Metadata, map[string]string{"format": "ddgi", "config": `{"dim":4}`}) {
		t.Errorf("Metadata = %v", f.Metadata)
	}
	if v, _ := f.Tensors["a"].Float32(); !reflect.DeepEqual(v, []float32{-1.5}) {
		t.Errorf("a = %v", v)
	}
	if b := f.Tensors["bé"]; len(b.Shape) != 0 || b.NumElements() != 1 {
		t.Errorf("bé = %+v", b)
	} else if v, _ := b.Float32(); v[0] != 2.5 {
		t.Errorf("bé = %v", v)
	}
	if e := f.Tensors["empty"]; e.NumElements() != 0 || len(e.Data) != 0 || !reflect.DeepEqual(e.Shape, []int64{0, 3}) {
		t.Errorf("empty = %+v", e)
	}
	// Data slices are capped: appending to one must not clobber the next.
	a := f.Tensors["a"]
	_ = append(a.Data, 0xff)
	if v, _ := f.Tensors["bé"].Float32(); v[0] != 2.5 {
		t.Error("append to one tensor's Data overwrote its neighbour")
	}
	if f, err := readBytes(assemble(`{"__metadata__":null}`, nil)); err != nil || len(f.Metadata) != 0 {
		t.Errorf("null metadata: %v %v", f, err)
	}
}

// Write orders the buffer like the reference (widest dtype first, then name),
// lists the header in that order, pads it, and escapes like serde_json.
func TestWriteLayout(t *testing.T) {
	f := &File{
		Metadata: map[string]string{"format": "ddgi", "config": "{\"a\":\"<&>\"}\n\u2028\x01\x7f"},
		Tensors: map[string]Tensor{
			"u":   {DType: U8, Shape: []int64{3}, Data: []byte{1, 2, 3}},
			"f32": mustF32(t, []int64{1}, 1),
			"i64": {DType: I64, Shape: []int64{}, Data: make([]byte, 8)},
			"h":   {DType: F16, Shape: []int64{1}, Data: []byte{0x00, 0x3c}},
			"bf":  {DType: BF16, Shape: []int64{1}, Data: []byte{0x80, 0x3f}},
			"a32": mustF32(t, []int64{1}, 2),
		},
	}
	header := `{"__metadata__":{"config":"{\"a\":\"<&>\"}\n` + "\u2028" + `\u0001` + "\x7f" + `","format":"ddgi"},` +
		`"i64":{"dtype":"I64","shape":[],"data_offsets":[0,8]},` +
		`"a32":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},` +
		`"f32":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},` +
		`"bf":{"dtype":"BF16","shape":[1],"data_offsets":[16,18]},` +
		`"h":{"dtype":"F16","shape":[1],"data_offsets":[18,20]},` +
		`"u":{"dtype":"U8","shape":[3],"data_offsets":[20,23]}}`
	for len(header)%8 != 0 {
		header += " "
	}
	var data []byte
	data = append(data, make([]byte, 8)...)
	data = append(data, f32le(2, 1)...)
	data = append(data, 0x80, 0x3f, 0x00, 0x3c, 1, 2, 3)
	want := assemble(header, data)
	got := write(t, f)
	if !bytes.Equal(got, want) {
		t.Fatalf("Write:\n got %q\nwant %q", got, want)
	}
	back, err := readBytes(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Metadata, f.Metadata) {
		t.Errorf("metadata round trip: %q", back.Metadata)
	}
}

func TestWriteErrors(t *testing.T) {
	ok := mustF32(t, []int64{1}, 1)
	cases := []struct {
		name string
		f    *File
		want string
	}{
		{"nil", nil, "nil *File"},
		{"reserved name", &File{Tensors: map[string]Tensor{"__metadata__": ok}}, "reserved"},
		{"bad utf8 name", &File{Tensors: map[string]Tensor{"\xff": ok}}, "not valid UTF-8"},
		{"bad utf8 metadata", &File{Metadata: map[string]string{"k": "\xff"}}, "not valid UTF-8"},
		{"unknown dtype", &File{Tensors: map[string]Tensor{"x": {DType: "F8", Shape: []int64{1}, Data: []byte{0}}}}, `tensor "x": unknown dtype "F8"`},
		{"short data", &File{Tensors: map[string]Tensor{"x": {DType: F32, Shape: []int64{5, 6}, Data: make([]byte, 100)}}}, `tensor "x": data holds 100 bytes but F32 [5 6] needs 120`},
		{"negative shape", &File{Tensors: map[string]Tensor{"x": {DType: F32, Shape: []int64{-1}}}}, "negative"},
	}
	for _, c := range cases {
		var b bytes.Buffer
		err := Write(&b, c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Write error %v, want %q", c.name, err, c.want)
		}
		if b.Len() != 0 {
			t.Errorf("%s: Write wrote %d bytes before failing", c.name, b.Len())
		}
	}
}

// A tensor of every dtype, with scalar and empty shapes, survives
// Write→Read, rewrites identically, and lands naturally aligned.
func TestRoundTripAllDTypes(t *testing.T) {
	shapes := [][]int64{{3, 2}, {}, {0}, {1, 1, 5}}
	f := &File{Metadata: map[string]string{"format": "ddgi", "ddgi_version": "0.1"}, Tensors: map[string]Tensor{}}
	seed := byte(1)
	for _, d := range DTypes() {
		for i, s := range shapes {
			tt := Tensor{DType: d, Shape: s}
			n, _ := byteSize(d, s)
			tt.Data = make([]byte, n)
			for j := range tt.Data {
				seed = seed*33 + 7
				tt.Data[j] = seed
			}
			if d == BOOL {
				for j := range tt.Data {
					tt.Data[j] &= 1
				}
			}
			f.Tensors[fmt.Sprintf("%s.%d", strings.ToLower(string(d)), i)] = tt
		}
	}
	raw := write(t, f)
	hlen := binary.LittleEndian.Uint64(raw)
	if (8+hlen)%8 != 0 {
		t.Errorf("header length %d not padded", hlen)
	}
	back, err := readBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, f) {
		t.Fatalf("round trip mismatch:\n got %+v\nwant %+v", back, f)
	}
	if again := write(t, back); !bytes.Equal(again, raw) {
		t.Error("rewriting a read file changed its bytes")
	}
	for name, tt := range back.Tensors {
		if len(tt.Data) == 0 {
			continue
		}
		off := bytes.Index(raw, tt.Data) // data are distinct pseudo-random bytes
		if off%tt.DType.Size() != 0 {
			t.Errorf("%s (%s) at file offset %d is misaligned", name, tt.DType, off)
		}
	}
}

type namedReader struct {
	*bytes.Reader
	name string
}

func (n namedReader) Name() string { return n.name }

func TestReadErrorMessageNamesFileAndTensor(t *testing.T) {
	raw := assemble(`{"mapping.fc0.weight":{"dtype":"F32","shape":[5,6],"data_offsets":[0,100]}}`, make([]byte, 100))
	_, err := Read(namedReader{bytes.NewReader(raw), "model.safetensors"}, int64(len(raw)))
	want := `safetensors: model.safetensors: tensor "mapping.fc0.weight": data_offsets [0,100] hold 100 bytes but F32 [5 6] needs 120`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "model.safetensors" || e.Tensor != "mapping.fc0.weight" {
		t.Errorf("errors.As: %#v", e)
	}
}

func TestReadErrors(t *testing.T) {
	f32x1 := `{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`
	hdr := func(n uint64, rest string) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
	}
	cases := []struct {
		name   string
		raw    []byte
		tensor string // expected Error.Tensor
		want   string
	}{
		{"empty file", nil, "", "file is 0 bytes, shorter than the 8-byte header length"},
		{"seven bytes", []byte{2, 0, 0, 0, 0, 0, 0}, "", "shorter than the 8-byte"},
		{"header longer than file", hdr(100, "{}"), "", "header length 100 exceeds the file (2 bytes after the length)"},
		{"header over 100MB", hdr(100_000_001, "{}"), "", "header length 100000001 exceeds the 100000000-byte limit"},
		{"header length max u64", hdr(math.MaxUint64, "{}"), "", "exceeds the 100000000-byte limit"},
		{"zero header", hdr(0, ""), "", "does not start with '{'"},
		{"not an object", assemble(`[1,2]   `, nil), "", "does not start with '{'"},
		{"leading space", assemble(` {}`, nil), "", "does not start with '{'"},
		{"invalid json", assemble(`{"a":`, nil), "", "header is not a valid JSON object"},
		{"trailing garbage", assemble(`{}x`, nil), "", "header is not a valid JSON object"},
		{"two objects", assemble(`{}{}`, nil), "", "unexpected '{' after the object"},
		{"invalid utf8", assemble("{\"\xff\":1}", nil), "", "not valid UTF-8"},
		{"duplicate tensor", assemble(`{"a":`+f32x1+`,"a":`+f32x1+`}`, make([]byte, 4)), "", `duplicate key "a"`},
		{"duplicate member", assemble(`{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", `duplicate key "dtype"`},
		{"entry not object", assemble(`{"a":1}`, nil), "a", "expected a JSON object, found 1"},
		{"unknown dtype", assemble(`{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}`, []byte{0}), "a", `unknown dtype "Q4"`},
		{"lower-case dtype", assemble(`{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", `unknown dtype "f32"`},
		{"dtype not string", assemble(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "dtype 4 is not a string"},
		{"missing dtype", assemble(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", `missing "dtype"`},
		{"missing shape", assemble(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), "a", `missing "shape"`},
		{"missing offsets", assemble(`{"a":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), "a", `missing "data_offsets"`},
		{"case-folded member", assemble(`{"a":{"DTYPE":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", `missing "dtype"`},
		{"negative shape", assemble(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "shape [-1]: negative value -1"},
		{"fractional shape", assemble(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "not an array of integers"},
		{"null shape", assemble(`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "shape null: not an array"},
		{"huge shape", assemble(`{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "not an array of integers"},
		{"shape product overflow", assemble(`{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "byte size overflows int64"},
		{"byte size overflow", assemble(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "byte size overflows int64"},
		{"zero dim hides overflow", assemble(`{"a":{"dtype":"U8","shape":[0,4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "byte size overflows"},
		{"offsets reversed", assemble(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, make([]byte, 4)), "a", "data_offsets [4,0] are reversed"},
		{"offsets past buffer", assemble(`{"a":{"dtype":"F32","shape":[25],"data_offsets":[0,100]}}`, make([]byte, 16)), "a", "data_offsets [0,100] run past the 16-byte data buffer"},
		{"offsets one number", assemble(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, make([]byte, 4)), "a", "want [begin, end]"},
		{"offsets three numbers", assemble(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 8)), "a", "want [begin, end]"},
		{"offsets negative", assemble(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, make([]byte, 4)), "a", "want [begin, end]"},
		{"offsets not array", assemble(`{"a":{"dtype":"F32","shape":[1],"data_offsets":"0,4"}}`, make([]byte, 4)), "a", "want [begin, end]"},
		{"size mismatch", assemble(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), "a", "data_offsets [0,4] hold 4 bytes but F32 [2] needs 8"},
		{"hole", assemble(`{"a":`+f32x1+`,"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 12)), "b", "data_offsets [8,12] leave a hole at bytes [4,8)"},
		{"leading hole", assemble(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "a", "leave a hole at bytes [0,4)"},
		{"overlap", assemble(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "b", `data_offsets [4,8] overlap tensor "a", which ends at 8`},
		{"same range twice", assemble(`{"a":`+f32x1+`,"b":`+f32x1+`}`, make([]byte, 4)), "b", `overlap tensor "a"`},
		{"trailing bytes", assemble(`{"a":`+f32x1+`}`, make([]byte, 8)), "", "tensors cover 4 bytes but the data buffer holds 8"},
		{"no tensors but data", assemble(`{}`, make([]byte, 8)), "", "tensors cover 0 bytes but the data buffer holds 8"},
		{"metadata value number", assemble(`{"__metadata__":{"k":1}}`, nil), "", `__metadata__: value of "k" is 1, not a string`},
		{"metadata value null", assemble(`{"__metadata__":{"k":null}}`, nil), "", `value of "k" is null, not a string`},
		{"metadata value object", assemble(`{"__metadata__":{"k":{"a":"b"}}}`, nil), "", `value of "k" is {"a":"b"}, not a string`},
		{"metadata not object", assemble(`{"__metadata__":"x"}`, nil), "", `__metadata__: expected a JSON object, found "x"`},
		{"metadata duplicate key", assemble(`{"__metadata__":{"k":"a","k":"b"}}`, nil), "", `duplicate key "k"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := readBytes(c.raw)
			if err == nil {
				t.Fatalf("Read succeeded: %+v", f)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q\nwant substring %q", err, c.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if e.Tensor != c.tensor {
				t.Errorf("Error.Tensor = %q, want %q", e.Tensor, c.tensor)
			}
		})
	}
}

// A source holding fewer bytes than the size it is read with fails cleanly.
func TestReadTruncatedSource(t *testing.T) {
	raw := assemble(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, make([]byte, 16))
	_, err := Read(bytes.NewReader(raw[:len(raw)-3]), int64(len(raw)))
	if err == nil || !strings.Contains(err.Error(), "read data") || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error = %v", err)
	}
}
