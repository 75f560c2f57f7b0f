package eval

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/internal/progress"
	"ddgi/kinds"
	"ddgi/metrics"
	"ddgi/synthface"
	"ddgi/torch"
)

// Nets are the scoring networks; a nil net leaves its metrics out (NaN).
type Nets struct {
	Identity   *auxnets.Identity
	Perceptual *auxnets.Perceptual
	Parser     *auxnets.Parser
	Attributes *auxnets.Classifier
	FID        *auxnets.Classifier
	Style      *auxnets.Classifier // the art net: style accuracy
}

// LoadNets loads weights/aux_<net>.safetensors from dir; missing files are
// reported in notes and their metrics skipped.
func LoadNets(dir string) (*Nets, []string, error) {
	n := &Nets{}
	var notes []string
	load := func(net string, f func(path string) error) error {
		path := filepath.Join(dir, "aux_"+net+".safetensors")
		if _, err := os.Stat(path); os.IsNotExist(err) {
			notes = append(notes, fmt.Sprintf("%s missing: its metrics are skipped", path))
			return nil
		}
		return f(path)
	}
	var err error
	errs := []error{
		load(auxnets.NetIdentity, func(p string) error { n.Identity, err = auxnets.LoadIdentity(p, torch.CPU); return err }),
		load(auxnets.NetPerceptual, func(p string) error { n.Perceptual, err = auxnets.LoadPerceptual(p, torch.CPU); return err }),
		load(auxnets.NetParser, func(p string) error { n.Parser, err = auxnets.LoadParser(p, torch.CPU); return err }),
		load(auxnets.NetAttributes, func(p string) error {
			n.Attributes, err = auxnets.LoadClassifier(p, auxnets.NetAttributes, torch.CPU)
			return err
		}),
		load(auxnets.NetFID, func(p string) error { n.FID, err = auxnets.LoadClassifier(p, auxnets.NetFID, torch.CPU); return err }),
		load(auxnets.NetArt, func(p string) error { n.Style, err = auxnets.LoadClassifier(p, auxnets.NetArt, torch.CPU); return err }),
	}
	for _, e := range errs {
		if e != nil {
			return nil, nil, e
		}
	}
	return n, notes, nil
}

// Config of one evaluation.
type Config struct {
	Methods []Method
	Conds   []kinds.Cond
	N       int // bench pairs (≤ data.BenchSize)
	Size    int
	Batch   int
	Workers int
	Nets    *Nets
	// GridRows samples shown in the image grid per condition.
	GridRows int
	Quiet    bool
	// Art renders the bench as artworks of this style (captions name it):
	// the style-transfer benchmark. Style accuracy counts outputs the art
	// net classifies as this style (photo by default).
	Art synthface.Art
	// Val scores SynthFace's held-out val split (data.Val) instead of the
	// bench: for choosing a setting without tuning it on the bench.
	Val bool
}

// Row is one (condition, method) line of the table. NaN = not applicable.
type Row struct {
	Method  string     `json:"method"`
	Cond    kinds.Cond `json:"cond"`
	Sanity  bool       `json:"sanity_check"`
	N       int        `json:"n"`
	FID     float64    `json:"fid"`
	KID     float64    `json:"kid"`
	LPIPS   float64    `json:"lpips"`
	MSSSIM  float64    `json:"ms_ssim"`
	ID      float64    `json:"id"`
	ACC     float64    `json:"acc"`
	MIoU    float64    `json:"miou"`
	AttrAcc float64    `json:"attr_acc"`
	// StyleAcc is the share of outputs the art net classifies as the
	// bench's style (Config.Art).
	StyleAcc float64 `json:"style_acc"`
	Seconds  float64 `json:"generate_seconds"`
	// ClassIoU is the parser's IoU per mask class (synthface.Classes order;
	// NaN where a class is in neither prediction nor input), whose mean is
	// MIoU: which parts a method loses.
	ClassIoU []float64 `json:"class_iou,omitempty"`
}

