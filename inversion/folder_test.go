package inversion

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/data"
	"ddgi/synthface"
	"ddgi/torch"
)

// writeCelebAMaskHQ writes n SynthFace samples as CelebAMask-HQ ships its
// files: CelebA-HQ-img/<i>.jpg, one black-and-white PNG per face part in
// CelebAMask-HQ-mask-anno/<i/2000>/<i:05d>_<part>.png, and the
// Multi-Modal CelebA-HQ captions in celeba-caption/<i>.txt.
func writeCelebAMaskHQ(t *testing.T, dir string, n, size int) {
	t.Helper()
	src := data.NewSynthFace(data.Train, size, n)
	save := func(path string, write func(f *os.File) error) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		s, err := src.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		img := image.NewRGBA(image.Rect(0, 0, size, size))
		for p := 0; p < size*size; p++ {
			img.Set(p%size, p/size, color.RGBA{s.Image[3*p], s.Image[3*p+1], s.Image[3*p+2], 255})
		}
		save(filepath.Join(dir, data.DirImages, fmt.Sprintf("%d.jpg", i)), func(f *os.File) error {
			return jpeg.Encode(f, img, &jpeg.Options{Quality: 95})
		})
		for c := 1; c < synthface.NumClasses; c++ {
			part := image.NewGray(image.Rect(0, 0, size, size))
			any := false
			for p, l := range s.Mask {
				if int(l) == c {
					part.Pix[p], any = 255, true
				}
			}
			if !any {
				continue
			}
			name := fmt.Sprintf("%05d_%s.png", i, synthface.Classes[c])
			save(filepath.Join(dir, data.DirPartMasks, fmt.Sprint(i/2000), name), func(f *os.File) error {
				return png.Encode(f, part)
			})
		}
		save(filepath.Join(dir, "celeba-caption", fmt.Sprintf("%d.txt", i)), func(f *os.File) error {
			_, err := f.WriteString(strings.Join(s.Captions, "\n") + "\n")
			return err
		})
	}
}

// TestTrainOnCelebAMaskHQFolder trains the full method end to end on a
// folder in CelebAMask-HQ layout opened by data.Open, as `ddgi train
// inversion --data <folder>` does: stage 1 pauses halfway and resumes,
// the loss stays finite and falls, I^d_0 is sampled once per pair, and the
// final checkpoint verifies.
func TestTrainOnCelebAMaskHQFolder(t *testing.T) {
	dir := t.TempDir()
	const n = 6
	writeCelebAMaskHQ(t, dir, n, 64)
	ds, err := data.Open(dir, data.OpenOptions{Size: 32, Split: data.Train, OnBad: data.StopOnBad})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != n {
		t.Fatalf("data.Open found %d samples, want %d", ds.Len(), n)
	}
	s, err := ds.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	classes := map[uint8]bool{}
	for _, l := range s.Mask {
		classes[l] = true
	}
	if len(classes) < 4 || len(s.Captions) == 0 {
		t.Fatalf("sample 0 has %d mask classes and %d captions: the parts or captions were not read", len(classes), len(s.Captions))
	}

	c := Tiny()
	g := newLinearG(c, 32)
	enc := newFakeEncoder(c)
	tc := tinyTrain(10, 4)
	l := quietLoop()
	l.MaxSteps = 5
	tr, run, err := trainOn(t, ds, c, tc, g, enc, "", 1, l)
	if err != nil {
		t.Fatal(err)
	}
	if ck, _, _ := run.Latest(); ck.Done != 5 {
		t.Fatalf("paused run checkpointed at %d, want 5", ck.Done)
	}
	m, _ := NewModel(c, torch.CPU, 2)
	tr = &Trainer{Cfg: tc, Model: m, G: g, E: enc, Data: ds, Cache: tr.Cache, Dev: torch.CPU}
	if err := tr.Train(context.Background(), run, quietLoop()); err != nil {
		t.Fatal(err)
	}
	ck, ok, err := run.Latest()
	if err != nil || !ok || ck.Done != 14 {
		t.Fatalf("final checkpoint: %+v %v %v", ck, ok, err)
	}
	if err := ck.Verify(); err != nil {
		t.Fatal(err)
	}
	steps, vals, err := run.ReadLog()
	if err != nil || len(steps) != 14 {
		t.Fatalf("log: %d rows, %v", len(steps), err)
	}
	loss := vals["loss"]
	for i, v := range loss {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("loss of step %d is %v", i+1, v)
		}
	}
	if first, last := (loss[0]+loss[1]+loss[2])/3, (loss[7]+loss[8]+loss[9])/3; !(last < first) {
		t.Fatalf("stage-1 loss did not fall on the folder: %v", loss[:10])
	}
	// Stage 2 reads 8 pairs, all 6 samples: each sampled once, from its
	// own z_T (folder samples have no renderer seed; the index stands in).
	if enc.calls != n {
		t.Fatalf("diffusion sampler ran for %d pairs, want %d", enc.calls, n)
	}
	seen := map[int64]bool{}
	for _, sd := range enc.seeds {
		seen[sd] = true
	}
	if len(seen) != n {
		t.Fatalf("I^d_0 seeds %v: want %d distinct", enc.seeds, n)
	}
	for _, f := range []string{"preview-000000010.png", "preview-000000014.png", "latest/" + Stage1File} {
		if _, err := os.Stat(run.Path(f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}
