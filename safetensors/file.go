package safetensors

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize is the largest JSON header accepted, as in the reference
// implementation (100 MB).
const MaxHeaderSize = 100_000_000

// metadataKey is the reserved header entry holding the string metadata.
const metadataKey = "__metadata__"

// File is the content of one safetensors file.
type File struct {
	// Metadata is the free-form string map stored under "__metadata__".
	// ddgi stores "format": "ddgi", "ddgi_version" and "config" (the
	// network's JSON config) there; see docs/safetensors.md.
	Metadata map[string]string
	// Tensors maps each tensor name to its tensor.
	Tensors map[string]Tensor
}

// Names returns the tensor names in sorted order.
func (f *File) Names() []string { return sortedNames(f.Tensors) }

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Error describes a malformed file or a failed read or write. File is the
// file name when known, Tensor the offending tensor when there is one.
type Error struct {
	File   string
	Tensor string
	Msg    string
	Err    error // underlying cause, may be nil
}

func (e *Error) Error() string {
	var b bytes.Buffer
	b.WriteString("safetensors: ")
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, "tensor %q: ", e.Tensor)
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		if e.Msg != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Read parses a safetensors file of the given size from r. size must be the
// true size: the data buffer is what lies between the header and size. The
// header is validated completely before the buffer is allocated, and the
// buffer is never larger than size. All tensors' Data share that one
// buffer (each capped to its own bytes).
//
// If r has a Name() string method (as *os.File does), errors name the file.
func Read(r io.ReaderAt, size int64) (*File, error) {
	name := ""
	if n, ok := r.(interface{ Name() string }); ok {
		name = n.Name()
	}
	return read(name, r, size)
}

// Load reads the whole file at path.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "open", Err: err}
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, &Error{File: path, Msg: "stat", Err: err}
	}
	return read(path, fh, st.Size())
}

// tensorEntry is one parsed header entry, kept with its name for ordering.
type tensorEntry struct {
	name       string
	dtype      DType
	shape      []int64
	begin, end int64
}

func read(file string, r io.ReaderAt, size int64) (*File, error) {
	ix, err := readIndex(file, r, size)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, ix.bufLen)
	if ix.bufLen > 0 {
		if err := readFullAt(r, buf, ix.start); err != nil {
			return nil, &Error{File: file, Msg: "read data", Err: err}
		}
	}
	f := &File{Metadata: ix.meta, Tensors: make(map[string]Tensor, len(ix.entries))}
	for _, e := range ix.entries {
		f.Tensors[e.name] = Tensor{DType: e.dtype, Shape: e.shape, Data: buf[e.begin:e.end:e.end]}
	}
	return f, nil
}

// index is a validated header: the metadata, the tensor entries (offsets
// relative to the data buffer), and where the buffer starts and its length.
type index struct {
	meta          map[string]string
	entries       []tensorEntry
	start, bufLen int64
}

// readIndex reads and validates the header of a file of size bytes;
// nothing of the data buffer is read.
func readIndex(file string, r io.ReaderAt, size int64) (*index, error) {
	fail := func(tensor, format string, args ...any) error {
		return &Error{File: file, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
	}
	if size < 8 {
		return nil, fail("", "file is %d bytes, shorter than the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if err := readFullAt(r, lenBuf[:], 0); err != nil {
		return nil, &Error{File: file, Msg: "read header length", Err: err}
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, fail("", "header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if n > uint64(size-8) {
		return nil, fail("", "header length %d exceeds the file (%d bytes after the length)", n, size-8)
	}
	header := make([]byte, n)
	if err := readFullAt(r, header, 8); err != nil {
		return nil, &Error{File: file, Msg: "read header", Err: err}
	}
	bufLen := size - 8 - int64(n)
	if uint64(bufLen) > math.MaxInt {
		return nil, fail("", "data buffer of %d bytes does not fit in memory", bufLen)
	}

	meta, entries, err := parseHeader(file, header)
	if err != nil {
		return nil, err
	}
	if err := checkLayout(file, entries, bufLen); err != nil {
		return nil, err
	}
	return &index{meta: meta, entries: entries, start: 8 + int64(n), bufLen: bufLen}, nil
}

// parseHeader decodes the JSON header: string metadata and tensor entries.
func parseHeader(file string, header []byte) (map[string]string, []tensorEntry, error) {
	fail := func(tensor, format string, args ...any) error {
		return &Error{File: file, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
	}
	if !utf8.Valid(header) {
		return nil, nil, fail("", "header is not valid UTF-8")
	}
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, fail("", "header does not start with '{'")
	}
	top, err := parseObject(header)
	if err != nil {
		return nil, nil, &Error{File: file, Msg: "header is not a valid JSON object", Err: err}
	}
	meta := map[string]string{}
	entries := make([]tensorEntry, 0, len(top))
	for _, kv := range top {
		if kv.key == metadataKey {
			if meta, err = parseMetadata(kv.val); err != nil {
				return nil, nil, &Error{File: file, Msg: metadataKey, Err: err}
			}
			continue
		}
		e, err := parseEntry(kv.key, kv.val)
		if err != nil {
			return nil, nil, &Error{File: file, Tensor: kv.key, Err: err}
		}
		entries = append(entries, e)
	}
	return meta, entries, nil
}

type keyValue struct {
	key string
	val json.RawMessage
}

// parseObject splits one JSON object into its members in order, rejecting
// duplicate keys and anything after the closing brace but whitespace.
func parseObject(data []byte) ([]keyValue, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("expected a JSON object, found %s", describe(tok))
	}
	var out []keyValue
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("expected an object key, found %s", describe(tok))
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("value of %q: %w", key, err)
		}
		out = append(out, keyValue{key, val})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, fmt.Errorf("after the object: %w", err)
		}
		return nil, fmt.Errorf("unexpected %s after the object", describe(tok))
	}
	return out, nil
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("'%c'", rune(v))
	case string:
		return strconv.Quote(v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	meta := map[string]string{}
	if string(raw) == "null" {
		return meta, nil
	}
	members, err := parseObject(raw)
	if err != nil {
		return nil, err
	}
	for _, kv := range members {
		var s string
		if len(kv.val) == 0 || kv.val[0] != '"' {
			return nil, fmt.Errorf("value of %q is %s, not a string", kv.key, kv.val)
		}
		if err := json.Unmarshal(kv.val, &s); err != nil {
			return nil, fmt.Errorf("value of %q: %w", kv.key, err)
		}
		meta[kv.key] = s
	}
	return meta, nil
}

