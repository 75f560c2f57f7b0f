package torchfile

import (
	"archive/zip"
	"slices"
	"testing"

	"ddgi/safetensors"
)

// TestTorch2Variants reads zip archives laid out the way PyTorch 2.x writes
// them (hand-made here, PyTorch 1.13 being what the fixtures come from):
// _rebuild_tensor_v2 with its 7th metadata argument, _rebuild_tensor_v3
// with a dtype over an UntypedStorage, parameters with state, tensors with
// Python attributes, and compressed records.
func TestTorch2Variants(t *testing.T) {
	f32 := f32s(0, 1, 2, 3, 4, 5)
	bf16 := string([]byte{0x80, 0x3f, 0x00, 0x40, 0x40, 0x40, 0x80, 0x40}) // 1, 2, 3, 4
	// requires_grad=False, backward_hooks=OrderedDict()
	hooks := func(p pk) pk { return p.op(0x89).global("collections", "OrderedDict").op(')', 'R') }
	body := pk{}.
		s("v2meta").v2("FloatStorage", "0", 6, 1, []int64{2, 2}, []int64{1, 2}, true).
		s("v3").global("torch._utils", "_rebuild_tensor_v3").op('(').pid("UntypedStorage", "1", 8).l(0).ints(4).ints(1)
	body = hooks(body).global("torch", "bfloat16").op('}', 't', 'R')
	body = body.s("param").global("torch._utils", "_rebuild_parameter_with_state").op('(').
		v2("FloatStorage", "0", 6, 0, []int64{3}, []int64{2}, false)
	body = hooks(body).op('}', 't', 'R')
	body = body.s("attrs").global("torch._tensor", "_rebuild_from_type_v2").op('(').
		global("torch._utils", "_rebuild_tensor_v2").global("torch", "Tensor").
		op('(').pid("FloatStorage", "0", 6).l(5).ints().ints()
	body = hooks(body).op('t', '}').s("note").s("x").op('s', 't', 'R')
	body = body.s("bytes").v2("UntypedStorage", "1", 8, 6, []int64{2}, []int64{1}, false)
	body = body.s("device").global("torch", "device").s("cuda").l(0).op(0x86, 'R')
	pkl := string(dictOf(body))
	want := map[string]struct {
		dt    safetensors.DType
		shape []int64
		f     []float32
	}{
		"v2meta": {safetensors.F32, []int64{2, 2}, []float32{1, 3, 2, 4}},
		"v3":     {safetensors.BF16, []int64{4}, []float32{1, 2, 3, 4}},
		"param":  {safetensors.F32, []int64{3}, []float32{0, 2, 4}},
		"attrs":  {safetensors.F32, nil, []float32{5}},
		"bytes":  {safetensors.U8, []int64{2}, nil},
	}
	for _, c := range []struct {
		name   string
		method uint16
		files  []string
	}{
		{"stored", zip.Store, []string{"archive/data.pkl", pkl, "archive/byteorder", "little", "archive/data/0", f32, "archive/data/1", bf16}},
		{"deflated", zip.Deflate, []string{"archive/data.pkl", pkl, "archive/data/0", f32, "archive/data/1", bf16, "archive/version", "3"}},
		{"no root folder", zip.Store, []string{"data.pkl", pkl, "data/0", f32, "data/1", bf16}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := openBytes(zipWith(t, c.method, c.files...))
			if err != nil {
				t.Fatal(err)
			}
			if d := get(t, f.Root(), "device").(*Object); d.Class != "torch.device" || !slices.Equal(d.State.(Tuple), Tuple{"cuda", int64(0)}) {
				t.Errorf("device = %s %v", d.Class, d.State)
			}
			ts, err := Tensors(f.Root())
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != len(want) {
				t.Errorf("%d tensors, want %d", len(ts), len(want))
			}
			for name, w := range want {
				st, err := ts[name].Read()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if st.DType != w.dt || !slices.Equal(st.Shape, w.shape) {
					t.Errorf("%s: %s %v, want %s %v", name, st.DType, st.Shape, w.dt, w.shape)
				}
				if w.f == nil {
					if string(st.Data) != bf16[6:8] {
						t.Errorf("%s: % x", name, st.Data)
					}
					continue
				}
				if v, err := st.Float32(); err != nil || !slices.Equal(v, w.f) {
					t.Errorf("%s: %v %v, want %v", name, v, err, w.f)
				}
			}
		})
	}
}

// TestStridedReads checks Read against a naive index computation for
// layouts the fixtures do not have: expanded (stride 0), permuted rank 3,
// 0-d, and sparse views of a storage big enough to read run by run.
func TestStridedReads(t *testing.T) {
	const n = 300000
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(i)
	}
	cases := []struct {
		shape, stride []int64
		off           int64
	}{
		{[]int64{2, 3}, []int64{3, 1}, 0},
		{[]int64{3, 2}, []int64{0, 1}, 7},
		{[]int64{2, 3, 4}, []int64{1, 8, 2}, 1},
		{[]int64{4, 1, 3}, []int64{3, 100, 1}, 0},
		{nil, nil, 42},
		{[]int64{2, 3}, []int64{290000, 1}, 5},
		{[]int64{3, 2}, []int64{1, 290000}, 5},
		{[]int64{2, 2, 2}, []int64{140000, 1, 3}, 9},
	}
	body := pk{}
	for i, c := range cases {
		body = body.s(string(rune('a'+i))).v2("FloatStorage", "0", n, c.off, c.shape, c.stride, false)
	}
	f, err := openBytes(zipOf(t, "archive/data.pkl", string(dictOf(body)), "archive/data/0", f32s(vals...)))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := Tensors(f.Root())
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		st, err := ts[string(rune('a'+i))].Read()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := st.Float32()
		var want []float32
		var rec func(dim int, at int64)
		rec = func(dim int, at int64) {
			if dim == len(c.shape) {
				want = append(want, vals[at])
				return
			}
			for j := int64(0); j < c.shape[dim]; j++ {
				rec(dim+1, at+j*c.stride[dim])
			}
		}
		rec(0, c.off)
		if !slices.Equal(got, want) {
			t.Errorf("shape %v stride %v offset %d: %v, want %v", c.shape, c.stride, c.off, got, want)
		}
	}
}
