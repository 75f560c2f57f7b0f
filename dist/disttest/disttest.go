// Package disttest checks a trainer's data-parallel split from its tests:
// the test binary, run again as the ranks of a loopback group, trains as
// each rank, and the weights are compared with one process's.
package disttest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"ddgi/dist"
	"ddgi/internal/imageio"
	"ddgi/nn"
	"ddgi/train"
)

// Train trains a tiny run in dir as one rank of group (nil: one process)
// and returns the weights that must match.
type Train func(dir string, group train.Group) ([]float32, error)

const runEnv = "DDGI_DISTTEST_RUN"

// Main is a package's TestMain: in a rank (the environment names its run
// folder) it joins the group, trains, writes its weights and exits;
// otherwise it runs the tests.
func Main(m *testing.M, fn Train) {
	dir := os.Getenv(runEnv)
	if dir == "" {
		os.Exit(m.Run())
	}
	if err := rank(dir, fn); err != nil {
		fmt.Fprintf(os.Stderr, "rank %s: %v\n", os.Getenv("RANK"), err)
		os.Exit(1)
	}
	os.Exit(0)
}

func rank(dir string, fn Train) error {
	c, ok, err := dist.FromEnv()
	if err != nil || !ok {
		return fmt.Errorf("no group in the environment (%v)", err)
	}
	g, err := dist.Join(c)
	if err != nil {
		return err
	}
	defer g.Close()
	w, err := fn(dir, g)
	if err != nil {
		return err
	}
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	return imageio.WriteAtomic(weightsFile(dir, c.Rank), b)
}

func weightsFile(dir string, rank int) string {
	return filepath.Join(dir, fmt.Sprintf("weights-rank%d.json", rank))
}

// Compare trains fn in one process, then as n ranks over loopback (one
// thread each), and returns the largest |Δw| between the one-process
// weights and any rank's. The package's TestMain must be Main.
func Compare(t *testing.T, fn Train, n int) float64 {
	t.Helper()
	return slices.Max(differences(t, fn, n))
}

// differences trains as Compare does and returns, for each weight, the
// largest |Δw| of any rank against one process.
func differences(t *testing.T, fn Train, n int) []float64 {
	t.Helper()
	tmp := t.TempDir()
	ref, err := fn(filepath.Join(tmp, "one"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "ranks")
	t.Setenv(runEnv, dir)
	t.Setenv("DDGI_THREADS", "1")
	// Buckets of 10 KB: even tiny nets' gradients all-reduce in several
	// buckets that start while backward runs (torch.Overlap).
	t.Setenv("DDGI_BUCKET_MB", "0.01")
	if err := dist.Launch(context.Background(), n, []string{"-test.run=^$"}, dist.LaunchOptions{Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	diff := make([]float64, len(ref))
	for r := range n {
		b, err := os.ReadFile(weightsFile(dir, r))
		if err != nil {
			t.Fatal(err)
		}
		var w []float32
		if err := json.Unmarshal(b, &w); err != nil || len(w) != len(ref) {
			t.Fatalf("rank %d: %d weights (%v), want %d", r, len(w), err, len(ref))
		}
		for i := range w {
			diff[i] = max(diff[i], math.Abs(float64(w[i]-ref[i])))
		}
	}
	return diff
}

// Weights lists the values of every tensor of the stores, store by store
// in name order: what a Train returns for Compare.
func Weights(stores ...*nn.Store) []float32 {
	var w []float32
	for _, s := range stores {
		for _, name := range s.Names() {
			w = append(w, s.Get(name).Float32s()...)
		}
	}
	return w
}

// CheckLikeOneProcess fails t unless n ranks of fn end within tol of one
// process (Compare), and logs the difference either way.
func CheckLikeOneProcess(t *testing.T, fn Train, n int, tol float64) {
	t.Helper()
	d := Compare(t, fn, n)
	t.Logf("max |Δw| = %.3g against one process", d)
	if d > tol {
		t.Fatalf("weights differ from one process by %g", d)
	}
}

// CheckLikeOneProcessUpToNoise is CheckLikeOneProcess for trainers where a
// few weights have gradients at float-noise level (their true gradient is
// zero): Adam's first step, lr·g/(|g|+ε), turns the last bits in which the
// ranks' sums differ from one process's into steps of a fraction of lr, and
// which bits differ depends on the CPU's vector width. All weights must be
// within noiseTol and all but maxNoisy of them within tol.
func CheckLikeOneProcessUpToNoise(t *testing.T, fn Train, n int, tol, noiseTol float64, maxNoisy int) {
	t.Helper()
	diff := differences(t, fn, n)
	noisy := 0
	for _, d := range diff {
		if d > tol {
			noisy++
		}
	}
	worst := slices.Max(diff)
	t.Logf("max |Δw| = %.3g against one process; %d of %d weights beyond %g", worst, noisy, len(diff), tol)
	if worst > noiseTol {
		t.Fatalf("weights differ from one process by %g", worst)
	}
	if noisy > maxNoisy {
		t.Fatalf("%d weights differ from one process by more than %g, want at most %d", noisy, tol, maxNoisy)
	}
}
