package safetensors

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestLazyMatchesLoad: Open reads the same metadata and tensors as Load,
// one tensor per call; a truncated file, which Load refuses, Open refuses
// too (the header's layout is checked against the file's size).
func TestLazyMatchesLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.safetensors")
	want := sampleFile(t)
	if err := Save(path, want); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	full, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l.Metadata, full.Metadata) || !reflect.DeepEqual(l.Names(), full.Names()) {
		t.Fatalf("metadata %v / names %v, Load gives %v / %v", l.Metadata, l.Names(), full.Metadata, full.Names())
	}
	for _, n := range l.Names() {
		got, err := l.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		dt, shape, ok := l.Info(n)
		if !ok || dt != got.DType || !reflect.DeepEqual(shape, got.Shape) || !reflect.DeepEqual(got, full.Tensors[n]) {
			t.Errorf("%s: lazy %+v (info %s %v), Load %+v", n, got, dt, shape, full.Tensors[n])
		}
	}
	if _, err := l.Tensor("absent"); err == nil {
		t.Error("an absent tensor read")
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := os.WriteFile(bad, b[:len(b)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bad); err == nil || !strings.Contains(err.Error(), "bad.safetensors") {
		t.Errorf("a truncated file opened: %v", err)
	}
}
