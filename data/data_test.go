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
	"sync/atomic"
	"testing"

	"ddgi/synthface"
)

func TestSplitsDisjoint(t *testing.T) {
	train := NewSynthFace(Train, 32, 1<<30)
	bench := NewSynthFace(Bench, 32, BenchSize)
	if Train.Seed(train.Len()-1) >= Bench.Seed(0) {
		t.Fatal("train seeds reach the bench range")
	}
	if Train.Seed(train.Len()-1) >= Val.Seed(0) || Val.Seed(1<<30) >= Bench.Seed(0) {
		t.Fatal("the val seeds overlap train's or the bench's")
	}
	for i := 0; i < BenchSize; i += 97 {
		if SplitOf(Bench.Seed(i)) != Bench || SplitOf(Train.Seed(i)) != Train || SplitOf(Val.Seed(i)) != Val {
			t.Fatalf("SplitOf wrong at %d", i)
		}
	}
	if v, _ := NewSynthFace(Val, 32, 4).Get(3); v == nil || SplitOf(v.Seed) != Val || SplitOf(v.Identity) != Val {
		t.Fatal("a val sample's seed or identity is outside the val range")
	}
	b, err := bench.Get(3)
	if err != nil {
		t.Fatal(err)
	}
	if SplitOf(b.Seed) != Bench || SplitOf(b.Identity) != Bench {
		t.Fatalf("bench sample has seed %d identity %d", b.Seed, b.Identity)
	}
	a, _ := train.Get(3)
	if a.Identity == b.Identity || a.Seed == b.Seed {
		t.Fatal("train and bench share an identity or seed")
	}
	// Grouped identities stay inside the split as well.
	g := NewSynthFaceIdentities(Bench, 32, 8, 4)
	s0, _ := g.Get(0)
	s3, _ := g.Get(3)
	s4, _ := g.Get(4)
	if s0.Identity != s3.Identity || s0.Identity == s4.Identity || SplitOf(s4.Identity) != Bench || s0.Seed == s3.Seed {
		t.Fatalf("grouped identities: %d %d %d", s0.Identity, s3.Identity, s4.Identity)
	}
	if _, err := train.Get(-1); err == nil {
		t.Fatal("negative index accepted")
	}
	if _, err := ParseSplit("valid"); err == nil {
		t.Fatal("unknown split accepted")
	}
}

func TestSynthFaceDeterministic(t *testing.T) {
	d := NewSynthFace(Train, 32, 10)
	a, _ := d.Get(5)
	b, _ := d.Get(5)
	if !bytes.Equal(a.Image, b.Image) || !bytes.Equal(a.Mask, b.Mask) || a.Camera != b.Camera {
		t.Fatal("index 5 rendered differently twice")
	}
	if len(a.Attrs) != len(synthface.AttributeNames) || len(a.Captions) < 5 {
		t.Fatalf("attrs %d captions %d", len(a.Attrs), len(a.Captions))
	}
}

