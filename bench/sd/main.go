// Command sd times the paper's stack at Stable Diffusion 1.5's size on
// random weights: a model set of SD1.5's shapes (U-Net, mask ControlNet,
// SD's VAE, CLIP ViT-L/14's text tower, a public-size StyleGAN2, M and T
// sized from the taps; fp16 files) is written once into -set, then each
// stage runs in a process of its own so its peak RSS is its own:
//
//	text      load the text tower, encode a prompt and the empty prompt
//	unet      load U-Net + ControlNet, one controlled ε pass (batch 1)
//	vae       load the VAE, decode one latent
//	generate  the one-pass method as `ddgi generate` runs it: load the set, codes, render
//	sample    -steps DDIM steps of guided sampling (text 3, mask 2: three passes a step), decoded
//
// Each line gives the stage's load time, its timed work and the process's
// peak RSS. Run it on a quiet machine: go run ./bench/sd -set /tmp/sd15 -latent 64
// (-device cuda on a GPU; the peak RSS is then host memory only).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/face"
	"ddgi/internal/testweights"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

type result struct {
	Stage   string  `json:"stage"`
	LoadSec float64 `json:"load_s"`
	WorkSec float64 `json:"work_s"`
	Note    string  `json:"note,omitempty"`
}

func main() {
	set := flag.String("set", "", "model-set folder: written here (2.6 GB) unless it has a manifest already")
	latent := flag.Int64("latent", 64, "latent side (64: SD1.5's 512² images); used when the set is written")
	ganPreset := flag.String("gan", "ffhq1024", "StyleGAN2 preset of the set (ffhq256, ffhq512, ffhq1024)")
	tok := flag.String("tokenizer", "convert/testdata/diffusers/sd/tokenizer", "CLIP tokenizer folder copied into the set")
	stages := flag.String("stages", "text,unet,vae,generate,sample", "stages to run, in order")
	steps := flag.Int("steps", 20, "sampler steps of the sample stage")
	threads := flag.Int("threads", 2, "torch threads of each stage")
	fp32 := flag.Bool("fp32", false, "load the networks with fp32 weights in memory (as before fp16 storage) to compare")
	devName := flag.String("device", "cpu", "cpu, cuda or cuda:N: where every stage runs")
	stage := flag.String("stage", "", "internal: run one stage in this process and print its result")
	flag.Parse()
	if err := run(*set, *latent, *ganPreset, *tok, *stages, *stage, *devName, *steps, *threads, *fp32); err != nil {
		fmt.Fprintln(os.Stderr, "bench/sd:", err)
		os.Exit(1)
	}
}

func run(set string, latent int64, ganPreset, tok, stages, stage, devName string, steps, threads int, fp32 bool) error {
	if set == "" {
		return fmt.Errorf("-set is required")
	}
	dev, err := torch.ParseDevice(devName)
	if err != nil {
		return err
	}
	if fp32 {
		nn.HalfAbove = math.MaxInt64
	}
	if stage != "" {
		torch.SetThreads(threads)
		r, err := runStage(set, stage, dev, steps)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	if m, err := face.ReadManifest(set); err != nil || m == nil {
		start := time.Now()
		fmt.Fprintf(os.Stderr, "writing the full-size set into %s …\n", set)
		if err := testweights.WriteFullSize(set, testweights.FullSize{Latent: latent, GAN: ganPreset, Width: 512, Tokenizer: tok}); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "written in %.1f s\n", time.Since(start).Seconds())
	}
	fmt.Printf("%-9s %8s %9s %11s  %s\n", "stage", "load s", "work s", "peak RSS", "note")
	for _, st := range strings.Split(stages, ",") {
		args := []string{"-set", set, "-stage", st, "-steps", fmt.Sprint(steps), "-threads", fmt.Sprint(threads), "-device", devName}
		if fp32 {
			args = append(args, "-fp32")
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("stage %s: %w", st, err)
		}
		var r result
		if err := json.Unmarshal(out, &r); err != nil {
			return fmt.Errorf("stage %s: %w (%q)", st, err, out)
		}
		rss := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
		fmt.Printf("%-9s %8.1f %9.1f %8.0f MB  %s\n", r.Stage, r.LoadSec, r.WorkSec, rss, r.Note)
	}
	return nil
}

