package torchfile

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/safetensors"
)

func openBytes(b []byte) (*File, error) {
	return open(bytes.NewReader(b), int64(len(b)), nil)
}

func u64(op byte, n uint64) pk { return pk(binary.LittleEndian.AppendUint64(pk{0x80, 4, op}, n)) }

func repeat(b byte, n int) pk { return pk(bytes.Repeat([]byte{b}, n)) }

// TestHostile feeds hand-made inputs that must each fail with a one-line
// error naming the problem.
func TestHostile(t *testing.T) {
	f32 := f32s(0, 1, 2, 3)
	zipT := func(pkl pk, data ...string) []byte {
		files := []string{"archive/data.pkl", string(pkl), "archive/byteorder", "little"}
		for i, d := range data {
			files = append(files, "archive/data/"+string(rune('0'+i)), d)
		}
		return zipOf(t, files...)
	}
	tensorIn := func(size, stride []int64, off int64) []byte {
		return zipT(dictOf(pk{}.s("t").v2("FloatStorage", "0", 4, off, size, stride, false)), f32)
	}
	deep := pk{0x80, 2}.op(repeat(']', 100001)...).op(repeat('a', 100000)...).op('.')
	cases := []struct {
		name string
		in   []byte
		want []string
	}{
		{"os.system", pk{}.global("os", "system").s("echo pwned").op(0x85, 'R', '.'), []string{"os.system", "not on the whitelist", "offset 0"}},
		{"builtins.eval", pk{0x80, 2}.global("builtins", "eval").s("1+1").op(0x85, 'R', '.'), []string{"builtins.eval", "offset 2"}},
		{"__builtin__.eval", pk{0x80, 2}.global("__builtin__", "eval").s("1+1").op(0x85, 'R', '.'), []string{"builtins.eval"}},
		{"posix.system via STACK_GLOBAL", pk{0x80, 4, 0x8c, 5}.op([]byte("posix")...).op(0x8c, 6).op([]byte("system")...).op(0x93).s("id").op(0x85, 'R', '.'), []string{"posix.system", "offset 17"}},
		{"subprocess.Popen", pk{0x80, 2}.global("subprocess", "Popen").op(']', 0x85, 'R', '.'), []string{"subprocess.Popen"}},
		{"builtins.getattr", pk{0x80, 2}.global("builtins", "getattr").op('.'), []string{"builtins.getattr"}},
		{"odd name", pk{0x80, 4}.s("os\nx").s("system").op(0x93, '.'), []string{`"os\nx.system"`}},
		{"sparse tensor", pk{0x80, 2}.global("torch._utils", "_rebuild_sparse_tensor").op('.'), []string{"torch._utils._rebuild_sparse_tensor"}},
		{"BINBYTES8 2^62", u64(0x8e, 1<<62).op('.'), []string{"length 4611686018427387904 exceeds"}},
		{"BINUNICODE8 2^62", u64(0x8d, 1<<62).op('.'), []string{"exceeds"}},
		{"BINBYTES8 2^64-1", u64(0x8e, 1<<64-1).op('.'), []string{"exceeds"}},
		{"BINBYTES 4 GiB", pk{0x80, 3, 'B', 0xff, 0xff, 0xff, 0xff, '.'}, []string{"length 4294967295 exceeds the 1 bytes left"}},
		{"LONG4 huge", pk{0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0x7f, '.'}, []string{"LONG4 of 2147483647 bytes"}},
		{"LONG4 negative", pk{0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0xff, '.'}, []string{"LONG4 of -1 bytes"}},
		{"FRAME 2^62", u64(0x95, 1<<62).op('N', '.'), []string{"frame of"}},
		{"100k-deep list", deep, []string{"nesting too deep", "offset 10002"}},
		{"100k MARKs", pk{0x80, 2}.op(repeat('(', 100000)...).op('.'), []string{"open MARKs"}},
		{"memo GET missing", pk{0x80, 2, 'h', 5, '.'}, []string{"memo has no entry 5"}},
		{"LONG_BINGET missing", pk{0x80, 2, 'N', 'q', 1, 'j', 0xff, 0xff, 0xff, 0xff, '.'}, []string{"memo has no entry 4294967295"}},
		{"unknown opcode", pk{0x80, 2, 0xff}, []string{"opcode 0xff", "unknown", "offset 2"}},
		{"empty file", nil, []string{"end of data"}},
		{"no STOP", pk{0x80, 2, 'N'}, []string{"no STOP"}},
		{"STOP on empty stack", pk{0x80, 2, '.'}, []string{"stack underflow"}},
		{"POP_MARK without MARK", pk{0x80, 2, 'N', '1', '.'}, []string{"no MARK"}},
		{"pop past MARK", pk{0x80, 2, 'N', '(', 'N', 0x86, '.'}, []string{"stack underflow"}},
		{"APPEND to a dict", pk{0x80, 2, '}', 'N', 'a', '.'}, []string{"APPEND to a dict"}},
		{"odd SETITEMS", pk{0x80, 2, '}', '(', 'N', 'u', '.'}, []string{"odd number"}},
		{"BUILD on a list", pk{0x80, 2, ']', '}', 'b', '.'}, []string{"BUILD on a list"}},
		{"REDUCE on a name", pk{0x80, 2}.global("torch", "Tensor").op(')', 'R', '.'), []string{"not callable"}},
		{"NEWOBJ on a function", pk{0x80, 2}.global("torch._utils", "_rebuild_tensor_v2").op(')', 0x81, '.'), []string{"not a class"}},
		{"unhashable key", pk{0x80, 2, '}', ']', 'N', 's', '.'}, []string{"unhashable"}},
		{"persistent id in a plain pickle", pk{0x80, 2}.s("x").op('Q', '.'), []string{"persistent id"}},
		{"protocol 6", pk{0x80, 6, 'N', '.'}, []string{"protocol 6"}},
		{"INST", pk{'(', 'i'}.op([]byte("os\nsystem\n")...).op('.'), []string{"INST"}},
		{"EXT1", pk{0x80, 2, 0x82, 1, '.'}, []string{"EXT"}},
		{"_codecs.encode utf-16", pk{0x80, 2}.global("_codecs", "encode").s("x").s("utf-16").op(0x86, 'R', '.'), []string{"only latin1"}},
		{"persistent obj not a class", pk{0x80, 2}.global("torch_utils.persistence", "_reconstruct_persistent_obj").op('}').s("type").s("func").op('s', 0x85, 'R', '.'), []string{"not 'class'"}},
		{"numpy object array", pk{0x80, 2}.global("numpy.core.multiarray", "_reconstruct").global("numpy", "ndarray").ints(0).op('C', 1, 'b', 0x87, 'R').
			op('(').l(1).ints(2).global("numpy", "dtype").s("O8").op(0x89, 0x88, 0x87, 'R').op(0x89, ']', 't', 'b', '.'), []string{"numpy dtype O8 is not supported"}},
		{"numpy big-endian", pk{0x80, 2}.global("numpy.core.multiarray", "scalar").global("numpy", "dtype").s("f8").op(0x89, 0x88, 0x87, 'R').
			op('(').l(3).s(">").op('t', 'b', 'C', 8).op(repeat(0, 8)...).op(0x86, 'R', '.'), []string{"not supported"}},

		// zip torch.save files
		{"deflated size lie", zipLie(t), []string{"claims 1099511627776 bytes"}},
		{"zip without data.pkl", zipOf(t, "archive/version", "3"), []string{"data.pkl"}},
		{"TorchScript zip", zipOf(t, "archive/data.pkl", ".", "archive/constants.pkl", "."), []string{"TorchScript"}},
		{"big-endian zip", zipOf(t, "archive/data.pkl", "N.", "archive/byteorder", "big"), []string{"big-endian"}},
		{"storage record missing", zipT(dictOf(pk{}.s("t").v2("FloatStorage", "0", 4, 0, []int64{4}, []int64{1}, false))), []string{"archive/data/0 is missing"}},
		{"storage record short", zipT(dictOf(pk{}.s("t").v2("FloatStorage", "0", 4, 0, []int64{4}, []int64{1}, false)), "12345678"), []string{"holds 8 bytes", "need 16"}},
		{"shape exceeds storage", tensorIn([]int64{10}, []int64{1}, 0), []string{"needs element 9 of a storage of 4 elements"}},
		{"offset outside storage", tensorIn([]int64{1}, []int64{1}, 10), []string{"storage offset 10 outside"}},
		{"stride outside storage", tensorIn([]int64{2, 2}, []int64{4, 1}, 0), []string{"needs element 5"}},
		{"offset+shape outside", tensorIn([]int64{4}, []int64{1}, 1), []string{"needs element 4"}},
		{"element count overflows", tensorIn([]int64{1 << 40, 1 << 40}, []int64{1, 1}, 0), []string{"overflows"}},
		{"stride overflows", tensorIn([]int64{3, 1}, []int64{1 << 62, 1}, 0), []string{"overflows"}},
		{"negative size", tensorIn([]int64{-1}, []int64{1}, 0), []string{"negative"}},
		{"rank mismatch", tensorIn([]int64{2, 2}, []int64{1}, 0), []string{"differ in rank"}},
		{"storage numel overflows", zipT(dictOf(pk{}.s("t").v2("DoubleStorage", "0", 1<<61, 0, []int64{1}, []int64{1}, false)), f32), []string{"overflows"}},
		{"rebuild from a non-storage", zipT(dictOf(pk{}.s("t").global("torch._utils", "_rebuild_tensor").op('(', 'N').l(0).ints(1).ints(1).op('t', 'R'))), []string{"expects a storage"}},
		{"unknown persistent id", zipT(dictOf(pk{}.s("t").op('(').s("module").op('t', 'Q'))), []string{"'module'"}},
		{"bad storage type", zipT(dictOf(pk{}.s("t").op('(').s("storage").global("torch", "ComplexFloatStorage").s("0").s("cpu").l(1).op('t', 'Q'))), []string{"torch.ComplexFloatStorage"}},
		{"v3 with uint32", zipT(dictOf(pk{}.s("t").global("torch._utils", "_rebuild_tensor_v3").op('(').pid("UntypedStorage", "0", 16).l(0).ints(4).ints(1).
			op(0x89).global("collections", "OrderedDict").op(')', 'R').global("torch", "uint32").op('t', 'R')), f32), []string{"torch.uint32 is not supported"}},

		// legacy torch.save files
		{"legacy big-endian", legacyOf(false, pk{0x80, 2, 'N', '.'}, nil), []string{"big-endian"}},
		{"legacy count mismatch", legacyOf(true, pk{0x80, 2}.legacyPid("FloatStorage", "k", 4).op('.'), []string{"k"}, storageData(5, f32)), []string{"holds 5 elements", "declared 4"}},
		{"legacy data truncated", legacyOf(true, pk{0x80, 2}.legacyPid("FloatStorage", "k", 4).op('.'), []string{"k"}, storageData(4, f32[:12])), []string{"run past the end"}},
		{"legacy key unused", legacyOf(true, pk{0x80, 2, 'N', '.'}, []string{"k"}, storageData(4, f32)), []string{"no tensor uses it"}},
		{"legacy key not listed", legacyOf(true, pk{0x80, 2}.legacyPid("FloatStorage", "k", 4).op('.'), nil), []string{"data is missing"}},
		{"legacy view outside", legacyOf(true, pk{0x80, 2}.op('(').s("storage").global("torch", "FloatStorage").s("k").s("cpu").l(4).op('(').s("v").l(2).l(3).op('t', 't', 'Q', '.'), []string{"k"}, storageData(4, f32)), []string{"view"}},

		// storage blobs in plain pickles
		{"blob without magic", pk{0x80, 2}.global("torch.storage", "_load_from_bytes").op('C', 2, 'N', '.', 0x85, 'R', '.'), []string{"magic"}},
		{"blob in a blob", pk{0x80, 2}.global("torch.storage", "_load_from_bytes").op(blobArg(legacyOf(true, pk{0x80, 2}.global("torch.storage", "_load_from_bytes").op(blobArg(legacyOf(true, pk{0x80, 2, 'N', '.'}, nil))...).op(0x85, 'R', '.'), nil))...).op(0x85, 'R', '.'), []string{"storage blob inside a storage blob"}},
		{"blob not a storage", pk{0x80, 2}.global("torch.storage", "_load_from_bytes").op(blobArg(legacyOf(true, pk{0x80, 2, 'N', '.'}, nil))...).op(0x85, 'R', '.'), []string{"holds a None"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := openBytes(c.in)
			if err == nil {
				t.Fatalf("no error; root %s", typeName(f.Root()))
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || strings.Contains(msg, "internal error") {
				t.Errorf("error not a plain line: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func blobArg(b []byte) pk {
	return pk(binary.LittleEndian.AppendUint32(pk{'B'}, uint32(len(b)))).op(b...)
}

// TestNothingRuns checks that a pickle calling os.system leaves no trace.
func TestNothingRuns(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "pwned")
	path := filepath.Join(dir, "evil.pkl")
	for _, p := range []pk{
		pk{0x80, 2}.global("os", "system").s("touch "+mark).op(0x85, 'R', '.'),
		pk{0x80, 2}.global("builtins", "exec").s("open('"+mark+"','w')").op(0x85, 'R', '.'),
	} {
		if err := os.WriteFile(path, p, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "not on the whitelist") {
			t.Fatalf("Open: %v", err)
		}
		if _, err := os.Stat(mark); err == nil {
			t.Fatal("the pickle ran")
		}
	}
}

// TestTruncated cuts every fixture at every length (and, for zips, cuts
// data.pkl and the storage records inside an intact archive): each must
// fail cleanly.
func TestTruncated(t *testing.T) {
	for _, path := range fixtures(t, "testdata") {
		full, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, b []byte) {
			f, err := openBytes(b)
			if err == nil {
				// Structure may survive a cut in storage data; reading may not.
				ts, err2 := Tensors(f.Root())
				if err2 == nil {
					for _, tn := range ts {
						if _, err2 = tn.Read(); err2 != nil {
							break
						}
					}
				}
				if err2 == nil {
					t.Errorf("%s: %s: no error", filepath.Base(path), what)
				}
				err = err2
			}
			if err != nil && (strings.Contains(err.Error(), "internal error") || strings.Contains(err.Error(), "\n")) {
				t.Errorf("%s: %s: %v", filepath.Base(path), what, err)
			}
		}
		for n := 0; n < len(full); n++ {
			check("prefix", full[:n])
		}
		if !bytes.HasPrefix(full, []byte("PK")) {
			continue
		}
		zr := readZip(t, full)
		for i, name := range zr.names {
			if !strings.HasSuffix(name, "data.pkl") && !strings.Contains(name, "/data/") {
				continue
			}
			for n := 0; n < len(zr.data[i]); n++ {
				files := []string{}
				for j := range zr.names {
					d := zr.data[j]
					if j == i {
						d = d[:n]
					}
					files = append(files, zr.names[j], string(d))
				}
				check(name+" cut", zipOf(t, files...))
			}
		}
	}
}

// TestTensorsCycles: a dict holding itself, and a dict shared so often that
// its paths explode, are errors rather than hangs.
func TestTensorsCycles(t *testing.T) {
	self, err := openBytes(pk{0x80, 2, '}', 'q', 0}.s("a").op('h', 0, 's', '.'))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Tensors(self.Root()); err == nil || !strings.Contains(err.Error(), "contains itself") {
		t.Errorf("self-holding dict: %v", err)
	}
	// d0 = {}, d_{k+1} = {'a': d_k, 'b': d_k}: 2^40 paths.
	p := pk{0x80, 2, '}', 'q', 0}
	for k := 0; k < 40; k++ {
		p = p.op('}', '(').s("a").op('h', byte(k)).s("b").op('h', byte(k), 'u', 'q', byte(k+1))
	}
	dag, err := openBytes(p.op('.'))
	if err != nil {
		t.Fatal(err)
	}
	defer func(n int) { maxWalkSteps = n }(maxWalkSteps)
	maxWalkSteps = 100000
	if _, err := Tensors(dag.Root()); err == nil || !strings.Contains(err.Error(), "steps") {
		t.Errorf("shared dicts: %v", err)
	}
}

func TestReadAfterClose(t *testing.T) {
	f, err := Open(filepath.Join("testdata", "zip_state.pt"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := Tensors(f.Root())
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for name, tn := range ts {
		if _, err := tn.Read(); err == nil {
			t.Errorf("%s read after Close", name)
		}
	}
}

// zipLie is a zip whose deflated data.pkl claims a terabyte.
func zipLie(t *testing.T) []byte {
	var c bytes.Buffer
	fw, _ := flate.NewWriter(&c, flate.BestCompression)
	fw.Write([]byte("N."))
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Deflate,
		CompressedSize64: uint64(c.Len()), UncompressedSize64: 1 << 40, CRC32: crc32.ChecksumIEEE([]byte("N."))})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(c.Bytes())
	zw.Close()
	return buf.Bytes()
}

// TestTupleKeys: a tuple key made of 2^40 parts shared through the memo
// costs nothing to store, and tuple keys stay distinct entries.
func TestTupleKeys(t *testing.T) {
	p := pk{0x80, 2, 'N', 0x85, 'q', 0}
	for k := 0; k < 40; k++ {
		p = p.op('h', byte(k), 'h', byte(k), 0x86, 'q', byte(k+1))
	}
	p = p.op('}', 'h', 40, 'N', 's', 'h', 40, 'N', 's').s("a").op('K', 1, 's').s("a").op('K', 2, 's', '.')
	f, err := openBytes(p)
	if err != nil {
		t.Fatal(err)
	}
	d := f.Root().(*Dict)
	if v, _ := d.Get("a"); d.Len() != 3 || v != int64(2) {
		t.Errorf("%d keys, a = %v", d.Len(), v)
	}
}

// TestReadChecksFields: Tensor's fields are exported; Read re-checks them
// against the storage before allocating.
func TestReadChecksFields(t *testing.T) {
	f := mustOpen(t, filepath.Join("testdata", "zip_state.pt"))
	ts, err := Tensors(f.Root())
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range []func(*Tensor){
		func(x *Tensor) { x.Shape = []int64{1 << 40}; x.Stride = []int64{1} },
		func(x *Tensor) { x.Stride = nil },
		func(x *Tensor) { x.Offset = 1 << 62 },
		func(x *Tensor) { x.Offset = -1 },
		func(x *Tensor) { x.DType = "Q8" },
		func(x *Tensor) { x.DType = safetensors.F64; x.Shape = []int64{8}; x.Stride = []int64{1} },
	} {
		x := *ts["fc.weight"]
		edit(&x)
		if _, err := x.Read(); err == nil || strings.Contains(err.Error(), "internal") {
			t.Errorf("%v %v %d %s: %v", x.Shape, x.Stride, x.Offset, x.DType, err)
		}
	}
}
