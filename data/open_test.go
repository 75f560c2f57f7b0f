package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddgi/synthface"
)

// put writes img as PNG (or JPEG by extension) at dir/name.
func put(t testing.TB, dir, name string, img image.Image) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if strings.HasSuffix(name, ".jpg") {
		err = jpeg.Encode(f, img, &jpeg.Options{Quality: 100})
	} else {
		err = png.Encode(f, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func putText(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// flat is a w×h image of grey v; with box, a white square in the middle
// gives the edge detector something to find.
func flat(w, h int, v uint8, box bool) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{v, v, v, 255}
			if box && x >= w/4 && x < 3*w/4 && y >= h/4 && y < 3*h/4 {
				c = color.RGBA{255, 255, 255, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// labels is a w×h one-channel mask: top half a, bottom half b.
func labels(w, h int, a, b uint8) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Pix[y*w+x] = a
			if y >= h/2 {
				m.Pix[y*w+x] = b
			}
		}
	}
	return m
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func open(t *testing.T, dir string, o OpenOptions) Dataset {
	t.Helper()
	if o.Size == 0 {
		o.Size = 16
	}
	ds, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func get(t *testing.T, ds Dataset, i int) *Sample {
	t.Helper()
	s, err := ds.Get(i)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOpenPlainFolder reads name.png + name_mask.png + name_scribble.png +
// name.txt, and a bare name.jpg whose scribble is detected.
func TestOpenPlainFolder(t *testing.T) {
	dir := t.TempDir()
	put(t, dir, "a.png", flat(32, 32, 90, false))
	put(t, dir, "a_mask.png", labels(32, 32, synthface.Hair, synthface.Skin))
	scr := image.NewGray(image.Rect(0, 0, 32, 32))
	for x := 0; x < 32; x++ {
		scr.Pix[5*32+x] = 255 // one horizontal stroke at row 5
	}
	put(t, dir, "a_scribble.png", scr)
	putText(t, dir, "a.txt", []byte("\ufeffA smiling woman.\r\n\r\nShe has wavy hair.\n"))
	put(t, dir, "b.jpg", flat(48, 48, 40, true))
	putText(t, dir, "README.txt", []byte("not a caption of any image"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	put(t, filepath.Join(dir, "sub"), "c.png", flat(8, 8, 0, false))

	ds := open(t, dir, OpenOptions{})
	if ds.Len() != 2 {
		t.Fatalf("Len %d, want 2 (a, b; sub/ and README.txt ignored)", ds.Len())
	}
	a := get(t, ds, 0)
	if len(a.Image) != 16*16*3 || a.Image[0] != 90 {
		t.Fatalf("a's image not read: %d bytes, first %d", len(a.Image), a.Image[0])
	}
	if a.Mask[0] != synthface.Hair || a.Mask[15*16] != synthface.Skin {
		t.Fatalf("a's mask: top %d bottom %d", a.Mask[0], a.Mask[15*16])
	}
	for y := 0; y < 16; y++ { // the stroke at row 5 of 32 lands on row 2 of 16
		if want := uint8(255 * btoi(y == 2)); a.Scribble[y*16+7] != want {
			t.Fatalf("a's scribble row %d: %d, want %d (the file's stroke)", y, a.Scribble[y*16+7], want)
		}
	}
	if len(a.Captions) != 2 || a.Captions[0] != "A smiling woman." || a.Captions[1] != "She has wavy hair." {
		t.Fatalf("a's captions %q", a.Captions)
	}
	if a.Identity != -1 || a.Seed != -1 || a.Camera != defaultCamera() || a.Attrs != nil {
		t.Fatal("a's metadata should be unknown with the frontal camera")
	}
	b := get(t, ds, 1)
	if b.Mask != nil || b.Captions != nil {
		t.Fatalf("b has no mask or caption files, got mask %v captions %q", b.Mask != nil, b.Captions)
	}
	if !bytes.Equal(b.Scribble, synthface.Scribble(b.Image, 16)) || bytes.Count(b.Scribble, []byte{255}) == 0 {
		t.Fatal("b's scribble should be the edge detector's, and find the square")
	}
}

// TestOpenCelebALayout: Open recognises the layout `ddgi synth` writes
// and splits it by numeric name (9, 10, 11 are last, not 7, 8, 9).
func TestOpenCelebALayout(t *testing.T) {
	dir, _ := synthFolder(t, Train, 16, 12)
	tr := open(t, dir, OpenOptions{Val: 3})
	be := open(t, dir, OpenOptions{Val: 3, Split: Bench})
	if tr.Len() != 9 || be.Len() != 3 {
		t.Fatalf("split %d/%d, want 9/3", tr.Len(), be.Len())
	}
	for i, want := range []int64{9, 10, 11} {
		if s := get(t, be, i); s.Seed != want || s.Mask == nil || len(s.Captions) == 0 {
			t.Fatalf("bench %d: seed %d (want %d), mask %v, captions %d", i, s.Seed, want, s.Mask != nil, len(s.Captions))
		}
	}
	if s := get(t, tr, 8); s.Seed != 8 {
		t.Fatalf("train 8: seed %d", s.Seed)
	}
}

// numbered writes n images s00… whose grey level is 10·index.
func numbered(t *testing.T, n int) string {
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		put(t, dir, fmt.Sprintf("s%02d.png", i), flat(8, 8, uint8(10*i), false))
	}
	return dir
}

func indexOf(s *Sample) int { return int(s.Image[0]) / 10 }

func TestOpenValSplitAndCap(t *testing.T) {
	dir := numbered(t, 10)
	ids := func(ds Dataset) []int {
		var out []int
		for i := 0; i < ds.Len(); i++ {
			out = append(out, indexOf(get(t, ds, i)))
		}
		return out
	}
	for _, c := range []struct {
		o    OpenOptions
		want string
	}{
		{OpenOptions{}, "[0 1 2 3 4 5 6 7 8 9]"},
		{OpenOptions{Val: 3}, "[0 1 2 3 4 5 6]"},
		{OpenOptions{Val: 3, Split: Bench}, "[7 8 9]"},
		{OpenOptions{Val: 3, N: 2}, "[0 1]"},
		{OpenOptions{Val: 3, N: 2, Split: Bench}, "[7 8]"},
		{OpenOptions{N: 50}, "[0 1 2 3 4 5 6 7 8 9]"},
	} {
		c.o.Size = 8
		if got := fmt.Sprint(ids(open(t, dir, c.o))); got != c.want {
			t.Errorf("%+v: samples %s, want %s", c.o, got, c.want)
		}
	}
	for _, c := range []struct {
		o    OpenOptions
		want string
	}{
		{OpenOptions{Split: Bench}, "--val"},
		{OpenOptions{Val: 10}, "leaving none"},
		{OpenOptions{Val: 11, Split: Bench}, "leaving none"},
		{OpenOptions{Val: -1}, "negative"},
	} {
		c.o.Size = 8
		if _, err := Open(dir, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %q", c.o, err, c.want)
		}
	}
}

// TestOpenBadFilesNamed: with StopOnBad each kind of bad file fails Get
// with an error naming it.
func TestOpenBadFilesNamed(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(dir string) string // writes the folder, returns the bad path
		why  string
	}{
		{"unreadable image", func(dir string) string {
			return putText(t, dir, "x.png", []byte("this is not a PNG"))
		}, "not a readable image"},
		{"mask of another size", func(dir string) string {
			put(t, dir, "x.png", flat(16, 16, 0, false))
			return put(t, dir, "x_mask.png", labels(8, 8, 0, 1))
		}, "mask is 8×8, its image is 16×16"},
		{"scribble of another size", func(dir string) string {
			put(t, dir, "x.png", flat(16, 16, 0, false))
			return put(t, dir, "x_scribble.png", labels(16, 8, 0, 255))
		}, "scribble is 16×8"},
		{"unknown labels", func(dir string) string {
			put(t, dir, "x.png", flat(16, 16, 0, false))
			return put(t, dir, "x_mask.png", labels(16, 16, 0, 25))
		}, "label 25"},
		{"JPEG mask", func(dir string) string {
			put(t, dir, "x.png", flat(16, 16, 0, false))
			return put(t, dir, "x_mask.jpg", flat(16, 16, 0, false))
		}, "want PNG"},
		{"caption not UTF-8", func(dir string) string {
			put(t, dir, "x.png", flat(16, 16, 0, false))
			return putText(t, dir, "x.txt", []byte{'h', 'i', 0xff, 0xfe, 0})
		}, "not UTF-8 text"},
		{"image over the decode limits", func(dir string) string {
			return put(t, dir, "x.png", flat(64, 64, 0, false))
		}, "at most 32×32"},
		{"bad label in CelebAMask-HQ layout", func(dir string) string {
			os.MkdirAll(filepath.Join(dir, DirImages), 0o755)
			os.MkdirAll(filepath.Join(dir, DirMasks), 0o755)
			put(t, filepath.Join(dir, DirImages), "0.jpg", flat(16, 16, 0, false))
			return put(t, filepath.Join(dir, DirMasks), "0.png", labels(16, 16, 0, 200))
		}, "label 200"},
		{"camera file in CelebAMask-HQ layout", func(dir string) string {
			os.MkdirAll(filepath.Join(dir, DirImages), 0o755)
			os.MkdirAll(filepath.Join(dir, DirCameras), 0o755)
			put(t, filepath.Join(dir, DirImages), "0.png", flat(16, 16, 0, false))
			return putText(t, filepath.Join(dir, DirCameras), "0.json", []byte(`{"camera": [1, 2]}`))
		}, "want 25"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := c.make(dir)
			if strings.Contains(c.name, "limits") {
				old := Limits
				Limits.MaxSide = 32
				defer func() { Limits = old }()
			}
			ds := open(t, dir, OpenOptions{})
			_, err := ds.Get(0)
			var bf *BadFileError
			if !errors.As(err, &bf) || bf.Path != path || !strings.Contains(err.Error(), c.why) || !strings.HasPrefix(err.Error(), path+": ") {
				t.Fatalf("got %v, want %q named with %q", err, path, c.why)
			}
		})
	}
}

// TestOpenBadNamesAtOpen: a mask without its image, or two images with one
// name, stops Open (named) or is skipped with a note.
func TestOpenBadNamesAtOpen(t *testing.T) {
	dir := t.TempDir()
	put(t, dir, "a.png", flat(8, 8, 0, false))
	put(t, dir, "a.jpg", flat(8, 8, 0, false))
	put(t, dir, "b.png", flat(8, 8, 0, false))
	put(t, dir, "c_mask.png", labels(8, 8, 0, 1))
	_, err := Open(dir, OpenOptions{Size: 8})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "a.png")+": a.jpg has the same name") {
		t.Fatalf("duplicate name: %v", err)
	}
	var warn bytes.Buffer
	ds, err := Open(dir, OpenOptions{Size: 8, OnBad: SkipBad, Warn: &warn})
	if err != nil || ds.Len() != 2 {
		t.Fatalf("skip: %v", err)
	}
	want := "skipping " + filepath.Join(dir, "a.png") + ": a.jpg has the same name\n" +
		"skipping " + filepath.Join(dir, "c_mask.png") + ": no image c.png or .jpg beside it\n"
	if warn.String() != want {
		t.Fatalf("warnings\n%s\nwant\n%s", warn.String(), want)
	}
}

// TestOpenSkipBad: Get(i) of a bad sample returns the next good one, the
// same whoever asks first; each bad file is named once; the Loader keeps
// working over it.
func TestOpenSkipBad(t *testing.T) {
	dir := numbered(t, 6)
	badMask := put(t, dir, "s01_mask.png", labels(8, 8, 0, 99))
	badImage := putText(t, dir, "s02.png", []byte("truncated"))
	var warn bytes.Buffer
	o := OpenOptions{Size: 8, OnBad: SkipBad, Warn: &warn}
	ds := open(t, dir, o)
	for _, c := range []struct{ i, want int }{{2, 3}, {1, 3}, {0, 0}, {5, 5}, {1, 3}} {
		if got := indexOf(get(t, ds, c.i)); got != c.want {
			t.Fatalf("Get(%d) gave s%02d, want s%02d", c.i, got, c.want)
		}
	}
	l, err := NewLoader(ds, LoaderOptions{BatchSize: 4, Workers: 3, Shuffle: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got := 0
		for b := range l.Epoch(context.Background(), 0) {
			if b.Err != nil {
				t.Fatal(b.Err)
			}
			got += len(b.Samples)
		}
		if got != 6 {
			t.Fatalf("loader gave %d samples, want 6", got)
		}
	}
	lines := strings.Split(strings.TrimSpace(warn.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want each bad file named once, got:\n%s", warn.String())
	}
	for _, p := range []string{badMask, badImage} {
		if strings.Count(warn.String(), "skipping "+p+": ") != 1 {
			t.Fatalf("%s not named once:\n%s", p, warn.String())
		}
	}
	// A fresh dataset asked in another order gives the same answer.
	ds2 := open(t, dir, OpenOptions{Size: 8, OnBad: SkipBad, Warn: &bytes.Buffer{}})
	if got := indexOf(get(t, ds2, 1)); got != 3 {
		t.Fatalf("fresh Get(1) gave s%02d", got)
	}
	// The bench split skips within itself, wrapping round.
	be := open(t, dir, OpenOptions{Size: 8, OnBad: SkipBad, Warn: &bytes.Buffer{}, Val: 5, Split: Bench})
	if got := indexOf(get(t, be, 0)); got != 3 {
		t.Fatalf("bench Get(0) gave s%02d, want s03", got)
	}
}

func TestOpenAllBad(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.png", "b.png", "c.jpg"} {
		putText(t, dir, n, nil)
	}
	var warn bytes.Buffer
	ds := open(t, dir, OpenOptions{OnBad: SkipBad, Warn: &warn})
	for range 2 {
		if _, err := ds.Get(1); err == nil || !strings.Contains(err.Error(), "all 3 samples are bad") {
			t.Fatalf("all bad: %v", err)
		}
	}
	if strings.Count(warn.String(), "\n") != 3 {
		t.Fatalf("want 3 skip lines:\n%s", warn.String())
	}
	if _, err := open(t, dir, OpenOptions{}).Get(1); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "b.png")) {
		t.Fatalf("stop: %v", err)
	}
}

func TestOpenUnknownLayout(t *testing.T) {
	empty := t.TempDir()
	other := t.TempDir()
	putText(t, other, "notes.txt", []byte("hello"))
	putText(t, other, "data.csv", []byte("1,2"))
	os.Mkdir(filepath.Join(other, "images"), 0o755)
	for _, dir := range []string{empty, other} {
		_, err := Open(dir, OpenOptions{Size: 16})
		if err == nil || !strings.Contains(err.Error(), "no images") || !strings.Contains(err.Error(), DirImages) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want a one-line error naming the layouts", dir, err)
		}
	}
	if _, err := Open(filepath.Join(empty, "missing"), OpenOptions{Size: 16}); err == nil {
		t.Error("a missing folder opened")
	}
}