func TestFlip(t *testing.T) {
	s, err := NewSynthFace(Train, 64, 20).Get(12)
	if err != nil {
		t.Fatal(err)
	}
	f := Flip(s)
	n := s.Size
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			a, b := s.Mask[y*n+x], f.Mask[y*n+n-1-x]
			want := a
			switch a {
			case synthface.LEye, synthface.LBrow, synthface.LEar:
				want = a + 1
			case synthface.REye, synthface.RBrow, synthface.REar:
				want = a - 1
			}
			if b != want {
				t.Fatalf("(%d,%d): label %d flipped to %d, want %d", x, y, a, b, want)
			}
			if s.Image[3*(y*n+x)] != f.Image[3*(y*n+n-1-x)] || s.Scribble[y*n+x] != f.Scribble[y*n+n-1-x] {
				t.Fatal("pixels not mirrored")
			}
		}
	}
	if strings.Join(f.Captions, "") != strings.Join(s.Captions, "") {
		t.Fatal("flip changed captions")
	}
	if ff := Flip(f); !bytes.Equal(ff.Mask, s.Mask) || ff.Camera != s.Camera {
		t.Fatal("flipping twice is not the identity")
	}
	// A mirrored camera has the opposite yaw, same pitch.
	c := synthface.CameraFromEG3D(s.Camera)
	m := synthface.CameraFromEG3D(f.Camera)
	if d := m.Yaw() + c.Yaw(); d > 1e-5 || d < -1e-5 {
		t.Fatalf("yaw %g mirrored to %g", c.Yaw(), m.Yaw())
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

// writePart writes a 32×32 RGB part mask (white where in(x,y)).
func writePart(t *testing.T, path string, in func(x, y int) bool) {
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			c := color.RGBA{0, 0, 0, 255}
			if in(x, y) {
				c = color.RGBA{255, 255, 255, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// TestCelebAMaskHQFixture builds a two-image folder in CelebAMask-HQ layout:
// 64² JPEGs, 32² part masks in anno/0/, MM-CelebA-HQ text, attribute table.
func TestCelebAMaskHQFixture(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 64, 64))
		for p := range img.Pix {
			img.Pix[p] = uint8(100 + 50*i)
		}
		if err := os.MkdirAll(filepath.Join(dir, DirImages), 0o755); err != nil {
			t.Fatal(err)
		}
		f, _ := os.Create(filepath.Join(dir, DirImages, []string{"0.jpg", "1.jpg"}[i]))
		if err := jpeg.Encode(f, img, nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	anno := filepath.Join(dir, DirPartMasks, "0")
	// skin everywhere in the middle, hair on top overwriting it (hair comes
	// later in CelebAMask-HQ's order), l_eye inside the skin, cloth at the
	// bottom, and a neck that cloth overwrites.
	writePart(t, filepath.Join(anno, "00000_skin.png"), func(x, y int) bool { return x >= 8 && x < 24 && y >= 4 && y < 28 })
	writePart(t, filepath.Join(anno, "00000_hair.png"), func(x, y int) bool { return y < 10 })
	writePart(t, filepath.Join(anno, "00000_l_eye.png"), func(x, y int) bool { return x >= 18 && x < 22 && y >= 12 && y < 14 })
	writePart(t, filepath.Join(anno, "00000_neck.png"), func(x, y int) bool { return y >= 26 })
	writePart(t, filepath.Join(anno, "00000_cloth.png"), func(x, y int) bool { return y >= 28 })
	writePart(t, filepath.Join(anno, "00001_skin.png"), func(x, y int) bool { return true })
	os.MkdirAll(filepath.Join(dir, DirText), 0o755)
	os.WriteFile(filepath.Join(dir, DirText, "0.txt"), []byte("The woman has wavy hair.\n\nShe is smiling.\n"), 0o644)
	os.WriteFile(filepath.Join(dir, FileAttrAnno), []byte("2\n5_o_Clock_Shadow Male Smiling Young\n0.jpg -1 -1 1 1\n1.jpg -1 1 -1 -1\n"), 0o644)

	ds, err := OpenFolder(dir, 16)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 2 {
		t.Fatalf("Len %d", ds.Len())
	}
	s, err := ds.Get(0)
	if err != nil {
		t.Fatal(err)
	}
	at := func(x32, y32 int) uint8 { return s.Mask[(y32/2)*16+x32/2] }
	cases := []struct {
		x, y int
		want uint8
	}{{0, 20, 0}, {12, 20, synthface.Skin}, {12, 2, synthface.Hair}, {12, 8, synthface.Hair},
		{19, 12, synthface.LEye}, {2, 26, synthface.Neck}, {12, 30, synthface.Cloth}}
	for _, c := range cases {
		if got := at(c.x, c.y); got != c.want {
			t.Errorf("mask at (%d,%d) of 32²: %d, want %d", c.x, c.y, got, c.want)
		}
	}
	if len(s.Image) != 16*16*3 || s.Image[0] < 90 || s.Image[0] > 110 {
		t.Fatalf("image not loaded/resized: %d bytes, first %d", len(s.Image), s.Image[0])
	}
	if len(s.Captions) != 2 || s.Captions[1] != "She is smiling." {
		t.Fatalf("captions %q", s.Captions)
	}
	idx := map[string]int{}
	for j, n := range synthface.AttributeNames {
		idx[n] = j
	}
	if s.Attrs[idx["Smiling"]] != 1 || s.Attrs[idx["Male"]] != 0 || s.Attrs[idx["Young"]] != 1 {
		t.Fatalf("attributes %v", s.Attrs)
	}
	s1, _ := ds.Get(1)
	if s1.Attrs[idx["Male"]] != 1 || s1.Mask[0] != synthface.Skin || s1.Identity != -1 {
		t.Fatal("second sample wrong")
	}
	if len(s.Scribble) != 16*16 {
		t.Fatal("scribble not derived")
	}
}

// synthFolder writes n SynthFace samples of the split with FolderWriter
// and returns the folder and the samples.
func synthFolder(t *testing.T, split Split, size, n int) (string, []*Sample) {
	dir := t.TempDir()
	w, err := NewFolderWriter(dir, "png")
	if err != nil {
		t.Fatal(err)
	}
	src := NewSynthFace(split, size, n)
	var want []*Sample
	for i := 0; i < n; i++ {
		s, _ := src.Get(i)
		want = append(want, s)
		if err := w.Write(i, s); err != nil {
			t.Fatal(err)
		}
	}
	return dir, want
}

func TestSynthFolderRoundTrip(t *testing.T) {
	dir, want := synthFolder(t, Bench, 32, 3)
	ds, err := OpenFolder(dir, 32)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		got, err := ds.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		e := want[i]
		if !bytes.Equal(got.Image, e.Image) || !bytes.Equal(got.Mask, e.Mask) || !bytes.Equal(got.Scribble, e.Scribble) {
			t.Fatalf("sample %d pixels differ after write/read", i)
		}
		if got.Camera != e.Camera || got.Identity != e.Identity || got.Seed != e.Seed || strings.Join(got.Captions, "\n") != strings.Join(e.Captions, "\n") {
			t.Fatalf("sample %d metadata differs", i)
		}
		for j := range e.Attrs {
			if got.Attrs[j] != e.Attrs[j] {
				t.Fatalf("sample %d attribute %s differs", i, synthface.AttributeNames[j])
			}
		}
	}
	if _, err := NewFolderWriter(dir, "gif"); err == nil {
		t.Fatal("gif format accepted")
	}
	if _, err := OpenFolder(t.TempDir(), 32); err == nil {
		t.Fatal("empty folder opened")
	}
}

func writeTestPNG(t *testing.T, img image.Image) string {
	p := filepath.Join(t.TempDir(), "m.png")
	f, _ := os.Create(p)
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadMask(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 40, 20))
	for x := 20; x < 40; x++ {
		for y := 0; y < 20; y++ {
			g.Pix[y*40+x] = synthface.Hair
		}
	}
	m, err := ReadMask(writeTestPNG(t, g), 8)
	if err != nil {
		t.Fatal(err)
	}
	if m[0] != 0 || m[7] != synthface.Hair || len(m) != 64 {
		t.Fatalf("gray mask read as %v", m[:8])
	}
	// Palette colours map back to labels.
	rgb := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for i := 0; i < 16; i++ {
		rgb.SetRGBA(i%4, i/4, synthface.Palette[i])
	}
	m, err = ReadMask(writeTestPNG(t, rgb), 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 16; i++ {
		if m[i] != uint8(i) {
			t.Fatalf("palette colour %d read as %d", i, m[i])
		}
	}
	// Paletted PNG: index is the label.
	pal := image.NewPaletted(image.Rect(0, 0, 2, 2), color.Palette{color.Black, color.White, color.Gray{9}})
	pal.Pix = []uint8{0, 1, 2, 1}
	if m, err = ReadMask(writeTestPNG(t, pal), 2); err != nil || m[2] != 2 {
		t.Fatalf("paletted: %v %v", m, err)
	}

	bad := image.NewGray(image.Rect(0, 0, 10, 10))
	bad.Pix[3*10+5] = 23
	_, err = ReadMask(writeTestPNG(t, bad), 8)
	if err == nil || !strings.Contains(err.Error(), "mask pixel (5,3) has label 23; valid labels are 0–18") {
		t.Fatalf("label 23: %v", err)
	}
	rgb.SetRGBA(1, 1, color.RGBA{1, 2, 3, 255})
	if _, err = ReadMask(writeTestPNG(t, rgb), 4); err == nil || !strings.Contains(err.Error(), "#010203") {
		t.Fatalf("unknown colour: %v", err)
	}

	dir := t.TempDir()
	corrupt := filepath.Join(dir, "c.png")
	os.WriteFile(corrupt, []byte("\x89PNG\r\n\x1a\nnot really"), 0o644)
	jp := filepath.Join(dir, "j.jpg")
	f, _ := os.Create(jp)
	jpeg.Encode(f, g, nil)
	f.Close()
	huge := writeTestPNG(t, image.NewGray(image.Rect(0, 0, 9000, 1)))
	for name, p := range map[string]string{"corrupt": corrupt, "jpeg": jp, "huge": huge, "missing": filepath.Join(dir, "none.png")} {
		if _, err := ReadMask(p, 8); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: want a one-line error, got %v", name, err)
		}
		if _, err := ReadScribble(p, 8); err == nil {
			t.Errorf("%s scribble: accepted", name)
		}
	}
	if _, err := ReadMask(huge, 0); err == nil {
		t.Error("size 0 accepted")
	}
}

func TestReadScribble(t *testing.T) {
	// A 1-px diagonal line on 64²; both polarities read alike and the line
	// survives a 4× shrink.
	wb := image.NewGray(image.Rect(0, 0, 64, 64))
	bw := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range bw.Pix {
		bw.Pix[i] = 255
	}
	for i := 0; i < 64; i++ {
		wb.Pix[i*64+i] = 255
		bw.Pix[i*64+i] = 0
	}
	a, err := ReadScribble(writeTestPNG(t, wb), 16)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadScribble(writeTestPNG(t, bw), 16)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("inverse scribble read differently")
	}
	for i := 0; i < 16; i++ {
		if a[i*16+i] != 255 || a[i*16+(i+8)%16] != 0 {
			t.Fatalf("diagonal lost at %d", i)
		}
	}
}