// parseEntry decodes {"dtype": .., "shape": [..], "data_offsets": [b, e]}.
// Member names are matched exactly; unknown members are ignored, as the
// reference reader does.
func parseEntry(name string, raw json.RawMessage) (tensorEntry, error) {
	e := tensorEntry{name: name}
	members, err := parseObject(raw)
	if err != nil {
		return e, fmt.Errorf("header entry: %w", err)
	}
	var dtype, shape, offsets json.RawMessage
	for _, kv := range members {
		switch kv.key {
		case "dtype":
			dtype = kv.val
		case "shape":
			shape = kv.val
		case "data_offsets":
			offsets = kv.val
		}
	}
	for _, m := range []struct {
		name string
		val  json.RawMessage
	}{{"dtype", dtype}, {"shape", shape}, {"data_offsets", offsets}} {
		if m.val == nil {
			return e, fmt.Errorf("missing %q", m.name)
		}
	}
	var d string
	if err := json.Unmarshal(dtype, &d); err != nil {
		return e, fmt.Errorf("dtype %s is not a string", dtype)
	}
	e.dtype = DType(d)
	if !e.dtype.Valid() {
		return e, fmt.Errorf("unknown dtype %q", d)
	}
	if err := unmarshalInts(shape, &e.shape); err != nil {
		return e, fmt.Errorf("shape %s: %w", shape, err)
	}
	var off []int64
	if err := unmarshalInts(offsets, &off); err != nil || len(off) != 2 {
		return e, fmt.Errorf("data_offsets %s: want [begin, end] of non-negative integers", offsets)
	}
	e.begin, e.end = off[0], off[1]
	return e, nil
}

// unmarshalInts decodes a JSON array of non-negative integers (never null).
func unmarshalInts(raw json.RawMessage, dst *[]int64) error {
	if len(raw) == 0 || raw[0] != '[' {
		return errors.New("not an array")
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return errors.New("not an array of integers")
	}
	for _, v := range *dst {
		if v < 0 {
			return fmt.Errorf("negative value %d", v)
		}
	}
	if *dst == nil {
		*dst = []int64{}
	}
	return nil
}

