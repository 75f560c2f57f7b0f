package eval

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"os"
	"path/filepath"
	"strings"

	"ddgi/data"
	"ddgi/internal/imageio"
	"ddgi/kinds"
	"ddgi/synthface"
	"ddgi/torch"
)

// gridData holds the grid's tiles for one condition: per sample the
// condition, the prompt and the ground truth, then each method's output.
type gridData struct {
	cond    kinds.Cond
	samples []*data.Sample
	methods []string
	outs    map[string][]image.Image
}

func newGrid(cond kinds.Cond, ss []*data.Sample, ms []Method) *gridData {
	g := &gridData{cond: cond, samples: ss, outs: map[string][]image.Image{}}
	for _, m := range ms {
		g.methods = append(g.methods, m.Name())
	}
	return g
}

// add keeps the outputs of grid samples from a batch starting at lo.
func (g *gridData) add(method string, lo int, out *torch.Tensor) {
	if lo >= len(g.samples) {
		return
	}
	k := min(int(out.Size(0)), len(g.samples)-lo)
	imgs, err := imageio.FromTensor(out.Narrow(0, 0, int64(k)))
	if err != nil {
		return
	}
	g.outs[method] = append(g.outs[method], imgs...)
}

const tileSide = 128

func upscale(img image.Image) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, tileSide, tileSide))
	for y := 0; y < tileSide; y++ {
		for x := 0; x < tileSide; x++ {
			out.Set(x, y, img.At(b.Min.X+x*b.Dx()/tileSide, b.Min.Y+y*b.Dy()/tileSide))
		}
	}
	return out
}

// textTile prints the prompt word-wrapped on white.
func textTile(s string) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, tileSide, tileSide))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	line, y := "", 12
	flush := func() {
		imageio.Label(img, 2, y, line, tileSide-2)
		line, y = "", y+13
	}
	for _, w := range strings.Fields(s) {
		if len(line)+len(w)+1 > (tileSide-4)/7 && line != "" {
			flush()
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		flush()
	}
	return img
}

// image lays out condition | text | ground truth | each method.
func (g *gridData) image() *image.RGBA {
	var tiles []image.Image
	var caps []string
	for i, s := range g.samples {
		row := []image.Image{upscale(conditionTile(g.cond, s)), textTile(Prompt(s, i)), upscale(imageio.RGB(s.Image, s.Size, s.Size))}
		names := []string{string(g.cond), "text", "ground truth"}
		for _, m := range g.methods {
			if i < len(g.outs[m]) {
				row = append(row, upscale(g.outs[m][i]))
				names = append(names, m)
			}
		}
		tiles = append(tiles, row...)
		caps = headerCaptions(caps, names, i == 0)
	}
	return imageio.Grid(tiles, caps, 3+len(g.methods), 2)
}

// headerCaptions adds a grid row's tile names as captions on the first
// row and blanks below it.
func headerCaptions(caps, names []string, first bool) []string {
	for _, n := range names {
		if !first {
			n = ""
		}
		caps = append(caps, n)
	}
	return caps
}

// conditionTile draws a sample's mask in class colours or its scribble
// as dark strokes on white.
func conditionTile(cond kinds.Cond, s *data.Sample) image.Image {
	if cond == kinds.Scribble {
		inv := make([]uint8, len(s.Scribble))
		for p, v := range s.Scribble {
			inv[p] = 255 - v
		}
		return imageio.RGB(grayToRGB(inv), s.Size, s.Size)
	}
	return imageio.RGB(data.ColorizeMask(s.Mask), s.Size, s.Size)
}

func grayToRGB(g []uint8) []uint8 {
	out := make([]uint8, 3*len(g))
	for i, v := range g {
		out[3*i], out[3*i+1], out[3*i+2] = v, v, v
	}
	return out
}

// fmtNum prints a metric or "–" for NaN.
func fmtNum(v float64, prec int) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

