package torchfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"testing"
)

// pk assembles pickle opcodes for hand-made inputs.
type pk []byte

func (p pk) op(b ...byte) pk { return append(p, b...) }

// s pushes a str (BINUNICODE).
func (p pk) s(v string) pk {
	p = pk(binary.LittleEndian.AppendUint32(append(p, 'X'), uint32(len(v))))
	return append(p, v...)
}

// i pushes an int (BININT).
func (p pk) i(v int32) pk { return pk(binary.LittleEndian.AppendUint32(append(p, 'J'), uint32(v))) }

// l pushes an int64 (LONG1 of 8 bytes).
func (p pk) l(v int64) pk { return pk(binary.LittleEndian.AppendUint64(append(p, 0x8a, 8), uint64(v))) }

func (p pk) global(mod, name string) pk { return append(append(p, 'c'), mod+"\n"+name+"\n"...) }

// ints pushes a tuple of ints.
func (p pk) ints(v ...int64) pk {
	p = p.op('(')
	for _, x := range v {
		p = p.l(x)
	}
	return p.op('t')
}

// pid pushes the zip persistent id of a storage and loads it.
func (p pk) pid(storageType, key string, numel int64) pk {
	mod, name := "torch", storageType
	if storageType == "UntypedStorage" {
		mod = "torch.storage"
	}
	return p.op('(').s("storage").global(mod, name).s(key).s("cpu").l(numel).op('t', 'Q')
}

// v2 pushes torch._utils._rebuild_tensor_v2(storage, off, size, stride,
// False, OrderedDict()[, {}]) over a zip storage.
func (p pk) v2(storageType, key string, numel, off int64, size, stride []int64, metadata bool) pk {
	p = p.global("torch._utils", "_rebuild_tensor_v2").op('(').pid(storageType, key, numel).l(off).ints(size...).ints(stride...)
	p = p.op(0x89).global("collections", "OrderedDict").op(')', 'R')
	if metadata {
		p = p.op('}')
	}
	return p.op('t', 'R')
}

// dict wraps key/value pushes (already on the stack after MARK) as a dict.
func dictOf(body pk) pk { return pk{0x80, 2, '}', '('}.op(body...).op('u', '.') }

// zipOf writes a stored (uncompressed) zip, as torch.save does.
func zipOf(t testing.TB, files ...string) []byte {
	t.Helper()
	return zipWith(t, zip.Store, files...)
}

func zipWith(t testing.TB, method uint16, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: files[i], Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(files[i+1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func f32s(v ...float32) string {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return string(b)
}

// legacyOf lays out a legacy torch.save stream around a main pickle.
func legacyOf(littleEndian bool, main pk, keys []string, data ...[]byte) []byte {
	var b []byte
	b = append(b, 0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.')
	b = append(b, pk{0x80, 2}.i(1001).op('.')...)
	le := byte(0x88)
	if !littleEndian {
		le = 0x89
	}
	b = append(b, pk{0x80, 2, '}'}.s("little_endian").op(le, 's', '.')...)
	b = append(b, main...)
	kp := pk{0x80, 2, ']', '('}
	for _, k := range keys {
		kp = kp.s(k)
	}
	b = append(b, kp.op('e', '.')...)
	for _, d := range data {
		b = append(b, d...)
	}
	return b
}

// legacyPid pushes a legacy persistent id and loads it.
func (p pk) legacyPid(storageType, key string, numel int64) pk {
	return p.op('(').s("storage").global("torch", storageType).s(key).s("cpu").l(numel).op('N', 't', 'Q')
}

// storageData is a legacy storage record: element count, then the bytes.
func storageData(count uint64, raw string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, count), raw...)
}

type zipContents struct {
	names []string
	data  [][]byte
}

func readZip(t testing.TB, b []byte) zipContents {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var z zipContents
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		d, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		z.names = append(z.names, f.Name)
		z.data = append(z.data, d)
	}
	return z
}
