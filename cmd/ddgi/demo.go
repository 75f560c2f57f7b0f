package main

import (
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"time"

	"ddgi/data"
	"ddgi/face"
	"ddgi/internal/imageio"
	progressbar "ddgi/internal/progress"
	"ddgi/kinds"
	"ddgi/synthface"
	"ddgi/torch"
)

func init() {
	register(command{name: "demo", summary: "render SynthFace-bench masks and scribbles with several prompts each, in 2D and 3D (shipped weights)", run: runDemo})
}

// demoPrompt is one column of a demo sheet.
type demoPrompt struct{ text, tag string }

// demoPrompts are the paper's Fig. 5 idea: one condition, several prompts.
var demoPrompts = []demoPrompt{
	{"The woman has wavy blond hair and is smiling. She wears earrings.", "blond, smile"},
	{"This man has short black hair, a beard and eyeglasses.", "beard, glasses"},
	{"The young person has straight brown hair and a slightly open mouth.", "brown hair"},
}

// artPrompts are the style-transfer sheet's columns (paper Fig. 10): one
// mask, the same person in each style.
var artPrompts = []demoPrompt{
	{"A marble statue. The person has wavy hair and is smiling.", "statue"},
	{"A bronze statue. The person has wavy hair and is smiling.", "bronze"},
	{"A cartoon drawing. The person has wavy blond hair and is smiling.", "cartoon"},
	{"A pencil sketch. The person has wavy hair and is smiling.", "sketch"},
}

// demoScale enlarges the 64² tiles for viewing (nearest neighbour).
const demoScale = 2

func runDemo(args []string) error {
	fs := newFlags("demo", "[--out demo] [--weights weights]")
	out := fs.String("out", "demo", "output folder")
	weights := fs.String("weights", "weights", "model-set folder (default: $DDGI_WEIGHTS, else weights/ beside the binary, else ./weights)")
	n := fs.Int("n", 2, "SynthFace-bench conditions per kind")
	devName := fs.String("device", "cpu", "cpu, cuda or cuda:N")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if *weights, err = modelSet(fs, *weights); err != nil {
		return err
	}
	dev, err := torch.ParseDevice(*devName)
	if err != nil {
		return err
	}
	if *n < 1 || *n > 16 {
		return errors.New("--n must be between 1 and 16")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	start := time.Now()
	var wrote []string
	bar := progressbar.New("demo", 0, 6, "sheet") // 4 photo sheets, 2 style-transfer sheets
	defer bar.Finish()
	for _, gan := range kinds.GANArchs {
		for _, cond := range kinds.Conds {
			p, err := face.Load(face.Options{Weights: *weights, GAN: gan, Cond: cond, Device: dev, Step: -1})
			if err != nil {
				if gan == kinds.StyleGAN2 && cond == kinds.Mask {
					return err // the one combination the demo cannot do without
				}
				fmt.Fprintf(os.Stderr, "demo: skipping %s + %s: %v\n", gan, cond, err)
				bar.Add(1)
				continue
			}
			path := filepath.Join(*out, fmt.Sprintf("demo_%s_%s.png", gan, cond))
			if err := demoSheet(p, cond, gan == kinds.EG3D, *n, path, demoPrompts); err != nil {
				return fmt.Errorf("%s + %s: %w", gan, cond, err)
			}
			wrote = append(wrote, path)
			bar.Add(1)
		}
	}
	// Style transfer (Sec. 4.4) with masks, in 2D and in 3D (the paper's
	// Fig. 10), for each GAN whose art weights are there.
	var artErrs []string
	for _, gan := range kinds.GANArchs {
		p, err := face.Load(face.Options{Weights: *weights, GAN: gan, Cond: kinds.Mask, Device: dev, Step: -1, Art: true})
		if err != nil {
			artErrs = append(artErrs, err.Error())
			bar.Add(1)
			continue
		}
		path := filepath.Join(*out, fmt.Sprintf("demo_%s_art.png", gan))
		if err := demoSheet(p, kinds.Mask, gan == kinds.EG3D, *n, path, artPrompts); err != nil {
			return fmt.Errorf("style transfer: %w", err)
		}
		wrote = append(wrote, path)
		bar.Add(1)
	}
	if len(artErrs) > 0 {
		fmt.Fprintf(os.Stderr, "demo: skipping style transfer: %s\n", strings.Join(artErrs, "; "))
	}
	var legend strings.Builder
	for _, p := range append(append([]demoPrompt(nil), demoPrompts...), artPrompts...) {
		fmt.Fprintf(&legend, "%s: %s\n", p.tag, p.text)
	}
	legendPath := filepath.Join(*out, "prompts.txt")
	if err := imageio.WriteAtomic(legendPath, []byte(legend.String())); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "demo: wrote %v and %s in %.1fs\nprompts (column captions):\n%s", wrote, legendPath, time.Since(start).Seconds(), legend.String())
	return nil
}

