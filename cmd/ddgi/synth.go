package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"ddgi/data"
	"ddgi/internal/imageio"
	"ddgi/internal/progress"
	"ddgi/synthface"
)

func init() {
	register(command{name: "synth", summary: "render SynthFace samples (image, mask, scribble, captions, camera) to a folder", run: runSynth})
}

// maskColorDir holds synth --mask-colors' palette masks, beside the label
// masks of the CelebAMask-HQ layout.
const maskColorDir = "mask-color"

func runSynth(args []string) error {
	fs := newFlags("synth", "[flags]")
	n := fs.Int("n", 16, "number of samples to write")
	size := fs.Int("size", 64, "image side in pixels (a power of two ≥ 32)")
	split := fs.String("split", "train", "train or bench (SynthFace-bench: 2000 held-out samples, disjoint seeds and identities)")
	start := fs.Int("start", 0, "first sample index within the split")
	out := fs.String("out", "", "output folder (CelebAMask-HQ layout); empty writes no samples")
	grid := fs.String("grid", "", "also write a contact sheet PNG here (image | mask | scribble | captions)")
	gridRows := fs.Int("grid-rows", 8, "rows in the contact sheet")
	workers := fs.Int("workers", runtime.NumCPU(), "parallel render workers")
	format := fs.String("format", "png", "image format: png or jpg")
	art := fs.String("art", "", "draw samples as artworks: a comma list of "+strings.Join(synthface.ArtNames[1:], ", ")+", or all")
	artProb := fs.Float64("art-prob", 1, "with --art: share of samples drawn as artworks (the rest stay photos)")
	maskColors := fs.Bool("mask-colors", false, "also write each mask in the palette colours (what most mask tools show; every ddgi mask reader takes both) as <out>/"+maskColorDir+"/<i>.png")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var arts []synthface.Art
	if *art != "" {
		var err error
		if arts, err = synthface.ParseArts(*art); err != nil {
			return fmt.Errorf("--art: %w", err)
		}
	}
	if *artProb < 0 || *artProb > 1 {
		return fmt.Errorf("--art-prob %g: want 0…1", *artProb)
	}
	sp, err := data.ParseSplit(*split)
	if err != nil {
		return err
	}
	switch {
	case *size < 32 || *size&(*size-1) != 0:
		return fmt.Errorf("--size %d: want a power of two ≥ 32", *size)
	case *size > 2048:
		return fmt.Errorf("--size %d: at most 2048", *size)
	case *n < 0 || *start < 0:
		return errors.New("--n and --start must be ≥ 0")
	case sp == data.Bench && *start+*n > data.BenchSize:
		return fmt.Errorf("bench split has %d samples; --start %d --n %d runs past it", data.BenchSize, *start, *n)
	case *out == "" && *grid == "":
		return errors.New("nothing to do: give --out, --grid or both")
	case *workers < 1:
		return fmt.Errorf("--workers %d: want ≥ 1", *workers)
	}
	if *grid != "" {
		if err := makeParents(*grid); err != nil {
			return err
		}
		if err := writeGrid(*grid, sp, *start, min(*gridRows, max(*n, 1)), *size, *artProb, arts); err != nil {
			return err
		}
	}
	if *out == "" || *n == 0 {
		return nil
	}
	w, err := data.NewFolderWriter(*out, *format)
	if err != nil {
		return err
	}
	if *maskColors {
		if err := os.MkdirAll(filepath.Join(*out, maskColorDir), 0o755); err != nil {
			return err
		}
	}
	ds := data.NewSynthFaceArt(sp, *size, *start+*n, *artProb, arts)
	var next atomic.Int64
	next.Store(int64(*start))
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	bar := progress.NewLogged("synth", 0, int64(*n), "samples")
	for k := 0; k < *workers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= *start+*n {
					return
				}
				s, err := ds.Get(i)
				if err == nil {
					err = w.Write(i, s)
				}
				if err == nil && *maskColors {
					err = data.WriteRGBPNG(filepath.Join(*out, maskColorDir, fmt.Sprintf("%d.png", i)), data.ColorizeMask(s.Mask), s.Size)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("sample %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(*start + *n)) // stop the others early
					return
				}
				bar.Add(1)
			}
		}()
	}
	wg.Wait()
	bar.Finish()
	return firstErr
}

// writeGrid renders rows samples from start (the same ones NewSynthFaceArt
// gives) and saves a contact sheet.
func writeGrid(path string, sp data.Split, start, rows, size int, artProb float64, arts []synthface.Art) error {
	faces := make([]*synthface.Face, rows)
	var wg sync.WaitGroup
	for r := 0; r < rows; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := synthface.WithArt(synthface.SampleParams(sp.Seed(start+r)), artProb, arts)
			faces[r] = synthface.Render(p, size)
		}()
	}
	wg.Wait()
	if err := imageio.SavePNG(path, synthface.ContactSheet(faces)); err != nil {
		return fmt.Errorf("grid: %w", err)
	}
	return nil
}
