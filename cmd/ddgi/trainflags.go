package main

import (
	"fmt"
	"time"

	"flag"

	"ddgi/data"
)

// dataFlags are the --data, --val and --on-bad flags every train command
// that learns from images shares.
type dataFlags struct {
	spec  *string
	val   *int
	onBad *string
	// needMasks makes a folder sample without a mask a bad file (a
	// trainer that learns from masks sets it after parsing).
	needMasks bool
}

func addDataFlags(fs *flag.FlagSet) *dataFlags {
	return &dataFlags{
		spec:  fs.String("data", data.SynthFaceSource, "training images: synthface (rendered on the fly), a CelebAMask-HQ-layout folder, or a folder of name.png|jpg + optional name_mask.png, name_scribble.png, name.txt (see docs/data.md)"),
		val:   fs.Int("val", 0, "with a --data folder: how many samples (the last by name) are held out for validation and previews"),
		onBad: fs.String("on-bad", "stop", "with a --data folder: stop at the first unreadable sample, or skip it for the next good one (each bad file is named once on stderr)"),
	}
}

// open opens the source for split; synth builds SynthFace's variant (nil:
// plain SynthFace) with n samples.
func (d *dataFlags) open(split data.Split, size, n int, synth func(split data.Split, size, n int) data.Dataset) (data.Dataset, error) {
	bad, err := data.ParseBadFiles(*d.onBad)
	if err != nil {
		return nil, err
	}
	return data.Open(*d.spec, data.OpenOptions{Size: size, Split: split, N: n, Val: *d.val, OnBad: bad, NeedMasks: d.needMasks, SynthFace: synth})
}

// ckptEveryFlag registers --ckpt-every, the checkpoint interval every
// train command shares; legacy names the flag a command had before (kept
// working). Call the returned func after parsing.
func ckptEveryFlag(fs *flag.FlagSet, def time.Duration, legacy func() (time.Duration, bool)) func() (time.Duration, error) {
	every := fs.Duration("ckpt-every", def, "time between checkpoints (runs/X/checkpoints/<step>, runs/X/latest; also at the end and at Ctrl-C)")
	return func() (time.Duration, error) {
		d := *every
		if legacy != nil && !flagSet(fs, "ckpt-every") {
			if l, ok := legacy(); ok {
				d = l
			}
		}
		if d <= 0 {
			return 0, fmt.Errorf("--ckpt-every %v: want > 0", d)
		}
		return d, nil
	}
}