// TestOpenNeedMasks: a trainer that needs masks gets the missing one named.
func TestOpenNeedMasks(t *testing.T) {
	dir := numbered(t, 2)
	put(t, dir, "s00_mask.png", labels(8, 8, 0, 1))
	ds := open(t, dir, OpenOptions{Size: 8, NeedMasks: true})
	get(t, ds, 0)
	if _, err := ds.Get(1); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "s01.png")+": no mask s01_mask.png") {
		t.Fatalf("missing mask: %v", err)
	}
	if _, err := Open(numbered(t, 2), OpenOptions{Size: 8, NeedMasks: true}); err == nil || !strings.Contains(err.Error(), "no masks") {
		t.Fatalf("no masks at all: %v", err)
	}
}

// TestOpenIndexesNamesOnly: Open reads no image (these are all empty
// files), so a large folder opens at the cost of its listing.
func TestOpenIndexesNamesOnly(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 500
	}
	dir := t.TempDir()
	emptyFolder(t, dir, n)
	start := time.Now()
	ds := open(t, dir, OpenOptions{Val: 10})
	t.Logf("indexed %d samples (%d files) in %v", n, 3*n, time.Since(start))
	if ds.Len() != n-10 {
		t.Fatalf("Len %d", ds.Len())
	}
	if _, err := ds.Get(0); err == nil || !strings.Contains(err.Error(), "img000000.png") {
		t.Fatalf("an empty image should fail at Get, named: %v", err)
	}
}