type failing struct{ Dataset }

func (f failing) Get(i int) (*Sample, error) {
	if i == 7 {
		return nil, errors.New("boom")
	}
	return f.Dataset.Get(i)
}

func TestLoader(t *testing.T) {
	ds := NewSynthFace(Train, 32, 22)
	run := func(seed int64, epoch int) []int64 {
		l, err := NewLoader(ds, LoaderOptions{BatchSize: 5, Workers: 2, Seed: seed, Shuffle: true, Flip: true})
		if err != nil {
			t.Fatal(err)
		}
		var seeds []int64
		next := 0
		for b := range l.Epoch(context.Background(), epoch) {
			if b.Err != nil {
				t.Fatal(b.Err)
			}
			if b.Index != next {
				t.Fatalf("batch %d arrived as %d", b.Index, next)
			}
			next++
			for _, s := range b.Samples {
				seeds = append(seeds, s.Seed)
			}
		}
		if next != l.Batches() || next != 5 {
			t.Fatalf("%d batches, want 5", next)
		}
		return seeds
	}
	a, b, c := run(1, 0), run(1, 0), run(2, 0)
	seen := map[int64]bool{}
	for _, s := range a {
		seen[s] = true
	}
	if len(a) != 22 || len(seen) != 22 {
		t.Fatalf("epoch covered %d samples, %d distinct", len(a), len(seen))
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("same seed gave a different order")
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Fatal("different seeds gave the same order")
	}
	l, _ := NewLoader(failing{ds}, LoaderOptions{BatchSize: 4, Workers: 2, DropLast: true})
	var errs int
	for b := range l.Epoch(context.Background(), 0) {
		if b.Err != nil {
			errs++
		}
	}
	if errs != 1 || l.Batches() != 5 {
		t.Fatalf("%d failing batches, %d batches", errs, l.Batches())
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := l.Epoch(ctx, 1)
	<-ch
	cancel()
	for range ch { // must close after cancel
	}
	if _, err := NewLoader(ds, LoaderOptions{}); err == nil {
		t.Fatal("batch size 0 accepted")
	}
}

// TestSynthFaceArtworks: with share 0 the art dataset is the photo dataset
// byte for byte; with share 1 every sample is an artwork naming its style,
// over the same masks.
func TestSynthFaceArtworks(t *testing.T) {
	photo := NewSynthFace(Train, 32, 6)
	none := NewSynthFaceArt(Train, 32, 6, 0, synthface.Arts)
	all := NewSynthFaceArt(Train, 32, 6, 1, []synthface.Art{synthface.ArtSketch})
	for i := 0; i < 6; i++ {
		p, _ := photo.Get(i)
		n, _ := none.Get(i)
		a, err := all.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.Image, n.Image) || strings.Join(p.Captions, "|") != strings.Join(n.Captions, "|") {
			t.Fatalf("sample %d: share 0 differs from the photo", i)
		}
		if !bytes.Equal(p.Mask, a.Mask) || bytes.Equal(p.Image, a.Image) {
			t.Fatalf("sample %d: the sketch should share the mask and differ in pixels", i)
		}
		for _, c := range a.Captions {
			if !strings.Contains(strings.ToLower(c), "sketch") && !strings.Contains(strings.ToLower(c), "drawing") {
				t.Fatalf("sample %d: caption %q does not name the style", i, c)
			}
		}
	}
}

