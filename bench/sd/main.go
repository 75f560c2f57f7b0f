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
//
// With -peer, each stage but generate (the paper's method has no reference)
// is then run again in PyTorch by peer.py, in a process of its own with the
// same threads: the user's diffusers (UNet2DConditionModel, ControlNetModel
// .from_unet with 3 hint channels, AutoencoderKL, DDIMScheduler) and
// transformers (CLIPTextModel) at SD1.5's public configs with random
// weights, fp32 on the CPU, doing the same work (batch, timestep, context,
// three U-Net + ControlNet passes a sampler step, steps). Its load time
// includes PyTorch's random init; the speed ratio PyTorch/ddgi is on the
// work time (≥ 1: ddgi is faster). generate is also set against ddgi's
// own sample stage when both ran (the goal: ≥ 25× the 20-step
// sampler). The peer needs Debian's python3-torch (/usr/bin/python3) and
// diffusers and transformers importable by it; -pythonpath prepends
// folders (such as checkouts' src/) to its PYTHONPATH:
//
//	go run ./bench/sd -set /tmp/sd15 -latent 64 -peer -pythonpath $HOME/src/diffusers/src:$HOME/src/transformers/src
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/face"
	"ddgi/internal/imageio"
	"ddgi/internal/peakrss"
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
	// WarmSec is the median of the repeats after the first (-reps > 1).
	WarmSec float64 `json:"warm_s,omitempty"`
	Note    string  `json:"note,omitempty"`
	// RSSMB is the stage process's peak RSS in MB (peakRSSMB).
	RSSMB float64 `json:"peak_rss_mb"`
}

// python is the interpreter of the PyTorch peer (Debian's python3-torch).
const python = "/usr/bin/python3"

// peerMissing is peer.py's exit status when a module cannot be imported.
const peerMissing = 3

// options are the command's flags.
type options struct {
	set, ganPreset, tok, stages, stage, devName, pythonPath, precision string
	latent                                                             int64
	steps, threads, reps                                               int
	fp32, peer                                                         bool
}