// Report is an evaluation's result.
type Report struct {
	Bench string   `json:"bench"`
	Art   string   `json:"art"`
	N     int      `json:"n"`
	Size  int      `json:"size"`
	Rows  []Row    `json:"rows"`
	Notes []string `json:"notes,omitempty"`
	// grids per condition (not serialised).
	grids map[kinds.Cond]*gridData
}

// accum gathers one row's sums.
type accum struct {
	fake                  [][]float64
	lpips, ssim, id, attr []float64
	attrHits, attrN       float64
	styleHits, styleN     float64
	conf                  *metrics.Confusion
	secs                  float64
}

// Run evaluates every method under every condition on the first N bench
// samples and returns the report.
func Run(c Config) (rep *Report, err error) {
	if terr := torch.Try(func() { rep, err = run(c) }); terr != nil {
		return nil, terr
	}
	return rep, err
}

func run(c Config) (*Report, error) {
	if c.N < 1 || c.N > data.BenchSize {
		return nil, fmt.Errorf("eval: n = %d, want 1…%d", c.N, data.BenchSize)
	}
	c.Batch = max(c.Batch, 1)
	bench, err := renderBench(c)
	if err != nil {
		return nil, err
	}
	rep := &Report{Bench: c.benchName(), Art: c.Art.String(), N: c.N, Size: c.Size, grids: map[kinds.Cond]*gridData{}}
	nets := c.Nets
	if nets == nil {
		nets = &Nets{}
	}
	// Real features for FID/KID, once.
	var real [][]float64
	if nets.FID != nil {
		inChunks(bench, c.Batch, func(_ int, b []*data.Sample) {
			real = append(real, metrics.Rows(nets.FID.Features(imagebatch.SampleImages(b)))...)
		})
	}
	for _, cond := range c.Conds {
		g := newGrid(cond, bench[:min(c.GridRows, len(bench))], c.Methods)
		rep.grids[cond] = g
		for _, m := range c.Methods {
			a := &accum{conf: metrics.NewConfusion(synthface.NumClasses)}
			bar := progress.NewLogged(fmt.Sprintf("eval %s/%s", m.Name(), cond), 0, int64(len(bench)), "pairs")
			var ferr error
			for lo := 0; lo < len(bench) && ferr == nil; lo += c.Batch {
				b := bench[lo:min(lo+c.Batch, len(bench))]
				torch.Scoped(func() { ferr = generateAndScore(m, a, g, nets, cond, b, lo) })
				if !c.Quiet {
					bar.Set(int64(lo+len(b)), nil)
				}
			}
			if ferr != nil {
				return nil, ferr
			}
			if !c.Quiet {
				bar.Finish()
			}
			rep.Rows = append(rep.Rows, a.row(m, cond, len(bench), real, nets))
		}
	}
	return rep, nil
}

// generateAndScore runs a method on one batch (gradients allowed, for
// methods that optimise per image) and scores the result without them.
func generateAndScore(m Method, a *accum, g *gridData, nets *Nets, cond kinds.Cond, b []*data.Sample, lo int) error {
	batch := newBatch(cond, b, lo)
	t0 := time.Now()
	out, err := m.Generate(batch)
	a.secs += time.Since(t0).Seconds()
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name(), err)
	}
	if s := out.Shape(); len(s) != 4 || s[0] != int64(len(b)) || s[1] != 3 {
		return fmt.Errorf("%s returned shape %v for %d pairs", m.Name(), s, len(b))
	}
	torch.NoGrad(func() {
		out = out.Detach()
		score(a, nets, cond, batch, out)
		g.add(m.Name(), lo, out)
	})
	return nil
}