// TestSynthFaceSpreadYaw: the spread dataset re-aims cameras (and renders
// those views) for some samples and leaves share 0 identical to NewSynthFace.
func TestSynthFaceSpreadYaw(t *testing.T) {
	plain := NewSynthFace(Train, 16, 12)
	same := NewSynthFaceSpreadYaw(Train, 16, 12, 0)
	spread := NewSynthFaceSpreadYaw(Train, 16, 12, 1)
	moved := 0
	for i := 0; i < 12; i++ {
		a, _ := plain.Get(i)
		b, _ := same.Get(i)
		c, err := spread.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		if a.Camera != b.Camera || string(a.Image) != string(b.Image) {
			t.Fatalf("sample %d: share 0 differs from NewSynthFace", i)
		}
		if a.Camera != c.Camera && string(a.Image) != string(c.Image) {
			moved++
		}
	}
	if moved < 10 {
		t.Errorf("share 1 re-aimed %d of 12 samples", moved)
	}
}

// View from a sample's own camera must give back exactly that sample, and
// another camera the same person turned (captions may differ: they name
// what the view shows); a broken camera is refused.
func TestSynthFaceView(t *testing.T) {
	ds := NewSynthFace(Bench, 24, 4)
	v, ok := ds.(Viewer)
	if !ok {
		t.Fatal("SynthFace is not a Viewer")
	}
	for i := 0; i < 4; i++ {
		s, err := ds.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		same, err := v.View(i, s.Camera)
		if err != nil {
			t.Fatal(err)
		}
		if string(same.Image) != string(s.Image) || string(same.Mask) != string(s.Mask) {
			t.Fatalf("sample %d: View from its own camera differs from Get", i)
		}
		cam := synthface.OrbitCamera(0.5, 0, synthface.DefaultRadius, synthface.DefaultFocal).EG3D()
		turned, err := Turned(v, cam).Get(i)
		if err != nil {
			t.Fatal(err)
		}
		if turned.Camera != cam || string(turned.Image) == string(s.Image) {
			t.Fatalf("sample %d: View at yaw 0.5 rad did not turn the head", i)
		}
		if turned.Seed != s.Seed || turned.Identity != s.Identity {
			t.Fatalf("sample %d: View changed the person (seed %d→%d, identity %d→%d)", i, s.Seed, turned.Seed, s.Identity, turned.Identity)
		}
	}
	if _, err := v.View(0, [25]float32{}); err == nil {
		t.Error("View accepted an all-zero camera")
	}
	if _, err := v.View(4, synthface.OrbitCamera(0, 0, synthface.DefaultRadius, synthface.DefaultFocal).EG3D()); err == nil {
		t.Error("View accepted an index past the end")
	}
}

