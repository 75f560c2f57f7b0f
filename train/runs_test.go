package train

import (
	"image/png"
	"os"
	"testing"
)

func TestLogResumePlotAndState(t *testing.T) {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for s := int64(1); s <= 5; s++ {
		if err := r.Log(s, map[string]float64{"loss": 1 / float64(s), "d": float64(s)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.TruncateLog(3); err != nil {
		t.Fatal(err)
	}
	steps, vals, err := r.ReadLog()
	if err != nil || len(steps) != 3 || vals["loss"][2] != 1.0/3 {
		t.Fatalf("after truncate: %v %v %v", steps, vals, err)
	}
	if err := r.PlotLosses("test"); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(r.Path("loss.png"))
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("loss.png: %v", err)
	}
	type st struct{ Step int64 }
	var got st
	if ok, _ := r.LoadState(&got); ok {
		t.Fatal("state before any save")
	}
	r.SaveState(st{Step: 42})
	if ok, err := r.LoadState(&got); !ok || err != nil || got.Step != 42 {
		t.Fatalf("state %v %v %v", got, ok, err)
	}
}

func TestRunFolderIsClaimedByOneProcess(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatalf("the same process reopening its run: %v", err)
	}
	// A live other process (pid 1) holds the folder: refused.
	os.WriteFile(dir+"/.lock", []byte("1\n"), 0o644)
	if _, err := Open(dir); err == nil {
		t.Fatal("a folder claimed by a live process was opened")
	}
	// A dead process's lock is replaced.
	os.WriteFile(dir+"/.lock", []byte("999999999\n"), 0o644)
	if _, err := Open(dir); err != nil {
		t.Fatalf("stale lock not replaced: %v", err)
	}
}
