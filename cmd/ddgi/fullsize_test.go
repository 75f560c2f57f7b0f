package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddgi/data"
	"ddgi/internal/fixture"
	"ddgi/internal/peakrss"
	"ddgi/internal/testweights"
	"ddgi/inversion"
	"ddgi/torch"
)

// fullSizeRSSGoal is issue #15's memory goal for the one-pass generate.
const fullSizeRSSGoal = 8 << 30

// fullSizeChildEnv carries a full-size test's ddgi arguments to the child
// process it starts (the test binary again, running only that test).
const fullSizeChildEnv = "DDGI_FULLSIZE_CHILD"

// runFullSizeChild runs ddgi with args in a child process of its own
// (test runs it; a child that finds fullSizeChildEnv set runs ddgi and
// exits) and returns its combined output, peak RSS in bytes and duration.
func runFullSizeChild(t *testing.T, test string, args ...string) (out []byte, rss int64, took time.Duration) {
	t.Helper()
	b, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), fullSizeChildEnv+"="+string(b))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ddgi %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	rss, ok := peakrss.Parse(out) // the child's own: ru_maxrss would carry this process's peak
	if !ok {
		t.Fatalf("ddgi %s reported no peak RSS:\n%s", strings.Join(args, " "), out)
	}
	return out, rss, time.Since(start)
}

// fullSizeChild runs ddgi and exits when this process is a full-size
// test's child.
func fullSizeChild(t *testing.T) {
	if args := os.Getenv(fullSizeChildEnv); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			t.Fatal(err)
		}
		code := run(a)
		peakrss.Report(os.Stdout)
		os.Exit(code)
	}
}

// TestFullSizeGenerateMemory (full suite) writes a model set of SD1.5's
// shapes with random fp16 weights straight to safetensors (no network
// initialised), runs `ddgi generate` on it once at a 16² latent in a
// process of its own, and checks that process's peak RSS stays under the
// 8 GiB goal. The networks are full size at any latent; the activations
// of a 64² latent (512² images) add to what this measures.
func TestFullSizeGenerateMemory(t *testing.T) {
	fullSizeChild(t)
	if testing.Short() {
		t.Skip("full suite: writes a 2.9 GB model set and runs the full-size networks")
	}
	dir := t.TempDir()
	set := filepath.Join(dir, "sd15")
	if err := testweights.WriteFullSize(set, testweights.FullSize{Latent: 16, GAN: "ffhq1024", Width: 512, Tokenizer: filepath.Join("..", "..", "convert", "testdata", "diffusers", "sd", "tokenizer")}); err != nil {
		t.Fatal(err)
	}
	mpath, out := filepath.Join(dir, "mask.png"), filepath.Join(dir, "face.png")
	if err := data.WriteMaskPNG(mpath, make([]uint8, 128*128), 128); err != nil {
		t.Fatal(err)
	}
	_, rss, took := runFullSizeChild(t, "TestFullSizeGenerateMemory", "generate", "--weights", set, "--text", "A smiling woman.", "--mask", mpath, "--out", out)
	t.Logf("generate on the full-size set (16² latent): %.1f s, peak RSS %.0f MB", took.Seconds(), float64(rss)/(1<<20))
	if rss >= fullSizeRSSGoal {
		t.Errorf("peak RSS %d MB, over the %d MB goal", rss>>20, fullSizeRSSGoal>>20)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("generate wrote no image: %v", err)
	}
	// The U-Net and ControlNet in bf16: the same 2 bytes a weight as fp16
	// storage (at this 16² latent the weights dominate: 4.46 GB against
	// 4.45; at 64², bench/sd: 5.2 GB against 6.7).
	bf := filepath.Join(dir, "face_bf16.png")
	_, rssBF, tookBF := runFullSizeChild(t, "TestFullSizeGenerateMemory", "generate", "--weights", set, "--precision", "bf16", "--text", "A smiling woman.", "--mask", mpath, "--out", bf)
	t.Logf("generate --precision bf16: %.1f s, peak RSS %.0f MB", tookBF.Seconds(), float64(rssBF)/(1<<20))
	if rssBF >= fullSizeRSSGoal {
		t.Errorf("bf16: peak RSS %d MB, over the %d MB goal", rssBF>>20, fullSizeRSSGoal>>20)
	}
	if _, err := os.Stat(bf); err != nil {
		t.Errorf("generate --precision bf16 wrote no image: %v", err)
	}
}

