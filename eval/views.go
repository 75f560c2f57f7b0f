package eval

import (
	"errors"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"strings"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/internal/imageio"
	"ddgi/internal/progress"
	"ddgi/kinds"
	"ddgi/metrics"
	"ddgi/synthface"
	"ddgi/torch"
)

// Turner is a method that draws 3-D faces: Turn renders each pair's face
// from every camera in cams (EG3D's 25-float labels), the face's code
// computed once, as one [N,3,S,S] tensor in [-1,1] per camera.
type Turner interface {
	Method
	// Turns says whether this method's faces are 3-D (false: Turn is
	// not called; a 2-D GAN has no other views).
	Turns() bool
	Turn(b *Batch, cams [][25]float32) ([]*torch.Tensor, error)
}

// ViewRow is one source's view consistency: the ground truth's
// (Method "ground truth", no condition) or a method's under one condition.
type ViewRow struct {
	Method string     `json:"method"`
	Cond   kinds.Cond `json:"cond,omitempty"`
	// Same and Other are the mean cosine similarities of the identity
	// net's embeddings between two views of one head and between the same
	// two views of neighbouring heads; AUC is the ROC-AUC of the first
	// over the second (0.5: a head's views look no more alike than
	// different people).
	Same  float64 `json:"same_head_cosine"`
	Other float64 `json:"other_head_cosine"`
	AUC   float64 `json:"roc_auc"`
	// Turn is the mean perceptual distance between two views of one head
	// over the ground truth's: 1 turns as much as the truth, 0 shows one
	// image from every camera (which would make Same 1 without turning).
	Turn float64 `json:"turn"`
	// LPIPS is the mean perceptual distance of each view to the truth's
	// view of that head from the same camera (the truth: 0).
	LPIPS float64 `json:"lpips_to_truth_view"`
}

// ViewReport is `ddgi eval --views`'s result.
type ViewReport struct {
	N     int       `json:"n"`
	Bench string    `json:"bench"`
	Yaws  []float64 `json:"yaws_deg"`
	Rows  []ViewRow `json:"rows"`
	// Notes name the methods that were skipped (2-D).
	Notes []string `json:"notes,omitempty"`
	grids map[kinds.Cond]*viewGrid
}

// ViewYaws are the report's default cameras (degrees, pitch 0): a frontal
// view and two turned ones well inside the ±50° SynthFace trains on.
var ViewYaws = []float64{-30, 0, 30}

// CheckYaws accepts the report's cameras: at least two yaws, each within
// ±90°.
func CheckYaws(yaws []float64) error {
	if len(yaws) < 2 {
		return fmt.Errorf("%d yaws, want at least 2", len(yaws))
	}
	for _, y := range yaws {
		if math.IsNaN(y) || math.Abs(y) > 90 {
			return fmt.Errorf("yaw %g°, want within ±90°", y)
		}
	}
	return nil
}

// RunViews renders the first c.N bench heads from each yaw (degrees, pitch
// 0, SynthFace's default orbit): the ground truth redrawn by SynthFace, each
// 3-D method from its code for the pair's prompt and condition; and scores
// whether the views of one head keep its identity (ViewRow).
func RunViews(c Config, yaws []float64) (rep *ViewReport, err error) {
	if terr := torch.Try(func() { rep, err = runViews(c, yaws) }); terr != nil {
		return nil, terr
	}
	return rep, err
}