// checkLayout validates each entry's byte size against dtype×shape and that
// the entries tile [0, bufLen) contiguously, without holes or overlaps.
func checkLayout(file string, entries []tensorEntry, bufLen int64) error {
	fail := func(tensor, format string, args ...any) error {
		return &Error{File: file, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
	}
	for _, e := range entries {
		if e.end < e.begin {
			return fail(e.name, "data_offsets [%d,%d] are reversed", e.begin, e.end)
		}
		if e.end > bufLen {
			return fail(e.name, "data_offsets [%d,%d] run past the %d-byte data buffer", e.begin, e.end, bufLen)
		}
		need, err := byteSize(e.dtype, e.shape)
		if err != nil {
			return &Error{File: file, Tensor: e.name, Err: err}
		}
		if have := uint64(e.end - e.begin); have != need {
			return fail(e.name, "data_offsets [%d,%d] hold %d bytes but %s %v needs %d",
				e.begin, e.end, have, e.dtype, e.shape, need)
		}
	}
	order := slices.Clone(entries)
	slices.SortFunc(order, func(a, b tensorEntry) int {
		if a.begin != b.begin {
			return cmp.Compare(a.begin, b.begin)
		}
		if a.end != b.end {
			return cmp.Compare(a.end, b.end)
		}
		return cmp.Compare(a.name, b.name)
	})
	var pos int64
	prev := ""
	for _, e := range order {
		switch {
		case e.begin > pos:
			return fail(e.name, "data_offsets [%d,%d] leave a hole at bytes [%d,%d)", e.begin, e.end, pos, e.begin)
		case e.begin < pos:
			return fail(e.name, "data_offsets [%d,%d] overlap tensor %q, which ends at %d", e.begin, e.end, prev, pos)
		}
		pos, prev = e.end, e.name
	}
	if pos != bufLen {
		return fail("", "tensors cover %d bytes but the data buffer holds %d", pos, bufLen)
	}
	return nil
}

// readFullAt fills p from r at off. A ReaderAt may report io.EOF together
// with a full read at the end of the input; that is success.
func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Write encodes f exactly as the reference serializer does: the header lists
// "__metadata__" first (keys sorted; omitted when empty), then the tensors in
// buffer order; the buffer holds the tensors widest dtype first (I64, F64,
// F32, I32, BF16, F16, I16, I8, U8, BOOL), ties by name, so every tensor is
// naturally aligned; the header is compact JSON padded with spaces so the
// buffer starts at a multiple of 8. The output is deterministic.
// f is validated before anything is written.
func Write(w io.Writer, f *File) error {
	header, order, err := encodeHeader(f)
	if err != nil {
		return err
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(header)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return &Error{Msg: "write header", Err: err}
	}
	if _, err := w.Write(header); err != nil {
		return &Error{Msg: "write header", Err: err}
	}
	for _, name := range order {
		if _, err := w.Write(f.Tensors[name].Data); err != nil {
			return &Error{Tensor: name, Msg: "write data", Err: err}
		}
	}
	return nil
}

// encodeHeader validates f and returns the padded header and the buffer order.
func encodeHeader(f *File) ([]byte, []string, error) {
	if f == nil {
		return nil, nil, &Error{Msg: "nil *File"}
	}
	for k, v := range f.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, nil, &Error{Msg: fmt.Sprintf("metadata %q: key or value is not valid UTF-8", k)}
		}
	}
	order := f.Names()
	for _, name := range order {
		if name == metadataKey {
			return nil, nil, &Error{Tensor: name, Msg: "name is reserved for metadata"}
		}
		if !utf8.ValidString(name) {
			return nil, nil, &Error{Tensor: name, Msg: "name is not valid UTF-8"}
		}
		if err := f.Tensors[name].Validate(); err != nil {
			return nil, nil, &Error{Tensor: name, Err: err}
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		return f.Tensors[order[i]].DType.writeRank() > f.Tensors[order[j]].DType.writeRank()
	})

	var b bytes.Buffer
	b.WriteByte('{')
	if len(f.Metadata) > 0 {
		keys := make([]string, 0, len(f.Metadata))
		for k := range f.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		writeJSONString(&b, metadataKey)
		b.WriteString(":{")
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, f.Metadata[k])
		}
		b.WriteByte('}')
	}
	var offset int64
	for i, name := range order {
		t := f.Tensors[name]
		if i > 0 || len(f.Metadata) > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, name)
		b.WriteString(`:{"dtype":"`)
		b.WriteString(string(t.DType))
		b.WriteString(`","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(d, 10))
		}
		end := offset + int64(len(t.Data))
		if end < offset {
			return nil, nil, &Error{Tensor: name, Msg: "total data size overflows int64"}
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), order, nil
}

// writeJSONString writes s as a JSON string the way serde_json does: only
// '"', '\\' and control characters are escaped (\b \t \n \f \r short forms,
// others as \u00xx in lower case); everything else is raw UTF-8.
func writeJSONString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// Save writes f to path atomically: it writes a temporary file in the same
// directory, syncs it, and renames it over path. On any error the temporary
// file is removed and path is left as it was.
func Save(path string, f *File) error { return save(path, f, nil) }

// save is Save with an optional wrapper around the file writer (tests use it
// to inject write failures).
func save(path string, f *File, wrap func(io.Writer) io.Writer) (err error) {
	if _, _, err := encodeHeader(f); err != nil { // fail before touching the disk
		return withFile(err, path)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return &Error{File: path, Msg: "create temporary file", Err: err}
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	var w io.Writer = tmp
	if wrap != nil {
		w = wrap(w)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := Write(bw, f); err != nil {
		return withFile(err, path)
	}
	if err := bw.Flush(); err != nil {
		return &Error{File: path, Msg: "write", Err: err}
	}
	if err := tmp.Chmod(0o644); err != nil {
		return &Error{File: path, Msg: "chmod", Err: err}
	}
	if err := tmp.Sync(); err != nil {
		return &Error{File: path, Msg: "sync", Err: err}
	}
	if err := tmp.Close(); err != nil {
		return &Error{File: path, Msg: "close", Err: err}
	}
	if err := os.Rename(tmpName, path); err != nil {
		return &Error{File: path, Msg: "rename", Err: err}
	}
	// Make the rename durable; not every platform can sync a directory.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// withFile sets the file name on an *Error that has none.
func withFile(err error, path string) error {
	var e *Error
	if errors.As(err, &e) && e.File == "" {
		e.File = path
	}
	return err
}
