package torchfile

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"ddgi/safetensors"
)

// The fixtures in testdata/ and their .json expectations are written by a
// script outside the repository with PyTorch 1.13 (see testdata/README).

type wantTensor struct {
	DType  string    `json:"dtype"`
	Shape  []int64   `json:"shape"`
	Values []float64 `json:"values"`
	Hex    string    `json:"hex"`
}

type want struct {
	Format       string                `json:"format"`
	Tensors      map[string]wantTensor `json:"tensors"`
	MetadataKeys []string              `json:"metadata_keys"`
	Classes      []string              `json:"classes"`
}

func readWant(t *testing.T, path string) want {
	t.Helper()
	b, err := os.ReadFile(path + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var w want
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

func fixtures(t *testing.T, dir string) []string {
	t.Helper()
	js, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, j := range js {
		out = append(out, strings.TrimSuffix(j, ".json"))
	}
	return out
}

func mustOpen(t *testing.T, path string) *File {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// checkTensors compares every tensor Tensors finds with the expectation:
// names, dtype, shape, exact bytes and decoded values.
func checkTensors(t *testing.T, f *File, w want) {
	t.Helper()
	if f.Format() != w.Format {
		t.Errorf("format %q, want %q", f.Format(), w.Format)
	}
	got, err := Tensors(f.Root())
	if err != nil {
		t.Fatal(err)
	}
	var gotNames, wantNames []string
	for k := range got {
		gotNames = append(gotNames, k)
	}
	for k := range w.Tensors {
		wantNames = append(wantNames, k)
	}
	sort.Strings(gotNames)
	sort.Strings(wantNames)
	if !slices.Equal(gotNames, wantNames) {
		t.Fatalf("tensor names\n got %q\nwant %q", gotNames, wantNames)
	}
	for name, wt := range w.Tensors {
		st, err := got[name].Read()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(st.DType) != wt.DType || !slices.Equal(st.Shape, wt.Shape) {
			t.Errorf("%s: %s %v, want %s %v", name, st.DType, st.Shape, wt.DType, wt.Shape)
			continue
		}
		if err := st.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if h := hex.EncodeToString(st.Data); h != wt.Hex {
			t.Errorf("%s: bytes %s, want %s", name, h, wt.Hex)
		}
		checkValues(t, name, st, wt.Values)
	}
}

func checkValues(t *testing.T, name string, st safetensors.Tensor, want []float64) {
	t.Helper()
	var got []float64
	switch st.DType {
	case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
		v, err := st.Float32()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			got = append(got, float64(x))
		}
		for i := range want {
			want[i] = float64(float32(want[i]))
		}
	default:
		v, err := st.Int64()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			got = append(got, float64(x))
		}
	}
	if len(want) == 0 {
		want = nil
	}
	if len(got) == 0 {
		got = nil
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: values %v, want %v", name, got, want)
	}
}

func TestFixtures(t *testing.T) {
	for _, path := range fixtures(t, "testdata") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			checkTensors(t, mustOpen(t, path), readWant(t, path))
		})
	}
}

// TestLazyBytes reads the pickles again with every byte string over 16 bytes
// left in the file, as a multi-megabyte network pickle has them.
func TestLazyBytes(t *testing.T) {
	defer func(n int64) { lazyBytes = n }(lazyBytes)
	lazyBytes = 16
	for _, name := range []string{"plain_p2.pkl", "plain_p4.pkl", "nvlabs_p3.pkl", "nvlabs_p4.pkl"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			checkTensors(t, mustOpen(t, path), readWant(t, path))
		})
	}
}

// TestExtraFixtures reads bigger files made by the same script (tiny but
// real StyleGAN2-ADA and StyleGAN3 generator pickles) from a folder named by
// TORCHFILE_EXTRA, if set.
func TestExtraFixtures(t *testing.T) {
	dir := os.Getenv("TORCHFILE_EXTRA")
	if dir == "" {
		t.Skip("TORCHFILE_EXTRA not set")
	}
	for _, path := range fixtures(t, dir) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			checkTensors(t, mustOpen(t, path), readWant(t, path))
		})
	}
}

func get(t *testing.T, v Value, keys ...string) Value {
	t.Helper()
	for _, k := range keys {
		if o, ok := v.(*Object); ok {
			v = o.State
		}
		d, ok := v.(*Dict)
		if !ok {
			t.Fatalf("%s: a %s, not a dict", k, typeName(v))
		}
		if v, ok = d.Get(k); !ok {
			t.Fatalf("no key %q among %v", k, d.Keys)
		}
	}
	return v
}

