package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"time"

	"ddgi/data"
	"ddgi/dist"
	"ddgi/internal/cpuload"
	"ddgi/train"
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

// distFlags is --nproc, shared by the train commands that can run
// data-parallel (package dist).
type distFlags struct{ nproc *int }

func addDistFlags(fs *flag.FlagSet) *distFlags {
	return &distFlags{nproc: fs.Int("nproc", 1, "train as N data-parallel ranks on this machine over loopback (Gloo): each computes batch/N rows of every batch, gradients averaged, so the run matches one process; DDGI_THREADS defaults to cores/N per rank. Across machines start each rank with torchrun's RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT instead (docs/distributed.md)")}
}

// ranks is the world size the command trains in: WORLD_SIZE when the
// environment names a group, else --nproc.
func (d *distFlags) ranks() int {
	if c, ok, err := dist.FromEnv(); err == nil && ok {
		return c.Size
	}
	return *d.nproc
}

// start joins the group the environment names, or with --nproc N > 1 and
// none named launches N ranks of ddgi with argv (this command line) and
// waits for them (launched is then true and err is the ranks' outcome). group is nil
// in a plain single process; leave leaves the group.
func (d *distFlags) start(ctx context.Context, argv []string) (group train.Group, leave func(), launched bool, err error) {
	leave = func() {}
	if *d.nproc < 1 {
		return nil, leave, false, fmt.Errorf("--nproc %d: want at least 1", *d.nproc)
	}
	c, inGroup, err := dist.FromEnv()
	switch {
	case err != nil:
		return nil, leave, false, err
	case !inGroup && *d.nproc > 1:
		return nil, leave, true, dist.Launch(ctx, *d.nproc, argv, dist.LaunchOptions{})
	case !inGroup:
		go hintSharedCores(runtime.NumCPU())
		return nil, leave, false, nil
	case *d.nproc > 1 && c.Size != *d.nproc:
		return nil, leave, false, fmt.Errorf("--nproc %d inside a group of WORLD_SIZE=%d", *d.nproc, c.Size)
	}
	g, err := dist.Join(c)
	if err != nil {
		return nil, leave, false, err
	}
	return g, g.Close, false, nil
}

// hintSharedCores watches the first half second of a single-process
// training and, when other processes kept at least one core busy at its
// priority throughout, prints sharedCoresHint once.
func hintSharedCores(cores int) {
	s := cpuload.NewSampler()
	least := math.Inf(1)
	for range 5 {
		o, err := s.Others()
		if err != nil {
			return
		}
		least = min(least, o)
		time.Sleep(100 * time.Millisecond)
	}
	if h := sharedCoresHint(least, cores); h != "" {
		fmt.Fprintln(os.Stderr, h)
	}
}

// sharedCoresHint is the advice for a single-process training beside
// others busy processes (others: their runnable threads weighted by
// priority): ranks of one thread each wait for each other once a step,
// a thread team at every op, so ranks keep more of the speed there
// (docs/engine.md, "Ranks instead of a team"). Empty when nothing competes.
func sharedCoresHint(others float64, cores int) string {
	if cores < 2 || others < 1 {
		return ""
	}
	return fmt.Sprintf("ddgi: other busy processes share the %d cores; --nproc %d (one thread per rank) keeps more of the speed beside them (docs/engine.md, \"Ranks instead of a team\")", cores, cores)
}
