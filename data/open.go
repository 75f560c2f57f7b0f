package data

import (
	"fmt"
	"os"
	"strings"
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
	// most N (0: all).
	N int
	// Val is how many samples of a folder are held out as its Bench split
	// (the last Val by name); 0 with Split Bench is an error for a folder.
	Val   int
	OnBad BadFiles
	// SynthFace builds the SynthFace dataset when spec names it (a trainer
	// picks its variant: artworks, identities…); nil: NewSynthFace.
	SynthFace func(split Split, size, n int) Dataset
}

// Open opens a training source: "synthface" (or "") for SynthFace on the
// fly, else a folder in CelebAMask-HQ layout or a plain folder of
// name.png + name_mask.png / name_scribble.png + name.txt.
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
	return OpenFolder(spec, o.Size) // TODO(data helper): plain layout, Val split, N cap, OnBad
}