// counting counts Get calls.
type counting struct {
	Dataset
	calls atomic.Int64
}

func (c *counting) Get(i int) (*Sample, error) { c.calls.Add(1); return c.Dataset.Get(i) }

// TestEpochFromSkipsWithoutLoading: EpochFrom yields exactly the tail of
// the full epoch (same batches, samples and flips) and never loads the
// skipped batches.
func TestEpochFromSkipsWithoutLoading(t *testing.T) {
	ds := &counting{Dataset: NewSynthFace(Train, 16, 20)}
	opts := LoaderOptions{BatchSize: 4, Workers: 2, Seed: 7, Shuffle: true, Flip: true}
	l, _ := NewLoader(ds, opts)
	key := func(b Batch) string {
		var s []string
		for _, x := range b.Samples {
			s = append(s, fmt.Sprintf("%d:%x", x.Seed, x.Image[:12]))
		}
		return fmt.Sprint(b.Index, s)
	}
	var full []string
	for b := range l.Epoch(context.Background(), 2) {
		full = append(full, key(b))
	}
	ds.calls.Store(0)
	var tail []string
	for b := range l.EpochFrom(context.Background(), 2, 3) {
		tail = append(tail, key(b))
	}
	if fmt.Sprint(tail) != fmt.Sprint(full[3:]) {
		t.Fatalf("EpochFrom(3) gave\n%v\nwant the full epoch's tail\n%v", tail, full[3:])
	}
	if n := ds.calls.Load(); n != 8 {
		t.Errorf("EpochFrom(3) loaded %d samples, want the 8 of batches 3 and 4", n)
	}
}