func runViews(c Config, yaws []float64) (*ViewReport, error) {
	if c.N < 2 || c.N > data.BenchSize {
		return nil, fmt.Errorf("eval --views: n = %d, want 2…%d", c.N, data.BenchSize)
	}
	if err := CheckYaws(yaws); err != nil {
		return nil, fmt.Errorf("eval --views: %w", err)
	}
	nets := c.Nets
	if nets == nil || nets.Identity == nil || nets.Perceptual == nil {
		return nil, errors.New("eval --views needs the identity and perceptual nets (aux_identity, aux_perceptual)")
	}
	c.Batch = max(c.Batch, 1)
	ds := benchSet(c)
	viewer, ok := ds.(data.Viewer)
	if !ok {
		return nil, errors.New("eval --views: the bench cannot be redrawn from other cameras")
	}
	bench, err := renderBench(c)
	if err != nil {
		return nil, err
	}
	cams := make([][25]float32, len(yaws))
	for k, y := range yaws {
		cams[k] = synthface.OrbitCamera(y*math.Pi/180, 0, synthface.DefaultRadius, synthface.DefaultFocal).EG3D()
	}
	rep := &ViewReport{N: c.N, Bench: c.benchName(), Yaws: yaws, grids: map[kinds.Cond]*viewGrid{}}
	rows := max(min(c.GridRows, c.N), 0)

	// The ground truth: each head redrawn from every camera.
	truth := make([]*torch.Tensor, len(yaws))
	defer func() {
		for _, t := range truth {
			if t != nil {
				t.Free()
			}
		}
	}()
	var gtTiles [][]image.Image
	for k, y := range yaws {
		views, err := auxnets.Cache(data.Turned(viewer, cams[k]), c.Workers, c.Quiet, fmt.Sprintf("views ground truth %+g°", y))
		if err != nil {
			return nil, err
		}
		truth[k] = persist(imagebatch.SampleImages(views))
		gtTiles = append(gtTiles, tilesOf(truth[k], rows))
	}
	gtEmb := embedViews(nets, truth, c.Batch)
	gtTurn := turnDistance(nets, truth, c.Batch)
	same, other, auc := viewScores(gtEmb)
	rep.Rows = append(rep.Rows, ViewRow{Method: "ground truth", Same: same, Other: other, AUC: auc, Turn: 1})

	for _, cond := range c.Conds {
		g := &viewGrid{cond: cond, samples: bench[:rows], yaws: yaws, truth: gtTiles, outs: map[string][][]image.Image{}}
		for _, m := range c.Methods {
			t, ok := m.(Turner)
			if !ok || !t.Turns() {
				rep.Notes = appendOnce(rep.Notes, m.Name()+" draws 2-D faces: no views to compare")
				continue
			}
			outs, err := turnAll(c, t, cond, bench, cams)
			if err != nil {
				return nil, err
			}
			same, other, auc := viewScores(embedViews(nets, outs, c.Batch))
			row := ViewRow{Method: m.Name(), Cond: cond, Same: same, Other: other, AUC: auc,
				Turn: turnDistance(nets, outs, c.Batch) / gtTurn, LPIPS: viewDistance(nets, outs, truth, c.Batch)}
			rep.Rows = append(rep.Rows, row)
			g.methods = append(g.methods, m.Name())
			for _, o := range outs {
				g.outs[m.Name()] = append(g.outs[m.Name()], tilesOf(o, rows))
				o.Free()
			}
		}
		if len(g.methods) > 0 && rows > 0 {
			rep.grids[cond] = g
		}
	}
	return rep, nil
}

// persist takes t out of every scope: the report frees it.
func persist(t *torch.Tensor) *torch.Tensor {
	torch.Persist(t)
	return t
}

func appendOnce(notes []string, s string) []string {
	for _, n := range notes {
		if n == s {
			return notes
		}
	}
	return append(notes, s)
}

