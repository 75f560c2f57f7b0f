package safetensors

import "os"

// Lazy is an open safetensors file whose header has been read and checked
// (as Read checks it) but whose tensors are read from the file one at a
// time, when asked for: converting a multi-GB checkpoint then holds about
// one tensor of it at once rather than the whole file.
type Lazy struct {
	// Metadata is the "__metadata__" string map.
	Metadata map[string]string
	path     string
	f        *os.File
	start    int64
	entries  map[string]tensorEntry
}

// Open reads and validates path's header and keeps the file open for
// Lazy.Tensor; Close releases it.
func Open(path string) (*Lazy, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "open", Err: err}
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, &Error{File: path, Msg: "stat", Err: err}
	}
	ix, err := readIndex(path, fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, err
	}
	l := &Lazy{Metadata: ix.meta, path: path, f: fh, start: ix.start, entries: make(map[string]tensorEntry, len(ix.entries))}
	for _, e := range ix.entries {
		l.entries[e.name] = e
	}
	return l, nil
}

// Names returns the tensor names in sorted order.
func (l *Lazy) Names() []string { return sortedNames(l.entries) }

// Info returns a tensor's dtype and shape without reading it.
func (l *Lazy) Info(name string) (DType, []int64, bool) {
	e, ok := l.entries[name]
	return e.dtype, e.shape, ok
}

// Tensor reads one tensor's bytes from the file into a buffer of its own.
func (l *Lazy) Tensor(name string) (Tensor, error) {
	e, ok := l.entries[name]
	if !ok {
		return Tensor{}, &Error{File: l.path, Tensor: name, Msg: "no such tensor"}
	}
	buf := make([]byte, e.end-e.begin)
	if err := readFullAt(l.f, buf, l.start+e.begin); err != nil {
		return Tensor{}, &Error{File: l.path, Tensor: name, Msg: "read data", Err: err}
	}
	return Tensor{DType: e.dtype, Shape: e.shape, Data: buf}, nil
}

// TensorInto is Tensor reading into buf when it is large enough (else a
// new buffer): a loader that copies each tensor out before the next read
// reuses one buffer instead of leaving the file's size in garbage. The
// returned Data aliases buf until the next call.
func (l *Lazy) TensorInto(name string, buf []byte) (Tensor, error) {
	e, ok := l.entries[name]
	if !ok {
		return Tensor{}, &Error{File: l.path, Tensor: name, Msg: "no such tensor"}
	}
	n := e.end - e.begin
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if err := readFullAt(l.f, buf, l.start+e.begin); err != nil {
		return Tensor{}, &Error{File: l.path, Tensor: name, Msg: "read data", Err: err}
	}
	return Tensor{DType: e.dtype, Shape: e.shape, Data: buf}, nil
}

// ReadAt reads len(p) bytes of a tensor's data starting off bytes into
// it: a tensor streamed in pieces.
func (l *Lazy) ReadAt(name string, p []byte, off int64) error {
	e, ok := l.entries[name]
	if !ok {
		return &Error{File: l.path, Tensor: name, Msg: "no such tensor"}
	}
	if off < 0 || off+int64(len(p)) > e.end-e.begin {
		return &Error{File: l.path, Tensor: name, Msg: "read outside the tensor's data"}
	}
	if err := readFullAt(l.f, p, l.start+e.begin+off); err != nil {
		return &Error{File: l.path, Tensor: name, Msg: "read data", Err: err}
	}
	return nil
}

// Close closes the file.
func (l *Lazy) Close() error { return l.f.Close() }
