package torchfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"strings"
	"sync"

	"ddgi/safetensors"
)

// File is an opened checkpoint. Its tensors read from the file on demand, so
// it stays open until Close.
type File struct {
	c      io.Closer
	root   Value
	format string
}

// Open reads the object structure of a torch.save file (zip or legacy) or a
// plain pickle, without reading tensor data.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torchfile: %w", err)
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("torchfile: %w", err)
	}
	f, err := open(fh, fi.Size(), fh)
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("torchfile: %s: %w", path, err)
	}
	return f, nil
}

// catchPanics turns a panic into an error at the API boundary; the fuzz test
// turns it off to see the stack.
var catchPanics = true

func open(r io.ReaderAt, size int64, c io.Closer) (f *File, err error) {
	// Every bound is checked where it is read; this only turns a missed one
	// into an error rather than a crash.
	defer func() {
		if !catchPanics {
			return
		}
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("internal error: %v", p)
		}
	}()
	root, format, err := load(r, size)
	if err != nil {
		return nil, err
	}
	return &File{c: c, root: root, format: format}, nil
}

// Root is the unpickled top-level object.
func (f *File) Root() Value { return f.root }

// Format is "zip" (torch.save since PyTorch 1.6), "legacy" (older
// torch.save) or "pickle" (pickle.dump, as NVlabs network pickles are).
func (f *File) Format() string { return f.format }

// Close closes the file; its tensors can no longer be read.
func (f *File) Close() error {
	if f.c == nil {
		return nil
	}
	return f.c.Close()
}

func load(r io.ReaderAt, size int64) (Value, string, error) {
	head := make([]byte, min(size, 512))
	if n, err := r.ReadAt(head, 0); n < len(head) {
		return nil, "", fmt.Errorf("reading the header: %v", err)
	}
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		v, err := loadZip(r, size)
		return v, "zip", err
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return nil, "", errors.New("a tar archive: the torch.save format of PyTorch before 0.4 is not supported")
	}
	ld := &loader{}
	s := newStream(r, 0, size)
	v, err := newMachine(ld, s, "pickle").run()
	if err != nil && len(head) > 0 && head[0] != 0x80 {
		// torch.save and pickle.dump write protocol ≥ 2 (a PROTO opcode first).
		return nil, "", fmt.Errorf("not a PyTorch checkpoint: neither a zip archive nor a protocol-2+ pickle (it starts with %q); read as an old pickle: %w", head[:min(len(head), 8)], err)
	}
	if err != nil {
		return nil, "", err
	}
	if !isMagic(v) {
		return v, "pickle", nil
	}
	v, err = loadLegacy(ld, r, s, "")
	return v, "legacy", err
}

var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

func isMagic(v Value) bool {
	b, ok := v.(*big.Int)
	return ok && b.Cmp(legacyMagic) == 0
}

const legacyProtocol = 1001

