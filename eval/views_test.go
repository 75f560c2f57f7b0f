package eval

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/kinds"
	"ddgi/torch"
)

// benchTurner draws bench heads as SynthFace does, from any camera: view k
// of pair i shows head (i + shift·k) mod n, so shift 0 is the truth itself
// and shift 1 a different person in every view; still ignores the camera.
type benchTurner struct {
	name  string
	n     int
	shift int
	still bool
}

func (m benchTurner) Name() string { return m.name }
func (m benchTurner) Turns() bool  { return true }
func (m benchTurner) Generate(b *Batch) (*torch.Tensor, error) {
	return imagebatch.SampleImages(b.Samples), nil
}
func (m benchTurner) Turn(b *Batch, cams [][25]float32) ([]*torch.Tensor, error) {
	v := data.NewSynthFace(data.Bench, b.Size, m.n).(data.Viewer)
	var outs []*torch.Tensor
	for k, cam := range cams {
		if m.still {
			outs = append(outs, imagebatch.SampleImages(b.Samples))
			continue
		}
		var ss []*data.Sample
		for _, i := range b.Index {
			s, err := v.View((i+m.shift*k)%m.n, cam)
			if err != nil {
				return nil, err
			}
			ss = append(ss, s)
		}
		outs = append(outs, imagebatch.SampleImages(ss))
	}
	return outs, nil
}

// The view report must give a method that redraws the true heads the
// truth's scores, rank one that shows a different person in each view
// below it, flag one that never turns (turn ≈ 0), and skip 2-D methods.
func TestViewsSeparateConsistentHeads(t *testing.T) {
	const n = 16
	gt, err := NewRegistry().New("gt")
	if err != nil {
		t.Fatal(err)
	}
	ms := []Method{benchTurner{name: "truth", n: n}, benchTurner{name: "swap", n: n, shift: 1},
		benchTurner{name: "still", n: n, still: true}, gt}
	c := Config{Methods: ms, Conds: []kinds.Cond{kinds.Mask}, N: n, Size: 32, Batch: 5, Workers: 1,
		Nets: tinyNets(t), Quiet: true, GridRows: 3}
	rep, err := RunViews(c, ViewYaws)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 4 {
		t.Fatalf("%d rows, want ground truth + 3 turners: %+v", len(rep.Rows), rep.Rows)
	}
	truth, self, swap, still := rep.Rows[0], rep.Rows[1], rep.Rows[2], rep.Rows[3]
	t.Logf("truth %+v\nswap %+v\nstill %+v", truth, swap, still)
	for _, v := range []struct {
		name string
		a, b float64
	}{{"same", self.Same, truth.Same}, {"other", self.Other, truth.Other}, {"auc", self.AUC, truth.AUC}, {"turn", self.Turn, 1}, {"lpips", self.LPIPS, 0}} {
		if math.Abs(v.a-v.b) > 1e-6 {
			t.Errorf("the truth redrawn: %s %.6f, the ground truth's %.6f", v.name, v.a, v.b)
		}
	}
	if truth.AUC < 0.7 {
		t.Errorf("ground truth ROC-AUC %.3f: views of one SynthFace head should look alike even to a random net", truth.AUC)
	}
	if swap.AUC > truth.AUC-0.2 {
		t.Errorf("a different person per view scores ROC-AUC %.3f, the truth %.3f", swap.AUC, truth.AUC)
	}
	if swap.LPIPS < 0.05 {
		t.Errorf("other people's views are %.3f from the truth's", swap.LPIPS)
	}
	if still.Turn > 0.01 || still.Same < 0.999 {
		t.Errorf("a face that never turns: turn %.3f, same %.3f (want 0, 1)", still.Turn, still.Same)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "gt") {
		t.Errorf("notes %q: want gt skipped as 2-D", rep.Notes)
	}
	dir := t.TempDir()
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"views.md", "views.json", "grid_views_mask.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if md := rep.Markdown(); !strings.Contains(md, "| swap | mask |") {
		t.Errorf("markdown lacks the swap row:\n%s", md)
	}

	// No grid rows: the tables, and no grid image.
	c.GridRows, c.Methods = 0, ms[:1]
	rep, err = RunViews(c, []float64{-20, 20})
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "grid_views_mask.png")); err == nil {
		t.Error("a grid was written with --grid-rows 0")
	}

	for _, bad := range []struct {
		c    Config
		yaws []float64
	}{{c, []float64{0}}, {c, []float64{0, 120}}, {Config{N: n, Size: 32}, ViewYaws}} {
		if _, err := RunViews(bad.c, bad.yaws); err == nil {
			t.Errorf("RunViews accepted yaws %v with nets %v", bad.yaws, bad.c.Nets != nil)
		}
	}
}