// fullSizeTrainRSSBound bounds the peak RSS of TestFullSizeTrainInversion's
// run. Measured 5.3–5.6 GB at 1 thread: 2.9 GB of frozen networks
// (U-Net and ControlNet in fp16, VAE, text tower, StyleGAN2-256 in fp32),
// M and T at width 512 in fp32 with their gradients and Adam moments
// (1.2 GB), and one step's activations; 7 GiB leaves room for allocator
// and thread-count variation while still catching a frozen pass that
// keeps its activations into G's backward or a preview at full batch
// (9.6 GB before they were scoped).
const fullSizeTrainRSSBound = 7 << 30

// TestFullSizeTrainInversion (full suite) trains the inversion for a few
// steps at SD1.5's dimensions, as `ddgi train inversion --weights DIR
// --data DIR` runs for a user: a set of random full-size weights (16²
// latent, so 128² images; the networks are full size at any latent; the
// public-size StyleGAN2 at 256²) with the shipped 64² aux nets F and R
// copied in, a two-face folder in CelebAMask-HQ's layout, M and T sized
// from the U-Net's taps and started from the set's fp16 M and T (--init:
// the trainer's sizes must match the set's), two steps of each stage with
// I^d_0 sampled by a 2-step DDIM. It checks the run completes, exports M
// and T with the taps' config, logs finite losses and stays under
// fullSizeTrainRSSBound, in a process of its own.
func TestFullSizeTrainInversion(t *testing.T) {
	fullSizeChild(t)
	if testing.Short() {
		t.Skip("full suite: writes a 2.9 GB model set and trains on the full-size networks (~3 min at 1 thread)")
	}
	dir := t.TempDir()
	set, folder := filepath.Join(dir, "sd15"), filepath.Join(dir, "celebamask-hq")
	if err := testweights.WriteFullSize(set, testweights.FullSize{Latent: 16, GAN: "ffhq256", Width: 512, Tokenizer: filepath.Join("..", "..", "convert", "testdata", "diffusers", "sd", "tokenizer")}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"aux_perceptual.safetensors", "aux_identity.safetensors"} {
		copyFile(t, filepath.Join("..", "..", "weights", f), filepath.Join(set, f))
	}
	if err := fixture.CelebAMaskHQ(folder, 2, 128); err != nil {
		t.Fatal(err)
	}
	runDir, export := filepath.Join(dir, "run"), filepath.Join(dir, "inversion.safetensors")
	setInv := filepath.Join(set, "inversion_stylegan2_mask.safetensors")
	_, rss, took := runFullSizeChild(t, "TestFullSizeTrainInversion", "train", "inversion", "--weights", set, "--data", folder,
		"--steps1", "2", "--steps2", "2", "--batch", "1", "--d0-pool", "1", "--d0-steps", "2", "--width", "512", "--init", setInv,
		"--out", runDir, "--export", export)
	t.Logf("train inversion on the full-size set (16² latent, 4 steps): %.1f s, peak RSS %.0f MB", took.Seconds(), float64(rss)/(1<<20))
	if rss >= fullSizeTrainRSSBound {
		t.Errorf("peak RSS %d MB, over the %d MB bound", rss>>20, fullSizeTrainRSSBound>>20)
	}
	got, tc, err := inversion.Load(export, torch.CPU)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	want, _, err := inversion.Load(setInv, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := got.Config, want.Config; g.HChannels != 1280 || g.HSize != 2 || g.Styles != 14 || fmtConfig(g) != fmtConfig(w) {
		t.Errorf("exported M and T: config %+v, want the set's (from the taps) %+v with h_t 1280×2×2 and 14 styles", g, w)
	}
	if tc == nil || tc.Stage1Steps != 2 || tc.Stage2Steps != 2 {
		t.Errorf("exported training config %+v", tc)
	}
	b, err := os.ReadFile(filepath.Join(runDir, "log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var last struct {
		Step int     `json:"step"`
		Loss float64 `json:"loss"`
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Step != 4 || !(last.Loss > 0 && last.Loss < 1e6) {
		t.Errorf("log.jsonl's last row %+v (%v): want step 4 with a finite loss\n%s", last, err, b)
	}
}

func fmtConfig(c inversion.Config) string {
	b, _ := json.Marshal(c)
	return string(b)
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