func TestStateDictMetadata(t *testing.T) {
	for _, name := range []string{"zip_state.pt", "legacy_state.pt"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			w := readWant(t, path)
			f := mustOpen(t, path)
			root, ok := f.Root().(*Dict)
			if !ok || root.Class != "collections.OrderedDict" {
				t.Fatalf("root is a %s", typeName(f.Root()))
			}
			md := get(t, root.Attrs, "_metadata").(*Dict)
			if md.Class != "collections.OrderedDict" {
				t.Errorf("_metadata is a %s", typeName(md))
			}
			var keys []string
			for _, k := range md.Keys {
				keys = append(keys, k.(string))
			}
			sort.Strings(keys)
			if !slices.Equal(keys, w.MetadataKeys) {
				t.Errorf("_metadata keys %q, want %q", keys, w.MetadataKeys)
			}
			if _, ok := root.Get("_metadata"); ok {
				t.Error("_metadata among the state dict's keys")
			}
		})
	}
}

func TestSharedStorage(t *testing.T) {
	for _, name := range []string{"zip_mixed.pt", "legacy_mixed.pt"} {
		t.Run(name, func(t *testing.T) {
			f := mustOpen(t, filepath.Join("testdata", name))
			ts, err := Tensors(f.Root())
			if err != nil {
				t.Fatal(err)
			}
			a, b, tr := ts["shared_a"], ts["shared_b"], ts["transposed"]
			if a.st != b.st || a.st != tr.st {
				t.Error("views of one storage do not share it")
			}
			if a.Offset != 2 || b.Offset != 10 || !slices.Equal(tr.Stride, []int64{1, 6}) {
				t.Errorf("offsets %d %d, transposed stride %v", a.Offset, b.Offset, tr.Stride)
			}
			if s := ts["sliced"]; s.Offset != 5 || !slices.Equal(s.Stride, []int64{5, 2}) {
				t.Errorf("sliced: offset %d stride %v", s.Offset, s.Stride)
			}
			if v := get(t, f.Root(), "meta", "name"); v != "tiny" {
				t.Errorf("meta.name = %v", v)
			}
			if v := get(t, f.Root(), "meta", "ratio"); v != 0.5 {
				t.Errorf("meta.ratio = %v", v)
			}
		})
	}
}

func TestLightning(t *testing.T) {
	f := mustOpen(t, filepath.Join("testdata", "lightning.ckpt"))
	if v := get(t, f.Root(), "epoch"); v != int64(3) {
		t.Errorf("epoch = %v", v)
	}
	if v := get(t, f.Root(), "hyper_parameters", "layers"); !slices.Equal(v.(Tuple), Tuple{int64(3), int64(2)}) {
		t.Errorf("layers = %v", v)
	}
	// The optimizer's tensors sit in a list: reachable from Root, not named.
	opt := get(t, f.Root(), "optimizer_states").(*List)
	step := get(t, opt.Items[0], "state").(*Dict).Values[0]
	if _, ok := get(t, step, "step").(*Tensor); !ok {
		t.Error("optimizer step is not a tensor")
	}
}

func TestNVlabs(t *testing.T) {
	for _, name := range []string{"nvlabs_p2.pkl", "nvlabs_p3.pkl", "nvlabs_p4.pkl"} {
		t.Run(name, func(t *testing.T) {
			f := mustOpen(t, filepath.Join("testdata", name))
			g, ok := get(t, f.Root(), "G_ema").(*Object)
			if !ok || g.Class != "Net" {
				t.Fatalf("G_ema is a %s", typeName(get(t, f.Root(), "G_ema")))
			}
			if !strings.Contains(g.Source, "@persistence.persistent_class") {
				t.Error("module source not kept")
			}
			fc := get(t, g, "_modules", "fc").(*Object)
			if fc.Class != "Layer" || fc.Source != g.Source {
				t.Errorf("fc: class %q", fc.Class)
			}
			if v := get(t, fc, "scale"); v != 0.5 {
				t.Errorf("numpy float64 scalar = %v", v)
			}
			if v := get(t, fc, "flag"); v != true {
				t.Errorf("numpy bool scalar = %v", v)
			}
			size := get(t, fc, "size").(*Object)
			st, err := size.State.(*Tensor).Read()
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := st.Int64(); !slices.Equal(v, []int64{3, 2}) || st.DType != safetensors.I64 {
				t.Errorf("numpy array = %s %v", st.DType, v)
			}
			cfg := get(t, g, "cfg").(*Dict)
			if cfg.Class != "dnnlib.util.EasyDict" {
				t.Errorf("cfg is a %s", typeName(cfg))
			}
			if v := get(t, f.Root(), "augment_pipe"); v != nil {
				t.Errorf("augment_pipe = %v", v)
			}
		})
	}
}