// loadLegacy reads the rest of a legacy torch.save stream after its magic
// number: protocol version, sys_info, the main pickle, the sorted list of
// storage keys, then for each key an 8-byte little-endian element count and
// the raw elements. The data is located, not read.
func loadLegacy(ld *loader, r io.ReaderAt, s *stream, where string) (Value, error) {
	pv, err := newMachine(ld, s, where+"legacy protocol pickle").run()
	if err != nil {
		return nil, err
	}
	if pv != int64(legacyProtocol) {
		return nil, fmt.Errorf("legacy torch.save protocol %s, want %d", shortRepr(pv), legacyProtocol)
	}
	sys, err := newMachine(ld, s, where+"legacy sys_info pickle").run()
	if err != nil {
		return nil, err
	}
	if d, ok := sys.(*Dict); ok {
		if le, ok := d.Get("little_endian"); ok && le != true {
			return nil, errors.New("written on a big-endian machine: not supported")
		}
	}
	storages := map[string]*storage{}
	m := newMachine(ld, s, where+"legacy main pickle")
	m.persistent = func(pid Value) (Value, error) { return legacyStorage(r, storages, pid) }
	root, err := m.run()
	if err != nil {
		return nil, err
	}
	keysv, err := newMachine(ld, s, where+"legacy storage key list").run()
	if err != nil {
		return nil, err
	}
	keys, ok := keysv.(*List)
	if !ok {
		return nil, fmt.Errorf("legacy storage key list is a %s", typeName(keysv))
	}
	pos := s.pos
	for _, kv := range keys.Items {
		k, ok := kv.(string)
		if !ok {
			return nil, fmt.Errorf("legacy storage key is a %s", typeName(kv))
		}
		st := storages[k]
		if st == nil {
			return nil, fmt.Errorf("storage %q is listed but no tensor uses it", k)
		}
		if st.located {
			return nil, fmt.Errorf("storage %q is listed twice", k)
		}
		var hdr [8]byte
		if s.end-pos < 8 {
			return nil, fmt.Errorf("storage %q: file ends at offset %d, before its header", k, s.end)
		}
		if n, err := r.ReadAt(hdr[:], pos); n < 8 {
			return nil, fmt.Errorf("storage %q header at offset %d: %v", k, pos, err)
		}
		es := int64(st.dtype.Size())
		count := binary.LittleEndian.Uint64(hdr[:])
		if count != uint64(st.nbytes/es) {
			return nil, fmt.Errorf("storage %q at offset %d holds %d elements, its tensors declared %d", k, pos, count, st.nbytes/es)
		}
		if st.nbytes > s.end-pos-8 {
			return nil, fmt.Errorf("storage %q at offset %d: %d bytes run past the end of the data at %d", k, pos, st.nbytes, s.end)
		}
		st.off, st.located = pos+8, true
		pos += 8 + st.nbytes
	}
	for k, st := range storages {
		if !st.located {
			return nil, fmt.Errorf("storage %q is not in the storage key list: its data is missing", k)
		}
	}
	return root, nil
}

// storageID checks the shape shared by the zip and legacy persistent ids and
// returns (storage type global, key, element count).
func storageID(pid Value, n int) (dt safetensors.DType, key string, numel int64, err error) {
	t, ok := pid.(Tuple)
	if !ok || len(t) < 1 {
		return "", "", 0, fmt.Errorf("persistent id %s is not a tuple", shortRepr(pid))
	}
	kind := t[0]
	if b, ok := kind.([]byte); ok {
		kind = string(b)
	}
	if kind == "module" {
		return "", "", 0, errors.New("persistent id 'module' (a whole nn.Module saved with its source) is not supported")
	}
	if kind != "storage" || len(t) != n {
		return "", "", 0, fmt.Errorf("persistent id %s is not a %d-item ('storage', ...) tuple", shortRepr(pid), n)
	}
	ty, ok := t[1].(*Object)
	if !ok || ty.g == nil || ty.g.storage == "" {
		return "", "", 0, fmt.Errorf("storage type is a %s", typeName(t[1]))
	}
	key, ok = t[2].(string)
	if !ok {
		return "", "", 0, fmt.Errorf("storage key is a %s", typeName(t[2]))
	}
	numel, err = toInt(t[4])
	if err != nil || numel < 0 {
		return "", "", 0, fmt.Errorf("storage %q size %s", key, shortRepr(t[4]))
	}
	return ty.g.storage, key, numel, nil
}

// storageBytes is numel elements of dt in bytes, if that fits.
func storageBytes(dt safetensors.DType, numel int64, key string) (int64, error) {
	es := int64(dt.Size())
	if numel > math.MaxInt64/es {
		return 0, fmt.Errorf("storage %q of %d elements overflows", key, numel)
	}
	return numel * es, nil
}

