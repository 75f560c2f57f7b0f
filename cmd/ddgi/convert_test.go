package main

import (
	"os"
	"path/filepath"
	"testing"

	"ddgi/internal/golden"
	"ddgi/torch"
)

// TestConvertThenSample runs the public-checkpoint path as a user would:
// `ddgi convert` on a rosinality checkpoint written by the reference code,
// then `ddgi sample gan --w-plus --raw` on the fixture's codes; the float
// images match the reference implementation's.
func TestConvertThenSample(t *testing.T) {
	quiet(t)
	dir := t.TempDir()
	fixture := filepath.Join("..", "..", "convert", "testdata", "rosinality")
	g := filepath.Join(dir, "g.safetensors")
	if code := run([]string{"convert", "--in", filepath.Join(fixture, "ckpt.pt"), "--out", g}); code != 0 {
		t.Fatalf("convert exited %d", code)
	}
	if code := run([]string{"convert", "--in", filepath.Join(fixture, "ckpt.pt"), "--out", g}); code != 1 {
		t.Errorf("convert over an existing --out without --force exited %d, want 1", code)
	}
	io := golden.Load(t, filepath.Join(fixture, "io.safetensors"))
	codes := filepath.Join(dir, "codes.safetensors")
	golden.Save(t, codes, map[string]*torch.Tensor{"w_plus": io["w_plus"]})
	raw := filepath.Join(dir, "raw.safetensors")
	if code := run([]string{"sample", "gan", "--generator", g, "--w-plus", codes, "--noise", "const", "--raw", raw, "--out", filepath.Join(dir, "grid.png")}); code != 0 {
		t.Fatalf("sample gan exited %d", code)
	}
	got := golden.Load(t, raw)["image"]
	if d := got.Sub(io["img_wplus"]).Abs().MaxAll().Item(); !(d <= 1e-4) {
		t.Errorf("sample gan --w-plus vs rosinality's image: max |Δ| = %.3g", d)
	}
	if _, err := os.Stat(filepath.Join(dir, "grid.png")); err != nil {
		t.Error(err)
	}
	// Codes of the wrong shape, and a file that is not a checkpoint, are one-line errors.
	golden.Save(t, codes, map[string]*torch.Tensor{"w_plus": io["w_plus"].Narrow(1, 0, 3)})
	if code := run([]string{"sample", "gan", "--generator", g, "--w-plus", codes, "--out", filepath.Join(dir, "x.png")}); code != 1 {
		t.Errorf("wrong-shaped codes exited %d, want 1", code)
	}
	junk := filepath.Join(dir, "junk.pt")
	os.WriteFile(junk, []byte("not a checkpoint at all"), 0o644)
	if code := run([]string{"convert", "--in", junk, "--out", filepath.Join(dir, "j.safetensors")}); code != 1 {
		t.Errorf("junk input exited %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "j.safetensors")); err == nil {
		t.Error("a failed conversion left an output file")
	}
}
