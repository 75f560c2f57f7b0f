package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddgi/gan"
	"ddgi/train"
)

// TestKilledTrainGANResumes is issue #19's finding 5 at the command line:
// it builds the ddgi binary, SIGKILLs `ddgi train gan --preset tiny
// --ckpt-every 1ms` (a checkpoint after every step) 10 times at random
// moments, and after every kill checks that each checkpoint folder
// verifies against its manifest, that its state.json is of the same step as
// the folder's name (the probe once found G, D and G_ema newer than
// state.json), and that latest names a complete checkpoint. A last run
// resumes from the newest and must finish with exit status 0. Full suite
// only: it builds the binary and trains for about a minute.
func TestKilledTrainGANResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ddgi and kills 10 trainings")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build ddgi with")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "ddgi")
	start := time.Now()
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built ddgi in %v", time.Since(start).Round(time.Second))

	dir := filepath.Join(tmp, "run")
	args := func(kimg string) []string {
		return []string{"train", "gan", "--preset", "tiny", "--out", dir, "--kimg", kimg,
			"--data-n", "32", "--ckpt-every", "1ms", "--grid-kimg", "1000", "--seed", "3"}
	}
	run := &train.Run{Dir: dir} // not train.Open: its lock would keep the children out
	rng := rand.New(rand.NewSource(19))
	for kill := range 10 {
		cmd := exec.Command(bin, args("10")...) // 10,000 images: far more than the kills allow
		cmd.Env = append(os.Environ(), "DDGI_THREADS=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Start-up (libtorch, SynthFace) takes ~3 s on a loaded 2-core
		// machine; kills land before, during and between checkpoints.
		wait := time.Duration(500+rng.Intn(5500)) * time.Millisecond
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			t.Fatalf("kill %d: ddgi exited on its own after less than %v (%v):\n%s", kill+1, wait, err, out.Bytes())
		case <-time.After(wait):
		}
		cmd.Process.Kill() // SIGKILL: no handler runs
		<-exited
		if strings.Contains(out.String(), "panic:") {
			t.Fatalf("kill %d: the run crashed before the kill:\n%s", kill+1, out.Bytes())
		}
		stale := countStale(t, dir) // each run removes those of earlier ones at its start
		cks := checkWhole(t, run, fmt.Sprintf("after kill %d (%v)", kill+1, wait))
		last := "none"
		if len(cks) > 0 {
			last = fmt.Sprint(cks[len(cks)-1].Done)
		}
		t.Logf("kill %d after %v: %d checkpoint(s), newest %s images; %d temporary folder(s) (half-written or half-deleted)", kill+1, wait, len(cks), last, stale)
	}

	cks := checkWhole(t, run, "after the kills")
	if len(cks) == 0 {
		t.Fatal("no checkpoint after 10 killed runs: none reached its first step")
	}
	newest := cks[len(cks)-1].Done
	// Resume from the newest and train a few steps more (--kimg may be
	// raised or lowered on resume; this one ends just past the newest).
	target := newest + 8
	cmd := exec.Command(bin, args(fmt.Sprintf("%g", float64(target)/1000))...)
	cmd.Env = append(os.Environ(), "DDGI_THREADS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("resume after the kills: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("resuming %s at %d img", dir, newest); !bytes.Contains(out, []byte(want)) {
		t.Errorf("the last run does not say %q:\n%s", want, out)
	}
	cks = checkWhole(t, run, "after the resume")
	if got := cks[len(cks)-1].Done; got < target {
		t.Errorf("the resumed run ended at %d images, want ≥ %d", got, target)
	}
	if n := countStale(t, dir); n > 0 {
		t.Errorf("%d temporary checkpoint folders remain after a complete run", n)
	}
}

// checkWhole verifies every checkpoint of run (manifest sizes and hashes;
// state.json at the folder's step) and that latest names one of them.
func checkWhole(t *testing.T, run *train.Run, when string) []train.Checkpoint {
	t.Helper()
	cks, err := run.Checkpoints()
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	for _, c := range cks {
		if err := c.Verify(); err != nil {
			t.Errorf("%s: checkpoint %s does not verify: %v", when, c.Dir, err)
			continue
		}
		b, err := os.ReadFile(c.Path(gan.FileState))
		var st gan.State
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err != nil || st.Nimg != c.Done {
			t.Errorf("%s: checkpoint %s holds state of %d images (%v)", when, c.Dir, st.Nimg, err)
		}
	}
	if len(cks) == 0 {
		return nil
	}
	target, err := os.Readlink(run.Path("latest"))
	if err != nil {
		t.Errorf("%s: %d checkpoints but no latest: %v", when, len(cks), err)
		return cks
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(run.Dir, target)
	}
	found := false
	for _, c := range cks {
		found = found || filepath.Clean(c.Dir) == filepath.Clean(target)
	}
	if !found {
		t.Errorf("%s: latest points at %s, which is not a complete checkpoint", when, target)
	}
	return cks
}

// countStale counts the temporary checkpoint folders in the run.
func countStale(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "checkpoints"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			n++
		}
	}
	return n
}