// score adds one batch's per-pair metrics.
func score(a *accum, n *Nets, cond kinds.Cond, b *Batch, out *torch.Tensor) {
	gt := imagebatch.SampleImages(b.Samples)
	if gt.Size(2) != out.Size(2) {
		out = torch.Interpolate(out, gt.Size(2), gt.Size(3), torch.Bilinear, false)
	}
	out = out.Clamp(-1, 1)
	if n.FID != nil {
		a.fake = append(a.fake, metrics.Rows(n.FID.Features(out))...)
	}
	if n.Perceptual != nil {
		a.lpips = append(a.lpips, n.Perceptual.Distance(out, gt).To(torch.Float64).Float64s()...)
	}
	if gt.Size(2) >= 32 {
		a.ssim = append(a.ssim, metrics.MSSSIM(out, gt).To(torch.Float64).Float64s()...)
	}
	if n.Identity != nil {
		a.id = append(a.id, n.Identity.Cosine(out, gt).To(torch.Float64).Float64s()...)
	}
	if n.Parser != nil && cond == kinds.Mask {
		must(a.conf.Add(n.Parser.Parse(out).Int64s(), b.Mask.Int64s()))
	}
	if n.Attributes != nil {
		h, m := metrics.AttributeAccuracy(n.Attributes.AttributeProbs(out), b.Prompts)
		a.attrHits += h
		a.attrN += m
	}
	if n.Style != nil {
		// The target is each pair's own depiction style (Config.Art).
		for i, s := range n.Style.StyleProbs(out).Argmax(1, false).Int64s() {
			if s == int64(b.Samples[i].Art) {
				a.styleHits++
			}
			a.styleN++
		}
	}
}

func (a *accum) row(m Method, cond kinds.Cond, n int, real [][]float64, nets *Nets) Row {
	r := Row{Method: m.Name(), Cond: cond, Sanity: isSanity(m), N: n, Seconds: a.secs,
		FID: math.NaN(), KID: math.NaN(), ACC: math.NaN(), MIoU: math.NaN(), AttrAcc: math.NaN(), StyleAcc: math.NaN(),
		LPIPS: meanOrNaN(a.lpips), MSSSIM: meanOrNaN(a.ssim), ID: meanOrNaN(a.id)}
	if len(a.fake) > 1 {
		r.FID = metrics.FID(real, a.fake)
		r.KID = metrics.KID(real, a.fake, 50, min(1000, len(a.fake)), 1)
	}
	if nets.Parser != nil && cond == kinds.Mask {
		r.ACC, r.MIoU, r.ClassIoU = a.conf.PixelAccuracy(), a.conf.MeanIoU(), a.conf.IoU()
	}
	if a.attrN > 0 {
		r.AttrAcc = a.attrHits / a.attrN
	}
	if a.styleN > 0 {
		r.StyleAcc = a.styleHits / a.styleN
	}
	return r
}

func meanOrNaN(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return metrics.Mean(v)
}

func must(err error) {
	if err != nil {
		panic(&torch.Error{Op: "eval", Msg: err.Error()})
	}
}

// Prompt is the text condition of bench sample i: one of its captions,
// chosen by index so every method sees the same one.
func Prompt(s *data.Sample, i int) string {
	if len(s.Captions) == 0 {
		return ""
	}
	return s.Captions[i%len(s.Captions)]
}

func newBatch(cond kinds.Cond, ss []*data.Sample, lo int) *Batch {
	b := &Batch{Cond: cond, Size: ss[0].Size, Samples: ss, Mask: imagebatch.SampleMasks(ss), Scribble: imagebatch.SampleScribbles(ss)}
	for i, smp := range ss {
		b.Prompts = append(b.Prompts, Prompt(smp, lo+i))
		b.Index = append(b.Index, lo+i)
	}
	return b
}

// benchName is what the reports call the pairs scored.
func (c Config) benchName() string {
	if c.Val {
		return "synthface-val"
	}
	return "synthface-bench"
}

// benchSet is the dataset of the pairs scored: SynthFace-bench or -val,
// drawn as artworks under Config.Art.
func benchSet(c Config) data.Dataset {
	split := data.Bench
	if c.Val {
		split = data.Val
	}
	if c.Art != synthface.ArtPhoto {
		return data.NewSynthFaceArt(split, c.Size, c.N, 1, []synthface.Art{c.Art})
	}
	return data.NewSynthFace(split, c.Size, c.N)
}

func renderBench(c Config) ([]*data.Sample, error) {
	return auxnets.Cache(benchSet(c), c.Workers, c.Quiet, "render bench")
}

// inChunks is auxnets.InChunks.
var inChunks = auxnets.InChunks