// demoSheet writes rows of [condition | one output per prompt] (for a 3D
// GAN each output is a strip of three yaws).
func demoSheet(p *face.Pipeline, cond kinds.Cond, is3D bool, n int, path string, prompts []demoPrompt) error {
	size := p.Size()
	render := max(size, 32) // SynthFace's smallest size
	bench := data.NewSynthFace(data.Bench, render, data.BenchSize)
	var tiles []image.Image
	var caps []string
	cols := 1 + len(prompts)
	yaws := []float64{0}
	if is3D {
		yaws = []float64{-35, 0, 35}
		cols = 1 + len(prompts)*len(yaws)
	}
	for i := 0; i < n; i++ {
		s, err := bench.Get(i * 7)
		if err != nil {
			return err
		}
		if render != size {
			s.Mask = data.ResizeNearest(s.Mask, render, render, size)
			s.Scribble = data.ResizeStrokes(s.Scribble, render, render, size)
		}
		var reqs []face.Request
		for k, text := range prompts {
			r := face.Request{Text: text.text, Seed: int64(100*i + k)}
			if cond == kinds.Mask {
				r.Mask = s.Mask
			} else {
				r.Scribble = s.Scribble
			}
			reqs = append(reqs, r)
		}
		if cond == kinds.Mask {
			tiles = append(tiles, imageio.Upscale(imageio.RGB(synthface.ColorizeMask(s.Mask), size, size), demoScale))
		} else {
			tiles = append(tiles, imageio.Upscale(imageio.Gray(s.Scribble, size, size), demoScale))
		}
		caps = append(caps, string(cond))
		w, err := p.Codes(reqs)
		if err != nil {
			return err
		}
		defer w.Free()
		for k := range reqs {
			for _, yaw := range yaws {
				pic, err := p.View(w, k, yaw, 0)
				if err != nil {
					return err
				}
				tiles = append(tiles, imageio.Upscale(pic, demoScale))
				caps = append(caps, prompts[k].tag)
			}
		}
	}
	// The sheet records what made it, as generate's images do.
	prov, err := setHashes(p.Opts.Files())
	if err != nil {
		return err
	}
	var texts []string
	for _, pr := range prompts {
		texts = append(texts, pr.tag+": "+pr.text)
	}
	prov["Software"], prov["Description"] = "ddgi "+Version, strings.Join(texts, "\n")
	prov["ddgi:gan"], prov["ddgi:condition"], prov["ddgi:step"] = string(p.Opts.GAN), string(cond), fmt.Sprint(p.Opts.Step)
	prov["ddgi:seeds"] = "100×row + column (prompt index)"
	prov["ddgi:bench-indices"] = fmt.Sprintf("0, 7, … %d (SynthFace-bench)", 7*(n-1))
	if p.Opts.Art {
		prov["ddgi:art"] = "true"
	}
	return imageio.SavePNGText(path, imageio.Grid(tiles, caps, cols, 2), prov)
}