func main() {
	var o options
	flag.StringVar(&o.set, "set", "", "model-set folder: written here (2.6 GB) unless it has a manifest already")
	flag.Int64Var(&o.latent, "latent", 64, "latent side (64: SD1.5's 512² images); used when the set is written")
	flag.StringVar(&o.ganPreset, "gan", "ffhq1024", "StyleGAN2 preset of the set (ffhq256, ffhq512, ffhq1024)")
	flag.StringVar(&o.tok, "tokenizer", "convert/testdata/diffusers/sd/tokenizer", "CLIP tokenizer folder copied into the set")
	flag.StringVar(&o.stages, "stages", "text,unet,vae,generate,sample", "stages to run, in order")
	flag.IntVar(&o.steps, "steps", 20, "sampler steps of the sample stage")
	flag.IntVar(&o.threads, "threads", 2, "torch threads of each stage (the peer's too)")
	flag.IntVar(&o.reps, "reps", 1, "times each stage's work runs in its process (both engines): work s is the first, a second row the median of the rest")
	flag.BoolVar(&o.fp32, "fp32", false, "load the networks with fp32 weights in memory (as before fp16 storage) to compare")
	flag.StringVar(&o.precision, "precision", "fp32", "what the text tower, U-Net and ControlNet compute in (text, unet, generate, sample): fp32 or bf16")
	flag.StringVar(&o.devName, "device", "cpu", "cpu, cuda or cuda:N: where every stage runs")
	flag.BoolVar(&o.peer, "peer", false, "after each stage, run it in PyTorch (diffusers + transformers, fp32 CPU) and print the speed ratio")
	flag.StringVar(&o.pythonPath, "pythonpath", "", "folders prepended to the peer's PYTHONPATH (where diffusers and transformers are, if not installed)")
	flag.StringVar(&o.stage, "stage", "", "internal: run one stage in this process and print its result")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/sd:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.set == "" {
		return fmt.Errorf("-set is required")
	}
	dev, err := torch.ParseDevice(o.devName)
	if err != nil {
		return err
	}
	if o.fp32 {
		nn.HalfAbove = math.MaxInt64
	}
	prec, err := nn.ParsePrecision(o.precision)
	if err != nil {
		return err
	}
	if o.stage != "" {
		torch.SetThreads(o.threads)
		r, err := runStage(o.set, o.stage, dev, o.steps, o.reps, prec)
		if err != nil {
			return err
		}
		r.RSSMB = peakRSSMB()
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	if o.reps < 1 {
		return fmt.Errorf("-reps %d: at least 1", o.reps)
	}
	if o.peer && o.devName != "cpu" {
		return fmt.Errorf("-peer runs PyTorch on the CPU: use it with -device cpu")
	}
	if o.peer {
		if _, err := os.Stat(python); err != nil {
			return fmt.Errorf("-peer needs %s with Debian's python3-torch (apt-get install python3-torch): %w", python, err)
		}
	}
	if m, err := face.ReadManifest(o.set); err != nil || m == nil {
		start := time.Now()
		fmt.Fprintf(os.Stderr, "writing the full-size set into %s …\n", o.set)
		if err := testweights.WriteFullSize(o.set, testweights.FullSize{Latent: o.latent, GAN: o.ganPreset, Width: 512, Tokenizer: o.tok}); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "written in %.1f s\n", time.Since(start).Seconds())
	}
	var peerArgs []string
	if c := torch.BLASCore(); c != "" {
		// fp32 matrix products of both engines run on these kernels.
		fmt.Printf("(OpenBLAS kernels: %s%s)\n", c, map[bool]string{true: ", set by OPENBLAS_CORETYPE"}[os.Getenv("OPENBLAS_CORETYPE") != ""])
	}
	fmt.Printf("(ddgi's linear layers: %s)\n", torch.LinearKernel())
	if o.peer {
		// The peer follows the set's own latent side (which -latent only
		// sets when the set is written) and tokenizer.
		files := face.Options{Weights: o.set, GAN: kinds.StyleGAN2, Cond: kinds.Mask}.Files()
		m, err := unetConfigOnly(files["unet"])
		if err != nil {
			return err
		}
		peerArgs = []string{"--latent", fmt.Sprint(m.Config.LatentSize), "--steps", fmt.Sprint(o.steps),
			"--threads", fmt.Sprint(o.threads), "--reps", fmt.Sprint(o.reps), "--tokenizer", files["tokenizer"], "--precision", string(prec)}
		if _, err := runPeer("check", nil, o.pythonPath); err != nil { // a missing module, before any stage runs
			return err
		}
		fmt.Printf("%-9s %8s %9s %11s │ %-26s %7s  %s\n", "", "ddgi", "", "", "PyTorch (diffusers, "+string(prec)+")", "", "")
		fmt.Printf("%-9s %8s %9s %11s │ %8s %7s %9s %7s  %s\n", "stage", "load s", "work s", "peak RSS", "load s", "work s", "peak RSS", "speed×", "note")
	} else {
		fmt.Printf("%-9s %8s %9s %11s  %s\n", "stage", "load s", "work s", "peak RSS", "note")
	}
	work := map[string]float64{}
	for _, st := range strings.Split(o.stages, ",") {
		args := []string{"-set", o.set, "-stage", st, "-steps", fmt.Sprint(o.steps), "-threads", fmt.Sprint(o.threads), "-reps", fmt.Sprint(o.reps), "-device", o.devName, "-precision", string(prec)}
		if o.fp32 {
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
		work[r.Stage] = r.WorkSec
		warm := fmt.Sprintf("  warm (median of %d more)", o.reps-1)
		if !o.peer {
			fmt.Printf("%-9s %8.1f %9.2f %8.0f MB  %s\n", r.Stage, r.LoadSec, r.WorkSec, r.RSSMB, r.Note)
			if o.reps > 1 {
				fmt.Printf("%-9s %8s %9.2f %11s %s\n", "", "", r.WarmSec, "", warm)
			}
			continue
		}
		if st == "generate" {
			fmt.Printf("%-9s %8.1f %9.2f %8.0f MB │ %-35s  %s\n", r.Stage, r.LoadSec, r.WorkSec, r.RSSMB, "no reference", r.Note)
			if o.reps > 1 {
				fmt.Printf("%-9s %8s %9.2f %11s │ %-35s %s\n", "", "", r.WarmSec, "", "", warm)
			}
			continue
		}
		p, err := runPeer(st, peerArgs, o.pythonPath)
		if err != nil {
			return err
		}
		fmt.Printf("%-9s %8.1f %9.2f %8.0f MB │ %8.1f %7.2f %6.0f MB %6.2f×  %s\n", r.Stage, r.LoadSec, r.WorkSec, r.RSSMB,
			p.LoadSec, p.WorkSec, p.RSSMB, p.WorkSec/r.WorkSec, r.Note)
		if o.reps > 1 {
			fmt.Printf("%-9s %8s %9.2f %11s │ %8s %7.2f %9s %6.2f× %s\n", "", "", r.WarmSec, "", "", p.WarmSec, "", p.WarmSec/r.WarmSec, warm)
		}
	}
	if g, ok := work["generate"]; ok {
		if s, ok := work["sample"]; ok {
			fmt.Printf("generate (one pass) is %.1f× faster than ddgi's %d-step sample (the goal: ≥ 25× the 20-step sampler)\n", s/g, o.steps)
		}
	}
	if o.peer {
		fmt.Println("speed× = PyTorch work s / ddgi work s (≥ 1: ddgi is faster); load s of PyTorch includes its random init")
	}
	return nil
}

// runPeer runs peer.py for one stage and reads its result line ("check"
// only imports what the stages need). A module it cannot import ends the
// run with peer.py's one-line reason.
func runPeer(stage string, args []string, pythonPath string) (result, error) {
	var r result
	_, self, _, _ := runtime.Caller(0)
	cmd := exec.Command(python, append([]string{filepath.Join(filepath.Dir(self), "peer.py"), "--stage", stage}, args...)...)
	cmd.Env = os.Environ()
	if pythonPath != "" {
		pp := pythonPath
		if old := os.Getenv("PYTHONPATH"); old != "" {
			pp += string(os.PathListSeparator) + old
		}
		cmd.Env = append(cmd.Env, "PYTHONPATH="+pp)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == peerMissing {
			msg := lastLine(stderr.String())
			if pythonPath != "" {
				msg += fmt.Sprintf(" (-pythonpath was %q)", pythonPath)
			}
			return r, fmt.Errorf("peer %s: %s", stage, msg)
		}
		os.Stderr.Write(stderr.Bytes())
		return r, fmt.Errorf("peer %s: %w: %s", stage, err, lastLine(stderr.String()))
	}
	if stage == "check" {
		return r, nil
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("peer %s said %q: %w", stage, out, err)
	}
	return r, nil
}

// peakRSSMB is this process's peak RSS in MB (internal/peakrss: VmHWM,
// since ru_maxrss would carry this command's own peak into each stage).
func peakRSSMB() float64 { return float64(peakrss.Bytes()) / (1 << 20) }

// lastLine is s's last non-blank line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// runStage loads what stage needs from the set and times its work.
func runStage(set, stage string, dev torch.Device, steps, reps int, prec nn.Precision) (result, error) {
	r := result{Stage: stage}
	// Step −1: the tapped pass at T−1 on pure noise, as `ddgi generate` runs by
	// default (face.Options.Step 0 would first run the guided sampler to t = 0).
	o := face.Options{Weights: set, GAN: kinds.StyleGAN2, Cond: kinds.Mask, Device: dev, Step: -1, Precision: prec}
	files := o.Files()
	lw := encoder.Files{Tokenizer: files["tokenizer"], Text: files["text"], VAE: files["vae"], Precision: prec}
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
		if m, err = diffusion.LoadInference(files["unet"], dev, prec); err == nil {
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
				t := time.Now()
				w, err := p.Codes([]face.Request{{Text: "a smiling woman with blond hair", Mask: make([]uint8, s*s), Seed: 1}})
				if err != nil {
					return err
				}
				codes := time.Since(t).Seconds()
				t = time.Now()
				_, err = p.View(w, 0, 0, 0)
				r.Note = fmt.Sprintf("codes (text, E's pass, M and T) %.1f s, render %.1f s", codes, time.Since(t).Seconds())
				return err
			}
		}
	case "sample":
		var m *diffusion.Model
		if m, err = diffusion.LoadInference(files["unet"], dev, prec); err == nil {
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
	if path := os.Getenv("DDGI_BENCH_CPUPROFILE"); path != "" { // where the stage's work goes, by Go caller
		var prof bytes.Buffer
		if err := pprof.StartCPUProfile(&prof); err != nil {
			return r, err
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := imageio.WriteAtomic(fmt.Sprintf("%s.%s", path, stage), prof.Bytes()); err != nil {
				fmt.Fprintln(os.Stderr, "bench/sd: cpu profile:", err)
			}
		}()
	}
	t1 := time.Now()
	if err := work(); err != nil {
		return r, err
	}
	r.WorkSec = time.Since(t1).Seconds()
	note := r.Note
	var warm []float64
	for range reps - 1 {
		t := time.Now()
		if err := work(); err != nil {
			return r, err
		}
		warm = append(warm, time.Since(t).Seconds())
	}
	r.Note = note // the first run's
	r.WarmSec = median(warm)
	return r, nil
}

// median is the middle of xs (the mean of the two middle ones), 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
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
