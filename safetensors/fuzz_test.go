package safetensors

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// FuzzRead checks that Read never panics and that whatever it accepts
// survives Write→Read unchanged.
func FuzzRead(f *testing.F) {
	f.Add(assemble(`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`, f32le(0, 1, 2, 3, 4, 5)))
	f.Add(assemble(`{"__metadata__":{"framework":"pt"},"test1":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}       `, make([]byte, 16)))
	f.Add(assemble(`{"a":{"dtype":"F16","shape":[],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}}`, []byte{0, 0x3c}))
	f.Add(assemble(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add(assemble(`{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(assemble(`{}`, nil))
	f.Add(binary.LittleEndian.AppendUint64(nil, 1<<40))
	var b bytes.Buffer
	all := &File{Metadata: map[string]string{"format": "ddgi"}, Tensors: map[string]Tensor{}}
	for i, d := range DTypes() {
		all.Tensors[string(d)] = Tensor{DType: d, Shape: []int64{1, int64(i % 3)}, Data: make([]byte, d.Size()*(i%3))}
	}
	if err := Write(&b, all); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())

	f.Fuzz(func(t *testing.T, raw []byte) {
		file, err := Read(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := Write(&out, file); err != nil {
			t.Fatalf("Write of a file Read accepted: %v", err)
		}
		back, err := Read(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatalf("Read of Write output: %v", err)
		}
		if !reflect.DeepEqual(back, file) {
			t.Fatalf("round trip changed the file")
		}
	})
}
