package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"ddgi/data"
	"ddgi/internal/testweights"
)

// fullSizeRSSGoal is issue #15's memory goal for the one-pass generate.
const fullSizeRSSGoal = 8 << 30

// TestFullSizeGenerateMemory (full suite) writes a model set of SD1.5's
// shapes with random fp16 weights straight to safetensors (no network
// initialised), runs `ddgi generate` on it once at a 16² latent in a
// process of its own, and checks that process's peak RSS stays under the
// 8 GiB goal. The networks are full size at any latent; the activations
// of a 64² latent (512² images) add to what this measures.
func TestFullSizeGenerateMemory(t *testing.T) {
	if args := os.Getenv("DDGI_FULLSIZE_CHILD"); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			t.Fatal(err)
		}
		os.Exit(run(a))
	}
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
	args, _ := json.Marshal([]string{"generate", "--weights", set, "--text", "A smiling woman.", "--mask", mpath, "--out", out})
	cmd := exec.Command(os.Args[0], "-test.run=^TestFullSizeGenerateMemory$")
	cmd.Env = append(os.Environ(), "DDGI_FULLSIZE_CHILD="+string(args))
	start := time.Now()
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, b)
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
	t.Logf("generate on the full-size set (16² latent): %.1f s, peak RSS %.0f MB", time.Since(start).Seconds(), float64(rss)/(1<<20))
	if rss >= fullSizeRSSGoal {
		t.Errorf("peak RSS %d MB, over the %d MB goal", rss>>20, fullSizeRSSGoal>>20)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("generate wrote no image: %v", err)
	}
}