// TestLoaderRowsSplitBatches: two ranks' Rows load each batch's samples
// once between them, at the positions one process has them, with the same
// flips.
func TestLoaderRowsSplitBatches(t *testing.T) {
	ds := &counting{Dataset: NewSynthFace(Train, 16, 20)}
	opts := LoaderOptions{BatchSize: 4, Workers: 2, Seed: 3, Shuffle: true, Flip: true, DropLast: true}
	epoch := func(rows func(int) []int) []Batch {
		o := opts
		o.Rows = rows
		return loadEpoch(t, ds, o, 1)
	}
	whole := epoch(nil)
	ds.calls.Store(0)
	odd := epoch(func(size int) []int { return []int{1, 3} })
	if n := ds.calls.Load(); n != 10 {
		t.Errorf("rows 1 and 3 of 5 batches loaded %d samples, want 10", n)
	}
	for i, b := range odd {
		if b.Size != 4 || fmt.Sprint(b.Rows) != "[1 3]" || len(b.Samples) != 2 {
			t.Fatalf("batch %d: size %d rows %v, %d samples", i, b.Size, b.Rows, len(b.Samples))
		}
		for k, p := range b.Rows {
			w, g := whole[i].Samples[p], b.Samples[k]
			if w.Seed != g.Seed || fmt.Sprintf("%x", w.Image) != fmt.Sprintf("%x", g.Image) {
				t.Fatalf("batch %d row %d: seed %d, one process has %d there (or another flip)", i, p, g.Seed, w.Seed)
			}
		}
	}
	if whole[0].Rows != nil || whole[0].Size != 4 || len(whole[0].Samples) != 4 {
		t.Fatalf("a whole batch: rows %v size %d", whole[0].Rows, whole[0].Size)
	}
}

// countingCams is counting that can also give cameras (CameraSource).
type countingCams struct {
	*counting
	src CameraSource
}

func (c countingCams) Camera(i int) ([25]float32, error) { return c.src.Camera(i) }

// TestLoaderCamerasOfOtherRows: a rank loading rows 1 and 3 still gets all
// four rows' cameras, flipped as one process has them, without loading
// the other rows; a dataset that cannot give cameras alone is refused.
func TestLoaderCamerasOfOtherRows(t *testing.T) {
	synth := NewSynthFaceSpreadYaw(Train, 16, 20, 1)
	for i := range 5 {
		s, _ := synth.Get(i)
		c, err := synth.(CameraSource).Camera(i)
		if err != nil || c != s.Camera {
			t.Fatalf("sample %d: Camera %v (%v), its render has %v", i, c, err, s.Camera)
		}
	}
	ds := countingCams{&counting{Dataset: synth}, synth.(CameraSource)}
	opts := LoaderOptions{BatchSize: 4, Workers: 2, Seed: 5, Shuffle: true, Flip: true, DropLast: true, Cameras: true}
	epoch := func(rows func(int) []int) []Batch {
		o := opts
		o.Rows = rows
		return loadEpoch(t, ds, o, 2)
	}
	whole := epoch(nil)
	for i, b := range whole {
		for p, s := range b.Samples {
			if b.Cameras[p] != s.Camera {
				t.Fatalf("batch %d row %d: camera %v, its sample has %v", i, p, b.Cameras[p], s.Camera)
			}
		}
	}
	ds.calls.Store(0)
	odd := epoch(func(int) []int { return []int{1, 3} })
	if n := ds.calls.Load(); n != 10 {
		t.Errorf("rows 1 and 3 of 5 batches loaded %d samples, want 10", n)
	}
	for i, b := range odd {
		if fmt.Sprint(b.Cameras) != fmt.Sprint(whole[i].Cameras) {
			t.Fatalf("batch %d: a rank's cameras\n%v\none process's\n%v", i, b.Cameras, whole[i].Cameras)
		}
	}
	if _, err := NewLoader(&counting{Dataset: synth}, LoaderOptions{BatchSize: 4, Cameras: true, Rows: func(int) []int { return []int{0} }}); err == nil {
		t.Fatal("a dataset without CameraSource was accepted for other rows' cameras")
	}
}

// loadEpoch collects one epoch of a loader over ds, failing on any error.
func loadEpoch(t *testing.T, ds Dataset, o LoaderOptions, epoch int) []Batch {
	t.Helper()
	l, err := NewLoader(ds, o)
	if err != nil {
		t.Fatal(err)
	}
	var out []Batch
	for b := range l.Epoch(context.Background(), epoch) {
		if b.Err != nil {
			t.Fatal(b.Err)
		}
		out = append(out, b)
	}
	return out
}
