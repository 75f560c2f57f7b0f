package eval

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/kinds"
	"ddgi/metrics"
	"ddgi/nn"
	"ddgi/synthface"
	"ddgi/torch"
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
		m, err := NewRegistry().New(n)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	rep, err := Run(Config{Methods: ms, Conds: []kinds.Cond{kinds.Mask, kinds.Scribble}, N: 6, Size: 64, Batch: 4,
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
	// Per-class IoU: NumClasses values whose mean over present classes is mIoU.
	var sum float64
	var present int
	for _, v := range gt.ClassIoU {
		if !math.IsNaN(v) {
			sum, present = sum+v, present+1
		}
	}
	if len(gt.ClassIoU) != synthface.NumClasses || present == 0 || math.Abs(sum/float64(present)-gt.MIoU) > 1e-12 {
		t.Errorf("class IoU %v does not average to mIoU %g", gt.ClassIoU, gt.MIoU)
	}
	if rep.Rows[3].ClassIoU != nil {
		t.Errorf("scribble row has class IoU %v", rep.Rows[3].ClassIoU)
	}
	dir := t.TempDir()
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "results.json")); err != nil || !strings.Contains(string(b), `"class_iou"`) || !strings.Contains(string(b), `"skin"`) {
		t.Errorf("results.json lacks per-class IoU (%v)", err)
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

// BenchmarkMetrics scores batches of 50 generated 64² images with the
// shipped-size nets (random weights cost the same): every metric but the
// final FID/KID, which are computed once per row.
func BenchmarkMetrics(b *testing.B) {
	nets := &Nets{}
	cfg := func(net string) auxnets.Config { c, _ := auxnets.Preset(net, "small64"); return c }
	nets.Identity = auxnets.NewIdentity(cfg(auxnets.NetIdentity), 1)
	nets.Perceptual = auxnets.NewPerceptual(cfg(auxnets.NetPerceptual), 2)
	nets.Parser = auxnets.NewParser(cfg(auxnets.NetParser), 3)
	nets.Attributes = auxnets.NewClassifier(cfg(auxnets.NetAttributes), 4)
	nets.FID = auxnets.NewClassifier(cfg(auxnets.NetFID), 5)
	ss, err := auxnets.Cache(data.NewSynthFace(data.Bench, 64, 50), 2, true, "")
	if err != nil {
		b.Fatal(err)
	}
	a := &accum{conf: metrics.NewConfusion(synthface.NumClasses)}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		inChunks(ss, 50, func(lo int, s []*data.Sample) {
			batch := newBatch(kinds.Mask, s, lo)
			score(a, nets, kinds.Mask, batch, nn.Blur(imagebatch.SampleImages(s), 1))
		})
	}
	b.ReportMetric(float64(b.N*len(ss))/time.Since(start).Seconds(), "images/s")
}

// BenchmarkFIDKID2000 is the once-per-row cost: FID and KID of 2,000
// 128-d features against 2,000.
func BenchmarkFIDKID2000(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	mk := func() [][]float64 {
		x := make([][]float64, 2000)
		for i := range x {
			x[i] = make([]float64, 128)
			for j := range x[i] {
				x[i][j] = r.NormFloat64()
			}
		}
		return x
	}
	x, y := mk(), mk()
	for i := 0; i < b.N; i++ {
		metrics.FID(x, y)
		metrics.KID(x, y, 50, 1000, 1)
	}
}

// TestEvalArtBench: with Config.Art the bench is drawn in that style (its
// prompts name it), style accuracy is scored when an art net is given, and
// the table grows a style column.
func TestEvalArtBench(t *testing.T) {
	gt, err := NewRegistry().New("gt")
	if err != nil {
		t.Fatal(err)
	}
	nets := tinyNets(t)
	c, _ := auxnets.Preset(auxnets.NetArt, "tiny")
	nets.Style = auxnets.NewClassifier(c, 6)
	var prompts []string
	spy := spyMethod{Method: gt, prompts: &prompts}
	rep, err := Run(Config{Methods: []Method{spy}, Conds: []kinds.Cond{kinds.Mask}, N: 4, Size: 64, Batch: 4,
		Workers: 1, Nets: nets, GridRows: 2, Quiet: true, Art: synthface.ArtSketch})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prompts {
		if l := strings.ToLower(p); !strings.Contains(l, "sketch") && !strings.Contains(l, "drawing") {
			t.Errorf("prompt %q does not name the style", p)
		}
	}
	if s := rep.Rows[0].StyleAcc; math.IsNaN(s) || s < 0 || s > 1 {
		t.Errorf("style accuracy %v", s)
	}
	if md := rep.Markdown(); !strings.Contains(md, "Style (sketch)") || !strings.Contains(md, "sketch artworks") {
		t.Errorf("table lacks the style:\n%s", md)
	}
}

// spyMethod records the prompts a method is given.
type spyMethod struct {
	Method
	prompts *[]string
}

func (s spyMethod) Generate(b *Batch) (*torch.Tensor, error) {
	*s.prompts = append(*s.prompts, b.Prompts...)
	return s.Method.Generate(b)
}