// turnAll runs a 3-D method over the bench in batches: per camera, every
// head's view [N,3,S,S] at the bench's size.
func turnAll(c Config, m Turner, cond kinds.Cond, bench []*data.Sample, cams [][25]float32) ([]*torch.Tensor, error) {
	parts := make([][]*torch.Tensor, len(cams))
	bar := progress.NewLogged(fmt.Sprintf("views %s/%s", m.Name(), cond), 0, int64(len(bench)), "heads")
	for lo := 0; lo < len(bench); lo += c.Batch {
		ss := bench[lo:min(lo+c.Batch, len(bench))]
		var err error
		torch.Scoped(func() {
			b := newBatch(cond, ss, lo)
			var views []*torch.Tensor
			if views, err = m.Turn(b, cams); err != nil {
				err = fmt.Errorf("%s: %w", m.Name(), err)
				return
			}
			if len(views) != len(cams) {
				err = fmt.Errorf("%s returned %d views for %d cameras", m.Name(), len(views), len(cams))
				return
			}
			torch.NoGrad(func() {
				for k, v := range views {
					if s := v.Shape(); len(s) != 4 || s[0] != int64(len(ss)) || s[1] != 3 {
						err = fmt.Errorf("%s returned shape %v for %d heads", m.Name(), s, len(ss))
						return
					}
					if v.Size(2) != int64(b.Size) {
						v = torch.Interpolate(v, int64(b.Size), int64(b.Size), torch.Bilinear, false)
					}
					parts[k] = append(parts[k], persist(v.Detach().Clamp(-1, 1)))
				}
			})
			for _, v := range views {
				v.Free()
			}
		})
		if err != nil {
			for _, p := range parts {
				for _, t := range p {
					t.Free()
				}
			}
			return nil, err
		}
		if !c.Quiet {
			bar.Set(int64(lo+len(ss)), nil)
		}
	}
	if !c.Quiet {
		bar.Finish()
	}
	outs := make([]*torch.Tensor, len(cams))
	for k, p := range parts {
		torch.Scoped(func() { outs[k] = persist(torch.Cat(p, 0)) })
		for _, t := range p {
			t.Free()
		}
	}
	return outs, nil
}

// embedViews is the identity net's unit embeddings per view and head,
// [view][head][dim], computed batch rows at a time.
func embedViews(n *Nets, views []*torch.Tensor, batch int) [][][]float32 {
	out := make([][][]float32, len(views))
	for k, v := range views {
		inRows(v, batch, func(x *torch.Tensor) {
			e := n.Identity.Embed(x).Contiguous()
			d := int(e.Size(1))
			flat := e.Float32s()
			for i := 0; i < int(e.Size(0)); i++ {
				out[k] = append(out[k], flat[i*d:(i+1)*d])
			}
		})
	}
	return out
}

// inRows calls f on x's rows batch at a time, without gradients, each
// call in a scope of its own (the nets' activations for thousands of
// heads at once would not fit).
func inRows(x *torch.Tensor, batch int, f func(rows *torch.Tensor)) {
	n := x.Size(0)
	for lo := int64(0); lo < n; lo += int64(batch) {
		torch.Scoped(func() { torch.NoGrad(func() { f(x.Narrow(0, lo, min(int64(batch), n-lo))) }) })
	}
}