// legacyStorage resolves ('storage', type, root_key, location, numel,
// view_metadata). Storages are located after the main pickle.
func legacyStorage(r io.ReaderAt, storages map[string]*storage, pid Value) (Value, error) {
	dt, key, numel, err := storageID(pid, 6)
	if err != nil {
		return nil, err
	}
	st := storages[key]
	if st == nil {
		nb, err := storageBytes(dt, numel, key)
		if err != nil {
			return nil, err
		}
		st = &storage{r: r, nbytes: nb, dtype: dt, key: key}
		storages[key] = st
	}
	total := st.nbytes / int64(st.dtype.Size())
	view := pid.(Tuple)[5]
	if view == nil {
		return bareStorage(st, 0, total), nil
	}
	// (view_key, offset, size): a slice of the root storage, in elements.
	vt, ok := view.(Tuple)
	if !ok || len(vt) != 3 {
		return nil, fmt.Errorf("storage %q view metadata is a %s", key, typeName(view))
	}
	off, err1 := toInt(vt[1])
	n, err2 := toInt(vt[2])
	if err1 != nil || err2 != nil || off < 0 || n < 0 || off > total || n > total-off {
		return nil, fmt.Errorf("storage %q view %s outside its %d elements", key, shortRepr(vt), total)
	}
	return bareStorage(st, off, n), nil
}

// loadZip reads a zip torch.save archive: <root>/data.pkl, whose persistent
// ids ('storage', type, key, location, numel) name records <root>/data/<key>.
func loadZip(r io.ReaderAt, size int64) (Value, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, fmt.Errorf("zip: %w", err)
	}
	records := map[string]*zip.File{}
	var pkls []*zip.File
	script := false
	for _, f := range zr.File {
		records[f.Name] = f
		dir, base, _ := strings.Cut(f.Name, "/")
		if base == "" && !strings.Contains(f.Name, "/") {
			dir, base = "", f.Name
		}
		if strings.Contains(base, "/") || strings.Contains(dir, "/") {
			continue
		}
		switch base {
		case "data.pkl":
			pkls = append(pkls, f)
		case "constants.pkl":
			script = true
		}
	}
	if script {
		return nil, errors.New("a TorchScript archive (torch.jit.save), not a torch.save file")
	}
	if len(pkls) != 1 {
		return nil, fmt.Errorf("zip holds %d data.pkl records at its top level, want 1 (not a torch.save archive?)", len(pkls))
	}
	pkl := pkls[0]
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	if bo := records[prefix+"byteorder"]; bo != nil {
		rr, start, end, err := entry(r, size, bo)
		if err != nil {
			return nil, err
		}
		if end-start > 16 {
			return nil, fmt.Errorf("byteorder record of %d bytes", end-start)
		}
		b := make([]byte, end-start)
		if n, err := rr.ReadAt(b, start); n < len(b) {
			return nil, fmt.Errorf("reading byteorder: %v", err)
		}
		switch string(b) {
		case "little":
		case "big":
			return nil, errors.New("written big-endian (byteorder 'big'): not supported")
		default:
			return nil, fmt.Errorf("byteorder record says %q", b)
		}
	}
	rr, start, end, err := entry(r, size, pkl)
	if err != nil {
		return nil, err
	}
	storages := map[string]*storage{}
	m := newMachine(&loader{}, newStream(rr, start, end), pkl.Name)
	m.persistent = func(pid Value) (Value, error) {
		dt, key, numel, err := storageID(pid, 5)
		if err != nil {
			return nil, err
		}
		if st := storages[key]; st != nil {
			return bareStorage(st, 0, st.nbytes/int64(st.dtype.Size())), nil
		}
		nb, err := storageBytes(dt, numel, key)
		if err != nil {
			return nil, err
		}
		name := prefix + "data/" + key
		rec := records[name]
		if rec == nil {
			return nil, fmt.Errorf("storage record %s is missing", name)
		}
		sr, s0, s1, err := entry(r, size, rec)
		if err != nil {
			return nil, err
		}
		if s1-s0 < nb {
			return nil, fmt.Errorf("storage record %s holds %d bytes, its tensors need %d", name, s1-s0, nb)
		}
		st := &storage{r: sr, off: s0, nbytes: nb, dtype: dt, key: key, located: true}
		storages[key] = st
		return bareStorage(st, 0, numel), nil
	}
	return m.run()
}

