package safetensors

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sampleFile(t *testing.T) *File {
	t.Helper()
	big := make([]float32, 1<<16)
	for i := range big {
		big[i] = float32(i)
	}
	return &File{
		Metadata: map[string]string{"format": "ddgi", "ddgi_version": "0.1", "config": `{"dim":8}`},
		Tensors: map[string]Tensor{
			"mapping.fc0.weight": mustF32(t, []int64{256, 256}, big...),
			"mapping.fc0.bias":   mustF32(t, []int64{2}, 1, 2),
		},
	}
}

// dirEntries lists dir's names.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	f := sampleFile(t)
	if err := Save(path, f); err != nil {
		t.Fatal(err)
	}
	if got := dirEntries(t, dir); !reflect.DeepEqual(got, []string{"model.safetensors"}) {
		t.Errorf("dir holds %q", got)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v", st.Mode())
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, f) {
		t.Error("Load(Save(f)) != f")
	}
	// Overwrite in place.
	f.Metadata["ddgi_version"] = "0.2"
	if err := Save(path, f); err != nil {
		t.Fatal(err)
	}
	if back, _ := Load(path); back.Metadata["ddgi_version"] != "0.2" {
		t.Error("overwrite not visible")
	}
	// Relative path in the working directory.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	if err := Save("rel.safetensors", f); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("rel.safetensors"); err != nil {
		t.Fatal(err)
	}
}

// failingWriter passes through limit bytes, then fails.
type failingWriter struct {
	w     io.Writer
	limit int
}

var errDiskFull = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.limit {
		n, _ := f.w.Write(p[:f.limit])
		f.limit = 0
		return n, errDiskFull
	}
	f.limit -= len(p)
	return f.w.Write(p)
}

func TestSaveFailureLeavesNothing(t *testing.T) {
	for _, limit := range []int{0, 5, 300, 100_000} {
		dir := t.TempDir()
		path := filepath.Join(dir, "model.safetensors")
		err := save(path, sampleFile(t), func(w io.Writer) io.Writer { return &failingWriter{w: w, limit: limit} })
		if !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), path) {
			t.Fatalf("limit %d: error = %v", limit, err)
		}
		if got := dirEntries(t, dir); len(got) != 0 {
			t.Errorf("limit %d: failed Save left %q", limit, got)
		}
	}
}

func TestSaveFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	old := &File{Metadata: map[string]string{"format": "ddgi"}, Tensors: map[string]Tensor{"x": mustF32(t, []int64{1}, 42)}}
	if err := Save(path, old); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	err := save(path, sampleFile(t), func(w io.Writer) io.Writer { return &failingWriter{w: w, limit: 1000} })
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("error = %v", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Error("failed Save modified the existing file")
	}
	if got := dirEntries(t, dir); !reflect.DeepEqual(got, []string{"model.safetensors"}) {
		t.Errorf("dir holds %q", got)
	}
}

func TestSaveErrors(t *testing.T) {
	dir := t.TempDir()
	// An invalid File fails before anything is created.
	bad := &File{Tensors: map[string]Tensor{"x": {DType: F32, Shape: []int64{2}, Data: make([]byte, 3)}}}
	path := filepath.Join(dir, "bad.safetensors")
	if err := Save(path, bad); err == nil || !strings.Contains(err.Error(), path+`: tensor "x"`) {
		t.Errorf("invalid file: %v", err)
	}
	// Rename onto a directory fails; the temp file is removed.
	target := filepath.Join(dir, "isdir")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Save(target, sampleFile(t)); err == nil || !strings.Contains(err.Error(), "rename") {
		t.Errorf("save onto a directory: %v", err)
	}
	// Missing directory.
	if err := Save(filepath.Join(dir, "nope", "m.safetensors"), sampleFile(t)); err == nil {
		t.Error("save into a missing directory succeeded")
	}
	if got := dirEntries(t, dir); !reflect.DeepEqual(got, []string{"isdir"}) {
		t.Errorf("dir holds %q", got)
	}
	// Load errors name the path.
	missing := filepath.Join(dir, "missing.safetensors")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load missing: %v", err)
	}
	trunc := filepath.Join(dir, "trunc.safetensors")
	os.WriteFile(trunc, []byte{200, 0, 0, 0, 0, 0, 0, 0, '{'}, 0o644)
	if _, err := Load(trunc); err == nil || !strings.Contains(err.Error(), "safetensors: "+trunc+": header length 200 exceeds the file") {
		t.Errorf("Load truncated: %v", err)
	}
}