// viewScores compares every pair of views (k < l) of each head i with the
// same two views of heads i and i+1: the positives share a head, the
// negatives do not, and both span the same change of camera, so the score
// measures identity, not pose. It returns the mean cosine of each and the
// ROC-AUC of positives over negatives.
func viewScores(emb [][][]float32) (same, other, auc float64) {
	var scores []float64
	var pos []bool
	var s, o []float64
	heads := len(emb[0])
	for k := range emb {
		for l := k + 1; l < len(emb); l++ {
			for i := 0; i < heads; i++ {
				a, b := cosine(emb[k][i], emb[l][i]), cosine(emb[k][i], emb[l][(i+1)%heads])
				s, o = append(s, a), append(o, b)
				scores, pos = append(scores, a, b), append(pos, true, false)
			}
		}
	}
	return metrics.Mean(s), metrics.Mean(o), metrics.ROCAUC(scores, pos)
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// turnDistance is the mean perceptual distance between two views of one
// head, over every pair of views.
func turnDistance(n *Nets, views []*torch.Tensor, batch int) float64 {
	var d []float64
	for k := range views {
		for l := k + 1; l < len(views); l++ {
			d = append(d, pairDistances(n, views[k], views[l], batch)...)
		}
	}
	return metrics.Mean(d)
}

// viewDistance is the mean perceptual distance of each view to the
// truth's view from the same camera.
func viewDistance(n *Nets, views, truth []*torch.Tensor, batch int) float64 {
	var d []float64
	for k := range views {
		d = append(d, pairDistances(n, views[k], truth[k], batch)...)
	}
	return metrics.Mean(d)
}

// pairDistances is F's distance between rows i of a and b, batch rows at
// a time.
func pairDistances(n *Nets, a, b *torch.Tensor, batch int) []float64 {
	var d []float64
	ab := torch.Cat([]*torch.Tensor{a, b}, 1) // [N,6,S,S]: one tensor to walk in rows
	defer ab.Free()
	inRows(ab, batch, func(x *torch.Tensor) {
		d = append(d, n.Perceptual.Distance(x.Narrow(1, 0, 3), x.Narrow(1, 3, 3)).To(torch.Float64).Float64s()...)
	})
	return d
}

// tilesOf keeps the first n images of a batch for the grid.
func tilesOf(t *torch.Tensor, n int) []image.Image {
	if n <= 0 {
		return nil
	}
	imgs, err := imageio.FromTensor(t.Narrow(0, 0, int64(min(n, int(t.Size(0))))))
	if err != nil {
		return nil
	}
	return imgs
}

// viewGrid lays out, per head, the condition, the truth's views and each
// method's views.
type viewGrid struct {
	cond    kinds.Cond
	samples []*data.Sample
	yaws    []float64
	truth   [][]image.Image            // [view][head]
	methods []string                   // in order
	outs    map[string][][]image.Image // [view][head]
}

func (g *viewGrid) image() *image.RGBA {
	var tiles []image.Image
	var caps []string
	for i, s := range g.samples {
		row := []image.Image{upscale(conditionTile(g.cond, s))}
		names := []string{string(g.cond)}
		add := func(name string, views [][]image.Image) {
			for k, v := range views {
				if i < len(v) {
					row = append(row, upscale(v[i]))
					names = append(names, fmt.Sprintf("%s %+g°", name, g.yaws[k]))
				}
			}
		}
		add("truth", g.truth)
		for _, m := range g.methods {
			add(m, g.outs[m])
		}
		tiles = append(tiles, row...)
		caps = headerCaptions(caps, names, i == 0)
	}
	return imageio.Grid(tiles, caps, 1+len(g.yaws)*(1+len(g.methods)), 2)
}

// Markdown renders the view-consistency table.
func (r *ViewReport) Markdown() string {
	var b strings.Builder
	ys := make([]string, len(r.Yaws))
	for k, y := range r.Yaws {
		ys[k] = fmt.Sprintf("%+g°", y)
	}
	fmt.Fprintf(&b, "View consistency on %d %s heads, each drawn at yaw %s (pitch 0).\n", r.N, r.Bench, strings.Join(ys, ", "))
	b.WriteString("Same / other: mean cosine of the identity net's embeddings between two views of one head / the same two views of neighbouring heads; ")
	b.WriteString("ROC-AUC of same over other (0.5: a head's views look no more alike than different people); ")
	b.WriteString("turn: perceptual distance between a head's views over the truth's (0: the same image from every camera); ")
	b.WriteString("LPIPS: perceptual distance of each view to the truth's from the same camera.\n\n")
	b.WriteString("| source | cond | same ↑ | other | ROC-AUC ↑ | turn | LPIPS ↓ |\n|---|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		cond := string(row.Cond)
		if cond == "" {
			cond = "–"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", row.Method, cond, fmtNum(row.Same, 3), fmtNum(row.Other, 3), fmtNum(row.AUC, 3),
			fmtNum(row.Turn, 2), fmtNum(row.LPIPS, 3))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nNote: %s.\n", n)
	}
	return b.String()
}

// WriteFiles writes views.md, views.json and grid_views_<cond>.png into dir.
func (r *ViewReport) WriteFiles(dir string) error {
	rows := make([]map[string]any, len(r.Rows))
	for i, row := range r.Rows {
		rows[i] = map[string]any{"method": row.Method, "cond": row.Cond, "same_head_cosine": jsonNum(row.Same),
			"other_head_cosine": jsonNum(row.Other), "roc_auc": jsonNum(row.AUC), "turn": jsonNum(row.Turn), "lpips_to_truth_view": jsonNum(row.LPIPS)}
	}
	js := map[string]any{"n": r.N, "bench": r.Bench, "yaws_deg": r.Yaws, "rows": rows, "notes": r.Notes}
	if err := writeReport(dir, "views.md", r.Markdown(), "views.json", js); err != nil {
		return err
	}
	for cond, g := range r.grids {
		if err := imageio.SavePNG(filepath.Join(dir, "grid_views_"+string(cond)+".png"), g.image()); err != nil {
			return err
		}
	}
	return nil
}