// runStage loads what stage needs from the set and times its work.
func runStage(set, stage string, dev torch.Device, steps int) (result, error) {
	r := result{Stage: stage}
	o := face.Options{Weights: set, GAN: kinds.StyleGAN2, Cond: kinds.Mask, Device: dev}
	files := o.Files()
	lw := encoder.Files{Tokenizer: files["tokenizer"], Text: files["text"], VAE: files["vae"]}
	t0 := time.Now()
	var err error
	var work func() error
	switch stage {
	case "text":
		var te encoder.TextEncoder
		if te, _, err = encoder.LoadText(lw, 768, false, dev); err == nil {
			work = func() error { _, err := te.Encode([]string{"a smiling woman with blond hair", ""}); return err }
		}
	case "unet":
		var m *diffusion.Model
		if m, err = diffusion.LoadInference(files["unet"], dev); err == nil {
			if err = encoder.LoadBranch(m, files["branch"], kinds.Mask); err == nil {
				work = func() error { return unetPass(m, dev) }
			}
		}
	case "vae":
		var m *diffusion.Model
		var ae diffusion.Autoencoder
		if m, err = unetConfigOnly(files["unet"]); err == nil {
			if ae, err = encoder.Autoencoder(m.Config, lw, dev); err == nil {
				c := m.Config
				work = func() error {
					return torch.Try(func() {
						torch.NoGrad(func() {
							torch.Scoped(func() {
								z := torch.Randn(torch.NewGenerator(1), []int64{1, c.LatentChannels, c.LatentSize, c.LatentSize}, torch.Float32, dev)
								ae.FromLatent(z).SumAll().Item()
							})
						})
					})
				}
				r.Note = fmt.Sprintf("%d² latent", c.LatentSize)
			}
		}
	case "generate":
		var p *face.Pipeline
		if p, err = face.Load(o); err == nil {
			work = func() error {
				s := p.Size()
				w, err := p.Codes([]face.Request{{Text: "a smiling woman with blond hair", Mask: make([]uint8, s*s), Seed: 1}})
				if err != nil {
					return err
				}
				_, err = p.View(w, 0, 0, 0)
				return err
			}
		}
	case "sample":
		var m *diffusion.Model
		if m, err = diffusion.LoadInference(files["unet"], dev); err == nil {
			if err = encoder.LoadBranch(m, files["branch"], kinds.Mask); err == nil {
				var te encoder.TextEncoder
				var ae diffusion.Autoencoder
				if te, _, err = encoder.LoadText(lw, m.Config.ContextDim, false, dev); err == nil {
					if ae, err = encoder.Autoencoder(m.Config, lw, dev); err == nil {
						p := &diffusion.Pipeline{Model: m, Text: te, AE: ae, Sampler: diffusion.SamplerOpts{Sampler: "ddim"}}
						s := int(m.Config.ImageSize())
						work = func() error {
							_, err := p.Sample([]string{"a smiling woman with blond hair"}, diffusion.Conditions{Mask: encoder.MaskCondition(make([]uint8, s*s), s, 1).ToDevice(dev), MaskScale: 1}, steps, face.SampleGuidance, 1)
							return err
						}
						r.Note = fmt.Sprintf("%d steps, guidance text %g mask %g", steps, face.SampleGuidance.Text, face.SampleGuidance.Cond)
					}
				}
			}
		}
	default:
		return r, fmt.Errorf("stage %q: text, unet, vae, generate or sample", stage)
	}
	if err != nil {
		return r, err
	}
	r.LoadSec = time.Since(t0).Seconds()
	t1 := time.Now()
	if err := work(); err != nil {
		return r, err
	}
	r.WorkSec = time.Since(t1).Seconds()
	return r, nil
}

// unetPass is one U-Net + ControlNet pass at the config's latent size.
func unetPass(m *diffusion.Model, dev torch.Device) error {
	c := m.Config
	return torch.Try(func() {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				zt := torch.Randn(torch.NewGenerator(1), []int64{1, c.LatentChannels, c.LatentSize, c.LatentSize}, torch.Float32, dev)
				ctx := torch.Randn(torch.NewGenerator(2), []int64{1, 77, c.ContextDim}, torch.Float32, dev)
				s := int(c.ImageSize())
				mask := encoder.MaskCondition(make([]uint8, s*s), s, 1).ToDevice(dev)
				m.Predict(zt, torch.FromInt64([]int64{500}, 1).ToDevice(dev), ctx, diffusion.Conditions{Mask: mask, MaskScale: 1}).SumAll().Item()
			})
		})
	})
}

// unetConfigOnly reads the U-Net's config from its file's header alone.
func unetConfigOnly(path string) (*diffusion.Model, error) {
	l, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var c diffusion.Config
	if err := json.Unmarshal([]byte(l.Metadata["config"]), &c); err != nil {
		return nil, fmt.Errorf("%s: config: %w", path, err)
	}
	return &diffusion.Model{Config: c}, nil
}
