package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/data"
	"ddgi/internal/peakrss"
)

// TestNoImageWithoutItsLatent: when the latent cannot be written (here a
// folder sits at its path), generate fails and writes no image either.
func TestNoImageWithoutItsLatent(t *testing.T) {
	dir, w := tinyWeights(t)
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, make([]uint8, 32*32), 32); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "face.png")
	if err := os.MkdirAll(filepath.Join(dir, "out", "face.latent.safetensors"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"generate", "--weights", w, "--text", "A man.", "--mask", mpath, "--out", out}); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the image was written without its latent")
	}
}

// TestLongBatchesRunInBoundedMemory: generate --batch with 500 jobs peaks
// at about the memory of 200 (jobs run in chunks of 8), measured as the max
// RSS of a child process with glibc's default heap trimming. (The heap
// warms up over the first ~250 jobs, 260 → 420 MB on tiny weights, then
// stays about flat; live tensors stay constant throughout.) Full suite only
// (about a minute).
func TestLongBatchesRunInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 700 generations")
	}
	dir, w := tinyWeights(t)
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, make([]uint8, 32*32), 32); err != nil {
		t.Fatal(err)
	}
	peak := func(n int) int64 {
		var lines []string
		for i := range n {
			lines = append(lines, fmt.Sprintf(`{"text": "A smiling woman with long hair.", "mask": %q, "seed": %d, "out": %q}`, mpath, i, filepath.Join(dir, fmt.Sprint(n), fmt.Sprintf("%d.png", i))))
		}
		jobs := filepath.Join(dir, fmt.Sprintf("jobs%d.jsonl", n))
		if err := os.WriteFile(jobs, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildRun$")
		// glibc's default thresholds: TuneMalloc keeps up to 512 MiB of
		// freed heap by design, which would hide (or fake) growth per job.
		cmd.Env = append(os.Environ(), "DDGI_MALLOC=default", "DDGI_CHILD_ARGS=generate\x1f--weights\x1f"+w+"\x1f--batch\x1f"+jobs)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%d jobs: %v\n%s", n, err, out)
		}
		b, ok := peakrss.Parse(out) // the child's own: ru_maxrss would carry this process's peak
		if !ok {
			t.Fatalf("%d jobs: the child reported no peak RSS", n)
		}
		return b
	}
	small, long := peak(200), peak(500)
	t.Logf("max RSS: 200 jobs %d MB, 500 jobs %d MB", small>>20, long>>20)
	// Holding every job (as before chunking) cost ~50 MB a job on the
	// shipped weights: 300 more jobs would add gigabytes. Heap warm-up and
	// fragmentation under load vary by ~100 MB.
	if long > small+small/2 {
		t.Fatalf("500 jobs peaked at %d MB, 200 jobs at %d MB: memory grows with the batch", long>>20, small>>20)
	}
}

// TestChildRun runs ddgi with DDGI_CHILD_ARGS (split at \\x1f, the unit separator) in a child
// process (for tests that measure a whole process).
func TestChildRun(t *testing.T) {
	args := os.Getenv("DDGI_CHILD_ARGS")
	if args == "" {
		t.Skip("only as a child")
	}
	quiet(t)
	if code := run(strings.Split(args, "\x1f")); code != 0 {
		t.Fatalf("exit %d", code)
	}
	peakrss.Report(os.Stdout)
}