// emptyFolder creates n empty images with masks and captions.
func emptyFolder(t testing.TB, dir string, n int) {
	for i := 0; i < n; i++ {
		for _, s := range []string{".png", "_mask.png", ".txt"} {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("img%06d%s", i, s)))
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
}

// BenchmarkOpenPlain30k indexes a plain folder of 30,000 samples (90,000
// files).
func BenchmarkOpenPlain30k(b *testing.B) {
	dir := b.TempDir()
	emptyFolder(b, dir, 30000)
	b.ResetTimer()
	for range b.N {
		if _, err := Open(dir, OpenOptions{Size: 64, Val: 100}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenCelebAMaskHQ30k indexes CelebAMask-HQ's shape: 30,000
// images, 10 part masks each in 15 folders, and the attribute table.
func BenchmarkOpenCelebAMaskHQ30k(b *testing.B) {
	dir := b.TempDir()
	touch := func(p string) {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	os.MkdirAll(filepath.Join(dir, DirImages), 0o755)
	var table strings.Builder
	fmt.Fprintf(&table, "30000\n%s\n", strings.Join(synthface.AttributeNames, " "))
	for i := 0; i < 30000; i++ {
		touch(filepath.Join(dir, DirImages, fmt.Sprintf("%d.jpg", i)))
		sub := filepath.Join(dir, DirPartMasks, fmt.Sprint(i/2000))
		os.MkdirAll(sub, 0o755)
		for _, part := range synthface.Classes[1:11] {
			touch(filepath.Join(sub, fmt.Sprintf("%05d_%s.png", i, part)))
		}
		table.WriteString(fmt.Sprintf("%d.jpg", i) + strings.Repeat(" 1", len(synthface.AttributeNames)) + "\n")
	}
	os.WriteFile(filepath.Join(dir, FileAttrAnno), []byte(table.String()), 0o644)
	b.ResetTimer()
	for range b.N {
		if _, err := Open(dir, OpenOptions{Size: 64, Val: 100}); err != nil {
			b.Fatal(err)
		}
	}
}