// entry returns where a zip record's bytes can be read: the file itself for
// a stored record (what torch.save writes), else an inflating reader.
func entry(r io.ReaderAt, size int64, f *zip.File) (io.ReaderAt, int64, int64, error) {
	n := f.UncompressedSize64
	if n > math.MaxInt64 {
		return nil, 0, 0, fmt.Errorf("zip record %s of %d bytes", f.Name, n)
	}
	switch f.Method {
	case zip.Store:
	case zip.Deflate:
		// Deflate cannot expand more than about 1032:1; a larger claim is a
		// lie that would size buffers for data that is not there.
		if n/1032 > f.CompressedSize64+64 {
			return nil, 0, 0, fmt.Errorf("zip record %s claims %d bytes from %d compressed", f.Name, n, f.CompressedSize64)
		}
		return &inflater{f: f}, 0, int64(n), nil
	default:
		return nil, 0, 0, fmt.Errorf("zip record %s uses compression method %d", f.Name, f.Method)
	}
	if f.CompressedSize64 != n {
		return nil, 0, 0, fmt.Errorf("stored zip record %s has sizes %d and %d", f.Name, f.CompressedSize64, n)
	}
	off, err := f.DataOffset()
	if err != nil {
		return nil, 0, 0, fmt.Errorf("zip record %s: %w", f.Name, err)
	}
	if off < 0 || off > size || int64(n) > size-off {
		return nil, 0, 0, fmt.Errorf("zip record %s (%d bytes at %d) runs past the end of the file", f.Name, n, off)
	}
	return r, off, off + int64(n), nil
}

// inflater gives random access to a compressed zip record, reopening it only
// when asked to go backwards, so sequential reads stay linear.
type inflater struct {
	f   *zip.File
	mu  sync.Mutex
	rc  io.ReadCloser
	pos int64
}

func (z *inflater) ReadAt(p []byte, off int64) (int, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.rc == nil || off < z.pos {
		if z.rc != nil {
			z.rc.Close()
		}
		rc, err := z.f.Open()
		if err != nil {
			z.rc = nil
			return 0, err
		}
		z.rc, z.pos = rc, 0
	}
	if off > z.pos {
		k, err := io.CopyN(io.Discard, z.rc, off-z.pos)
		z.pos += k
		if err != nil {
			return 0, err
		}
	}
	n, err := io.ReadFull(z.rc, p)
	z.pos += int64(n)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// loadFromBytes models torch.storage._load_from_bytes(b): b is a legacy
// torch.save of one storage, embedded in a plain pickle. It is parsed in
// place; its data stays in the file.
func loadFromBytes(m *machine, a Tuple) (Value, error) {
	if len(a) != 1 {
		return nil, fmt.Errorf("%d arguments", len(a))
	}
	if m.ld.blob {
		return nil, errors.New("a storage blob inside a storage blob")
	}
	var r io.ReaderAt
	var start, end int64
	var where string
	switch b := a[0].(type) {
	case []byte:
		r, end = bytes.NewReader(b), int64(len(b))
		where = fmt.Sprintf("storage blob (%d bytes): ", len(b))
	case *Bytes:
		r, start, end = b.r, b.Offset, b.Offset+b.Len
		where = fmt.Sprintf("storage blob at %d: ", b.Offset)
	default:
		return nil, fmt.Errorf("argument is a %s, not bytes", typeName(a[0]))
	}
	m.ld.blob = true
	defer func() { m.ld.blob = false }()
	s := newStream(r, start, end)
	v, err := newMachine(m.ld, s, where+"magic number").run()
	if err != nil {
		return nil, err
	}
	if !isMagic(v) {
		return nil, errors.New("blob is not a legacy torch.save stream (bad magic number)")
	}
	v, err = loadLegacy(m.ld, r, s, where)
	if err != nil {
		return nil, err
	}
	if t, ok := v.(*Tensor); !ok || !t.bare {
		return nil, fmt.Errorf("blob holds a %s, not a storage", typeName(v))
	}
	return v, nil
}