// Markdown renders the report shaped like the paper's Table 1 (plus KID
// and attribute accuracy).
func (r *Report) Markdown() string {
	var b strings.Builder
	bench := r.Bench
	if r.Art != "" && r.Art != "photo" {
		bench += " drawn as " + r.Art + " artworks"
	}
	fmt.Fprintf(&b, "Results on %s (%d pairs, %d², %s). FID/KID use ddgi's SynthFace feature extractor, "+
		"not Inception; LPIPS uses F, ID uses R, ACC/mIoU use ddgi's parser against the input mask; see docs/eval.md.\n\n",
		bench, r.N, r.Size, "metrics from ddgi's own SynthFace-trained nets")
	style := false
	for _, row := range r.Rows {
		style = style || !math.IsNaN(row.StyleAcc)
	}
	head, rule, styleCol := "", "", func(Row) string { return "" }
	if style {
		head, rule = " Style ("+r.Art+")↑ (%) |", "---|"
		styleCol = func(row Row) string { return " " + fmtNum(row.StyleAcc*100, 1) + " |" }
	}
	b.WriteString("| Input conditions | Method | FID↓ | KID×10³↓ | LPIPS↓ | MS-SSIM↑ | ID↑ | ACC↑ (%) | mIoU↑ (%) | Attr. acc.↑ (%) |" + head + " s/pair |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|" + rule + "---|\n")
	for _, row := range r.Rows {
		name := row.Method
		if row.Sanity {
			name += " (sanity check)"
		}
		in := "Text + mask"
		if row.Cond == kinds.Scribble {
			in = "Text + scribble"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |%s %s |\n", in, name,
			fmtNum(row.FID, 2), fmtNum(row.KID*1000, 2), fmtNum(row.LPIPS, 3), fmtNum(row.MSSSIM, 3), fmtNum(row.ID, 3),
			fmtNum(row.ACC*100, 2), fmtNum(row.MIoU*100, 2), fmtNum(row.AttrAcc*100, 2), styleCol(row), fmtNum(row.Seconds/float64(max(row.N, 1)), 4))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nNote: %s\n", n)
	}
	return b.String()
}

// WriteFiles writes table.md, results.json and grid_<cond>.png into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := writeReport(dir, "table.md", r.Markdown(), "results.json", r.jsonSafe()); err != nil {
		return err
	}
	for cond, g := range r.grids {
		if len(g.samples) == 0 {
			continue
		}
		if err := imageio.SavePNG(filepath.Join(dir, "grid_"+string(cond)+".png"), g.image()); err != nil {
			return err
		}
	}
	return nil
}

// writeReport writes a report's markdown and JSON into dir, each file
// atomically.
func writeReport(dir, mdName, md, jsonName string, v any) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := imageio.WriteAtomic(filepath.Join(dir, mdName), []byte(md)); err != nil {
		return err
	}
	js, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return imageio.WriteAtomic(filepath.Join(dir, jsonName), js)
}

// jsonNum is a metric for JSON: NaN and ±Inf (not measured or not
// applicable) become null, which encoding/json cannot write otherwise.
func jsonNum(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

// jsonSafe maps NaN (not applicable) to null.
func (r *Report) jsonSafe() map[string]any {
	rows := make([]map[string]any, len(r.Rows))
	for i, row := range r.Rows {
		m := map[string]any{"method": row.Method, "cond": row.Cond}
		m["sanity_check"], m["n"], m["generate_seconds"] = row.Sanity, row.N, row.Seconds
		for k, v := range map[string]float64{"fid": row.FID, "kid": row.KID, "lpips": row.LPIPS, "ms_ssim": row.MSSSIM,
			"id": row.ID, "acc": row.ACC, "miou": row.MIoU, "attr_acc": row.AttrAcc, "style_acc": row.StyleAcc} {
			m[k] = jsonNum(v)
		}
		if row.ClassIoU != nil {
			iou := map[string]any{}
			for k, v := range row.ClassIoU {
				iou[synthface.Classes[k]] = jsonNum(v)
			}
			m["class_iou"] = iou
		}
		rows[i] = m
	}
	return map[string]any{"bench": r.Bench, "art": r.Art, "n": r.N, "size": r.Size, "rows": rows, "notes": r.Notes}
}
