package eval

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/auxnets"
)

func tinyNets(t *testing.T) *Nets {
	t.Helper()
	cfg := func(net string) auxnets.Config {
		c, err := auxnets.Preset(net, "tiny")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return &Nets{
		Identity:   auxnets.NewIdentity(cfg(auxnets.NetIdentity), 1),
		Perceptual: auxnets.NewPerceptual(cfg(auxnets.NetPerceptual), 2),
		Parser:     auxnets.NewParser(cfg(auxnets.NetParser), 3),
		Attributes: auxnets.NewClassifier(cfg(auxnets.NetAttributes), 4),
		FID:        auxnets.NewClassifier(cfg(auxnets.NetFID), 5),
	}
}

// The pipeline end to end on a handful of pairs: gt must score perfectly
// on every metric that compares with the ground truth, blur worse.
func TestEvalPipelineGroundTruth(t *testing.T) {
	var ms []Method
	for _, n := range []string{"gt", "blur", "paint"} {
		m, err := New(n)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	rep, err := Run(Config{Methods: ms, Conds: []Cond{CondMask, CondScribble}, N: 6, Size: 64, Batch: 4,
		Workers: 1, Nets: tinyNets(t), GridRows: 2, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 6 {
		t.Fatalf("%d rows, want 6", len(rep.Rows))
	}
	gt, blur := rep.Rows[0], rep.Rows[1]
	if gt.Method != "gt" || !gt.Sanity {
		t.Fatalf("first row %+v", gt)
	}
	for name, c := range map[string][2]float64{"FID": {gt.FID, 0}, "LPIPS": {gt.LPIPS, 0}, "MS-SSIM": {gt.MSSSIM, 1}, "ID": {gt.ID, 1}} {
		if math.Abs(c[0]-c[1]) > 1e-4 {
			t.Errorf("gt %s = %g, want %g", name, c[0], c[1])
		}
	}
	if !(blur.LPIPS > gt.LPIPS && blur.MSSSIM < gt.MSSSIM && blur.FID > gt.FID) {
		t.Errorf("blur %+v not worse than gt %+v", blur, gt)
	}
	if math.IsNaN(gt.ACC) || math.IsNaN(gt.AttrAcc) || !math.IsNaN(rep.Rows[3].ACC) {
		t.Errorf("ACC/attr acc applicability wrong: %+v / %+v", gt, rep.Rows[3])
	}
	dir := t.TempDir()
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"table.md", "results.json", "grid_mask.png", "grid_scribble.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	md := rep.Markdown()
	if !strings.Contains(md, "gt (sanity check)") || !strings.Contains(md, "Text + scribble") {
		t.Errorf("table:\n%s", md)
	}
}
