package data

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// BadFiles says what a folder source does with a sample it cannot read.
type BadFiles int

const (
	StopOnBad BadFiles = iota // the first bad file ends training with its name
	SkipBad                   // bad files are reported once by name and skipped
)

// ParseBadFiles accepts "stop" or "skip".
func ParseBadFiles(s string) (BadFiles, error) {
	switch s {
	case "stop":
		return StopOnBad, nil
	case "skip":
		return SkipBad, nil
	}
	return 0, fmt.Errorf("bad-file policy %q: want stop or skip", s)
}

// SynthFaceSource is the spec that names SynthFace rendered on the fly.
const SynthFaceSource = "synthface"

// OpenOptions says how Open reads a training source.
type OpenOptions struct {
	Size  int   // samples are Size×Size
	Split Split // Train, or Bench for the held-out part
	// N caps the samples: SynthFace renders N (required); a folder uses at
	// most the first N of the split (0: all), so the held-out part does not
	// depend on N.
	N int
	// Val is how many samples of a folder are held out as its Bench split
	// (the last Val by name); 0 with Split Bench is an error for a folder.
	Val   int
	OnBad BadFiles
	// NeedMasks makes a folder sample without a mask a bad file (and a
	// folder without any mask an error at Open), for trainers that learn
	// from masks; otherwise such a sample has Mask nil.
	NeedMasks bool
	// Warn receives the skip policy's "skipping <path>: <why>" lines; nil:
	// os.Stderr.
	Warn io.Writer
	// SynthFace builds the SynthFace dataset when spec names it (a trainer
	// picks its variant: artworks, identities…); nil: NewSynthFace.
	SynthFace func(split Split, size, n int) Dataset
}

// Open opens a training source: "synthface" (or "") for SynthFace on the
// fly, else a folder in CelebAMask-HQ layout (it has CelebA-HQ-img/) or a
// plain folder of name.png|jpg + name_mask.png / name_scribble.png +
// name.txt. A folder is indexed by file name only; each Get decodes one
// sample.
func Open(spec string, o OpenOptions) (Dataset, error) {
	if spec == "" || strings.EqualFold(spec, SynthFaceSource) {
		mk := o.SynthFace
		if mk == nil {
			mk = func(split Split, size, n int) Dataset { return NewSynthFace(split, size, n) }
		}
		return mk(o.Split, o.Size, o.N), nil
	}
	if st, err := os.Stat(spec); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("--data %s: not %q and not a folder", spec, SynthFaceSource)
	}
	if o.Size < 8 {
		return nil, fmt.Errorf("open %s: size %d too small (want ≥ 8)", spec, o.Size)
	}
	if o.Val < 0 || o.N < 0 {
		return nil, fmt.Errorf("open %s: negative sample count (val %d, n %d)", spec, o.Val, o.N)
	}
	if o.Warn == nil {
		o.Warn = os.Stderr
	}
	all, err := openLayout(spec, o)
	if err != nil {
		return nil, err
	}
	ds, err := splitFolder(spec, all, o)
	if err != nil || o.OnBad == StopOnBad {
		return ds, err
	}
	return &skipBad{ds: ds, warn: o.Warn, bad: map[int]bool{}}, nil
}

// openLayout recognises the folder's layout and indexes every sample.
func openLayout(dir string, o OpenOptions) (Dataset, error) {
	if st, err := os.Stat(filepath.Join(dir, DirImages)); err == nil && st.IsDir() {
		return openCelebA(dir, o.Size, o.NeedMasks)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	d, err := openPlain(dir, ents, o, o.Warn)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, fmt.Errorf("open %s: no images: want %s/<i>.jpg (CelebAMask-HQ layout) or <name>.png|jpg files, each with optional <name>%s.png, <name>%s.png, <name>.txt", dir, DirImages, SuffixMask, SuffixScribble)
	}
	return d, nil
}

// splitFolder picks the split's samples: Bench (and Val) is the last Val, Train the
// rest; then the first N of them.
func splitFolder(dir string, all Dataset, o OpenOptions) (Dataset, error) {
	total := all.Len()
	lo, n := 0, total-o.Val
	if o.Split != Train {
		if o.Val == 0 {
			return nil, fmt.Errorf("open %s: no validation samples: a folder holds them out with --val N (Val is 0)", dir)
		}
		lo, n = total-o.Val, o.Val
	}
	if o.Val >= total {
		return nil, fmt.Errorf("open %s: --val %d holds out all %d samples, leaving none to train on", dir, o.Val, total)
	}
	if o.N > 0 {
		n = min(n, o.N)
	}
	if lo == 0 && n == total {
		return all, nil
	}
	sub := &subset{ds: all, lo: lo, n: n}
	if cams, ok := all.(CameraSource); ok {
		return &cameraSubset{sub, cams}, nil
	}
	return sub, nil
}

// cameraSubset is a subset of a CameraSource, itself one.
type cameraSubset struct {
	*subset
	cams CameraSource
}

func (s *cameraSubset) Camera(i int) ([25]float32, error) {
	if i < 0 || i >= s.n {
		return [25]float32{}, fmt.Errorf("index %d out of range [0,%d)", i, s.n)
	}
	return s.cams.Camera(s.lo + i)
}

// subset is samples [lo, lo+n) of ds.
type subset struct {
	ds    Dataset
	lo, n int
}

func (s *subset) Len() int { return s.n }

func (s *subset) Get(i int) (*Sample, error) {
	if i < 0 || i >= s.n {
		return nil, fmt.Errorf("index %d out of range [0,%d)", i, s.n)
	}
	return s.ds.Get(s.lo + i)
}

// skipBad is the SkipBad policy: Get(i) returns the first good sample at
// i, i+1, … (modulo Len), so the answer depends on the files alone, not on
// which worker asked first. Each bad sample is tried and reported once.
type skipBad struct {
	ds   Dataset
	warn io.Writer

	mu   sync.Mutex
	bad  map[int]bool // indices known bad
	last error        // the latest bad file, for the all-bad error
}

func (g *skipBad) Len() int { return g.ds.Len() }

func (g *skipBad) Get(i int) (*Sample, error) {
	n := g.ds.Len()
	if i < 0 || i >= n {
		return nil, fmt.Errorf("index %d out of range [0,%d)", i, n)
	}
	for a := 0; a < n; a++ {
		k := (i + a) % n
		g.mu.Lock()
		known := g.bad[k]
		g.mu.Unlock()
		if known {
			continue
		}
		s, err := g.ds.Get(k)
		var bf *BadFileError
		if err == nil || !errors.As(err, &bf) {
			return s, err
		}
		g.mu.Lock()
		if !g.bad[k] {
			g.bad[k] = true
			g.last = bf
			fmt.Fprintf(g.warn, "skipping %v\n", bf)
		}
		g.mu.Unlock()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return nil, fmt.Errorf("all %d samples are bad (the last: %v)", n, g.last)
}
