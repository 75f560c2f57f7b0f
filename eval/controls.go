package eval

import (
	"fmt"
	"math"
	"strings"

	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/internal/progress"
	"ddgi/kinds"
	"ddgi/metrics"
	"ddgi/synthface"
	"ddgi/torch"
)

// A Control is one attribute a pair of prompts moves: Hi and Lo differ only
// in it, and the attribute net's probability of Attr should be higher for
// Hi's image than for Lo's (same condition, same seed).
type Control struct {
	Name string
	Attr string // an entry of synthface.AttributeNames
	// Allowed says whether the condition leaves room for the attribute
	// (glasses need the mask's eyeglasses region, a hat its hat region).
	Allowed func(s *data.Sample) bool
	// Prompts returns the pair for a sample whose ground truth is described
	// by p.
	Prompts func(p Person) (hi, lo string)
}

// Person is the part of a ground-truth face the prompts keep fixed.
type Person = synthface.Person

// PersonOf reads a bench sample's attributes.
func PersonOf(s *data.Sample) Person { return synthface.PersonOf(s.Attrs) }

// adding is the control that adds one phrase to the base prompt.
func adding(name, attrName, phrase string, allowed func(*data.Sample) bool) Control {
	return Control{Name: name, Attr: attrName, Allowed: allowed, Prompts: func(p Person) (string, string) {
		return synthface.Describe([]string{p.Age}, p.Noun, []string{p.Hair, phrase}), p.Base()
	}}
}

// Controls are the controllability report's rows (issue: hair colour,
// gender, smiling, age, makeup and lipstick, and glasses, beard and hat
// where the condition has room for them).
var Controls = []Control{
	{Name: "hair colour (blond vs black)", Attr: "Blond_Hair", Allowed: hasHair, Prompts: func(p Person) (string, string) {
		return synthface.Describe([]string{p.Age}, p.Noun, []string{"blond hair"}), synthface.Describe([]string{p.Age}, p.Noun, []string{"black hair"})
	}},
	{Name: "gender (man vs woman)", Attr: "Male", Allowed: always, Prompts: func(p Person) (string, string) {
		return synthface.Describe([]string{p.Age}, "man", []string{p.Hair}), synthface.Describe([]string{p.Age}, "woman", []string{p.Hair})
	}},
	{Name: "age (young vs older)", Attr: "Young", Allowed: always, Prompts: func(p Person) (string, string) {
		return synthface.Describe([]string{"young"}, p.Noun, []string{p.Hair}), synthface.Describe([]string{"older"}, p.Noun, []string{p.Hair})
	}},
	{Name: "smiling", Attr: "Smiling", Allowed: always, Prompts: func(p Person) (string, string) {
		return synthface.Describe([]string{"smiling", p.Age}, p.Noun, []string{p.Hair}), p.Base()
	}},
	adding("heavy makeup", "Heavy_Makeup", "heavy makeup", always),
	adding("lipstick", "Wearing_Lipstick", "lipstick", always),
	adding("eyeglasses (where the truth has them)", "Eyeglasses", "eyeglasses", region(synthface.EyeG)),
	adding("hat (where the truth has one)", "Wearing_Hat", "a hat", region(synthface.Hat)),
	adding("beard (men)", "Beard", "a beard", func(s *data.Sample) bool { return attr(s, "Male") }),
}

func always(*data.Sample) bool { return true }

// hasHair: the hair colour is measured in the mask's hair region, so it
// must be there (≥ 2% of the image).
func hasHair(s *data.Sample) bool { return classShare(s, synthface.Hair) >= 0.02 }

// region allows a control where the ground truth's mask has the class
// (≥ 0.5% of the image); the scribble of the same face is drawn from it.
func region(class uint8) func(*data.Sample) bool {
	return func(s *data.Sample) bool { return classShare(s, class) >= 0.005 }
}

func classShare(s *data.Sample, class uint8) float64 {
	if len(s.Mask) == 0 {
		return 0
	}
	n := 0
	for _, l := range s.Mask {
		if l == class {
			n++
		}
	}
	return float64(n) / float64(len(s.Mask))
}

func attr(s *data.Sample, name string) bool { return synthface.HasAttribute(s.Attrs, name) }

func attrIndex(name string) int {
	if i := synthface.AttributeIndex(name); i >= 0 {
		return i
	}
	panic("eval: unknown attribute " + name)
}

// controlNoise is the smallest probability rise that counts as following
// the prompt: one image scored in different batches differs by ~1e-8
// (batch-size-dependent kernels), which must not count as a response.
const controlNoise = 1e-4

// ControlScore is one control's result for one method and condition.
type ControlScore struct {
	Control string `json:"control"`
	Attr    string `json:"attribute"`
	// N is the number of bench conditions the control was allowed on.
	N int `json:"n"`
	// Right is the share of them where the attribute probability rose from
	// the Lo prompt's image to the Hi prompt's by more than controlNoise;
	// Shift its mean rise.
	Right float64 `json:"right_way"`
	Shift float64 `json:"mean_shift"`
}

// ControlRow is one (method, condition) column of the report.
type ControlRow struct {
	Method string         `json:"method"`
	Cond   kinds.Cond     `json:"cond"`
	Scores []ControlScore `json:"controls"`
	// HairLab is the blond − black difference of the hair region's mean
	// L*a*b* colour, projected on the ground truth's blond − black direction,
	// as a fraction of the ground truth's difference (1 = as far apart as
	// real blond and black-haired people); HairLabRight the share of
	// conditions where it is positive.
	HairLab      float64 `json:"hair_lab_fraction"`
	HairLabRight float64 `json:"hair_lab_right_way"`
	// Diversity is the mean perceptual distance between the base-prompt
	// outputs of neighbouring bench pairs over the same for their ground
	// truths (1 = as varied as the truth).
	Diversity float64 `json:"diversity"`
	// SeedVariation is the mean perceptual distance between the
	// base-prompt outputs of one condition under two seeds, over the same
	// ground-truth neighbour distance as Diversity: how different a face
	// "another seed" gives for the same mask or scribble and prompt.
	SeedVariation float64 `json:"seed_variation"`
}

// ControlReport is `ddgi eval --controls`'s result.
type ControlReport struct {
	N int `json:"n"`
	// Bench names the conditions' source: synthface-bench or synthface-val.
	Bench string `json:"bench"`
	// HairLabGT is the distance in L*a*b* between the mean hair colours of
	// blond- and black-haired ground-truth people (the unit of HairLab).
	HairLabGT float64      `json:"hair_lab_gt"`
	Rows      []ControlRow `json:"rows"`
}

// job is one image a control needs: bench pair i under one prompt, with
// the pair's own seed or (reseed) its second seed.
type job struct {
	sample int
	prompt string
	reseed bool
}

// reseedShift gives a bench pair's second seed for SeedVariation: beyond
// every bench and val index, so it is no other pair's seed.
const reseedShift = 1 << 20

// RunControls renders, for the first c.N bench conditions, every control's
// prompt pair with each method (same condition and seed for both prompts)
// and scores how the attribute net and the hair colour move.
func RunControls(c Config) (rep *ControlReport, err error) {
	if terr := torch.Try(func() { rep, err = runControls(c) }); terr != nil {
		return nil, terr
	}
	return rep, err
}

func runControls(c Config) (*ControlReport, error) {
	if c.N < 2 || c.N > data.BenchSize {
		return nil, fmt.Errorf("eval --controls: n = %d, want 2…%d", c.N, data.BenchSize)
	}
	c.Batch = max(c.Batch, 1)
	ref := c
	ref.N = min(data.BenchSize, max(c.N, 2000))
	pool, err := renderBench(ref)
	if err != nil {
		return nil, err
	}
	bench := pool[:c.N]
	gtBlond, gtBlack, err := hairReference(pool)
	if err != nil {
		return nil, err
	}
	dir := [3]float64{gtBlond[0] - gtBlack[0], gtBlond[1] - gtBlack[1], gtBlond[2] - gtBlack[2]}
	gtDist := math.Sqrt(dir[0]*dir[0] + dir[1]*dir[1] + dir[2]*dir[2])
	rep := &ControlReport{N: c.N, Bench: c.benchName(), HairLabGT: gtDist}

	// Every distinct (pair, prompt) once: "add one thing" controls share the base.
	var jobs []job
	index := map[job]int{}
	need := func(i int, p string) {
		j := job{sample: i, prompt: p}
		if _, ok := index[j]; !ok {
			index[j] = len(jobs)
			jobs = append(jobs, j)
		}
	}
	for i, s := range bench {
		p := PersonOf(s)
		need(i, p.Base())
		j := job{sample: i, prompt: p.Base(), reseed: true}
		index[j] = len(jobs)
		jobs = append(jobs, j)
		for _, ctl := range Controls {
			if ctl.Allowed(s) {
				hi, lo := ctl.Prompts(p)
				need(i, hi)
				need(i, lo)
			}
		}
	}
	nets := c.Nets
	if nets == nil {
		nets = &Nets{}
	}
	for _, cond := range c.Conds {
		for _, m := range c.Methods {
			row, err := controlRow(c, m, cond, bench, jobs, index, nets, dir, gtDist)
			if err != nil {
				return nil, err
			}
			rep.Rows = append(rep.Rows, row)
		}
	}
	return rep, nil
}

// hairReference is the mean hair-region colour of blond- and of
// black-haired ground-truth faces.
func hairReference(pool []*data.Sample) (blond, black [3]float64, err error) {
	var nb, nk int
	for _, s := range pool {
		if !hasHair(s) {
			continue
		}
		isBlond, isBlack := attr(s, "Blond_Hair"), attr(s, "Black_Hair")
		if !isBlond && !isBlack {
			continue
		}
		lab, ok := sampleHairLab(s)
		if !ok {
			continue
		}
		if isBlond {
			addLab(&blond, lab)
			nb++
		} else {
			addLab(&black, lab)
			nk++
		}
	}
	if nb == 0 || nk == 0 {
		return blond, black, fmt.Errorf("eval --controls: the bench has %d blond and %d black-haired faces; need both", nb, nk)
	}
	for k := range blond {
		blond[k] /= float64(nb)
		black[k] /= float64(nk)
	}
	return blond, black, nil
}

func addLab(acc *[3]float64, lab [3]float64) {
	for k := range acc {
		acc[k] += lab[k]
	}
}

// sampleHairLab is the ground truth's mean hair colour.
func sampleHairLab(s *data.Sample) ([3]float64, bool) {
	hw := s.Size * s.Size
	img := make([]float32, 3*hw)
	labels := make([]int64, hw)
	for i := 0; i < hw; i++ {
		for ch := 0; ch < 3; ch++ {
			img[ch*hw+i] = float32(s.Image[3*i+ch])/127.5 - 1
		}
		labels[i] = int64(s.Mask[i])
	}
	return metrics.RegionMeanLab(img, labels, int64(synthface.Hair))
}

// controlOutput is what the report keeps of one generated image.
type controlOutput struct {
	probs  []float32 // attribute probabilities (nil without the net)
	hair   [3]float64
	hairOK bool
	pixels []float32 // [3,S,S] in [-1,1], kept for base prompts only (diversity)
}

func controlRow(c Config, m Method, cond kinds.Cond, bench []*data.Sample, jobs []job, index map[job]int,
	nets *Nets, dir [3]float64, gtDist float64) (ControlRow, error) {
	outs := make([]controlOutput, len(jobs))
	isBase := map[job]bool{}
	for i, s := range bench {
		isBase[job{sample: i, prompt: PersonOf(s).Base()}] = true
		isBase[job{sample: i, prompt: PersonOf(s).Base(), reseed: true}] = true
	}
	bar := progress.NewLogged(fmt.Sprintf("controls %s/%s", m.Name(), cond), 0, int64(len(jobs)), "img")
	for lo := 0; lo < len(jobs); lo += c.Batch {
		js := jobs[lo:min(lo+c.Batch, len(jobs))]
		var gerr error
		torch.Scoped(func() { gerr = generateControls(m, cond, bench, js, outs[lo:], isBase, nets) })
		if gerr != nil {
			return ControlRow{}, gerr
		}
		if !c.Quiet {
			bar.Set(int64(lo+len(js)), nil)
		}
	}
	if !c.Quiet {
		bar.Finish()
	}
	row := ControlRow{Method: m.Name(), Cond: cond, HairLab: math.NaN(), HairLabRight: math.NaN(), Diversity: math.NaN(), SeedVariation: math.NaN()}
	for _, ctl := range Controls {
		sc := ControlScore{Control: ctl.Name, Attr: ctl.Attr, Right: math.NaN(), Shift: math.NaN()}
		a := attrIndex(ctl.Attr)
		var right, shift float64
		var hair, hairRight []float64
		for i, s := range bench {
			if !ctl.Allowed(s) {
				continue
			}
			hi, lo := ctl.Prompts(PersonOf(s))
			oh, ol := outs[index[job{sample: i, prompt: hi}]], outs[index[job{sample: i, prompt: lo}]]
			sc.N++
			if oh.probs != nil {
				d := float64(oh.probs[a] - ol.probs[a])
				shift += d
				if d > controlNoise {
					right++
				}
			}
			if ctl.Attr == "Blond_Hair" && oh.hairOK && ol.hairOK && gtDist > 0 {
				var proj float64
				for k := range dir {
					proj += (oh.hair[k] - ol.hair[k]) * dir[k] / gtDist
				}
				hair = append(hair, proj/gtDist)
				hairRight = append(hairRight, b2f(proj > 0))
			}
		}
		if sc.N > 0 && nets.Attributes != nil {
			sc.Right, sc.Shift = right/float64(sc.N), shift/float64(sc.N)
		}
		if len(hair) > 0 {
			row.HairLab, row.HairLabRight = metrics.Mean(hair), metrics.Mean(hairRight)
		}
		row.Scores = append(row.Scores, sc)
	}
	if nets.Perceptual != nil {
		row.Diversity, row.SeedVariation = diversity(nets, bench, outs, index)
	}
	return row, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// generateControls runs one batch of jobs and keeps their scores.
func generateControls(m Method, cond kinds.Cond, bench []*data.Sample, js []job, outs []controlOutput,
	isBase map[job]bool, nets *Nets) error {
	ss := make([]*data.Sample, len(js))
	for k, j := range js {
		ss[k] = bench[j.sample]
	}
	b := &Batch{Cond: cond, Size: ss[0].Size, Samples: ss, Mask: imagebatch.SampleMasks(ss), Scribble: imagebatch.SampleScribbles(ss)}
	for _, j := range js {
		b.Prompts = append(b.Prompts, j.prompt)
		b.Index = append(b.Index, j.sample) // same seed for every prompt of a pair
		seed := int64(j.sample)
		if j.reseed {
			seed += reseedShift
		}
		b.Seeds = append(b.Seeds, seed)
	}
	out, err := m.Generate(b)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name(), err)
	}
	if s := out.Shape(); len(s) != 4 || s[0] != int64(len(js)) || s[1] != 3 {
		return fmt.Errorf("%s returned shape %v for %d pairs", m.Name(), s, len(js))
	}
	torch.NoGrad(func() {
		out = out.Detach()
		if out.Size(2) != int64(b.Size) {
			out = torch.Interpolate(out, int64(b.Size), int64(b.Size), torch.Bilinear, false)
		}
		out = out.Clamp(-1, 1).Contiguous()
		var probs []float32
		k := len(synthface.AttributeNames)
		if nets.Attributes != nil {
			probs = nets.Attributes.AttributeProbs(out).Float32s()
		}
		pix := out.Float32s()
		masks := b.Mask.Int64s()
		hw := b.Size * b.Size
		for i, j := range js {
			o := &outs[i]
			if probs != nil {
				o.probs = probs[i*k : (i+1)*k]
			}
			o.hair, o.hairOK = metrics.RegionMeanLab(pix[i*3*hw:(i+1)*3*hw], masks[i*hw:(i+1)*hw], int64(synthface.Hair))
			if isBase[j] {
				o.pixels = append([]float32(nil), pix[i*3*hw:(i+1)*3*hw]...)
			}
		}
	})
	return nil
}

// diversity compares the base-prompt outputs of neighbouring bench pairs
// (i, i+1), and of one pair under its two seeds, with the ground truths
// of neighbouring pairs under the perceptual net.
func diversity(nets *Nets, bench []*data.Sample, outs []controlOutput, index map[job]int) (neighbours, seeds float64) {
	var gen, reseeded, gt []float64
	for i := range bench {
		j := (i + 1) % len(bench)
		base := job{sample: i, prompt: PersonOf(bench[i]).Base()}
		a, b := outs[index[base]], outs[index[job{sample: j, prompt: PersonOf(bench[j]).Base()}]]
		base.reseed = true
		c := outs[index[base]]
		s := int64(bench[i].Size)
		torch.Scoped(func() {
			x, y, z := torch.FromFloat32(a.pixels, 1, 3, s, s), torch.FromFloat32(b.pixels, 1, 3, s, s), torch.FromFloat32(c.pixels, 1, 3, s, s)
			gen = append(gen, nets.Perceptual.Distance(x, y).To(torch.Float64).Float64s()...)
			reseeded = append(reseeded, nets.Perceptual.Distance(x, z).To(torch.Float64).Float64s()...)
			gt = append(gt, nets.Perceptual.Distance(imagebatch.SampleImages(bench[i:i+1]), imagebatch.SampleImages(bench[j:j+1])).To(torch.Float64).Float64s()...)
		})
	}
	truth := metrics.Mean(gt)
	return metrics.Mean(gen) / truth, metrics.Mean(reseeded) / truth
}

// Markdown renders one table per condition: controls down, methods across,
// each cell "right-way share (mean probability shift)".
func (r *ControlReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Controllability on %d %s conditions (same condition and seed for both prompts of a pair).\n", r.N, r.Bench)
	fmt.Fprintf(&b, "Cells: share of conditions where the attribute net's probability moved the stated way (mean shift of the probability).\n")
	fmt.Fprintf(&b, "Hair colour in L*a*b*: the blond − black difference of the mask's hair region as a fraction of the ground truth's (%.1f ΔE between blond- and black-haired people).\n", r.HairLabGT)
	conds := []kinds.Cond{}
	seen := map[kinds.Cond]bool{}
	for _, row := range r.Rows {
		if !seen[row.Cond] {
			seen[row.Cond] = true
			conds = append(conds, row.Cond)
		}
	}
	for _, cond := range conds {
		var rows []ControlRow
		for _, row := range r.Rows {
			if row.Cond == cond {
				rows = append(rows, row)
			}
		}
		fmt.Fprintf(&b, "\n### %s\n\n| control | n |", cond)
		for _, row := range rows {
			fmt.Fprintf(&b, " %s |", row.Method)
		}
		b.WriteString("\n|---|---|" + strings.Repeat("---|", len(rows)) + "\n")
		for k, sc := range rows[0].Scores {
			fmt.Fprintf(&b, "| %s | %d |", sc.Control, sc.N)
			for _, row := range rows {
				s := row.Scores[k]
				if math.IsNaN(s.Right) {
					b.WriteString(" – |")
				} else {
					fmt.Fprintf(&b, " %.0f%% (%+.3f) |", 100*s.Right, s.Shift)
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("| hair colour, L*a*b* (fraction of truth; right-way share) | |")
		for _, row := range rows {
			if math.IsNaN(row.HairLab) {
				b.WriteString(" – |")
			} else {
				fmt.Fprintf(&b, " %.2f; %.0f%% |", row.HairLab, 100*row.HairLabRight)
			}
		}
		b.WriteString("\n| diversity (perceptual distance of neighbours / truth's) | |")
		for _, row := range rows {
			fmt.Fprintf(&b, " %s |", fmtNum(row.Diversity, 2))
		}
		b.WriteString("\n| seed variation (perceptual distance of one condition and prompt under two seeds / truth's neighbours') | |")
		for _, row := range rows {
			fmt.Fprintf(&b, " %s |", fmtNum(row.SeedVariation, 2))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// WriteFiles writes controls.md and controls.json into dir.
func (r *ControlReport) WriteFiles(dir string) error {
	return writeReport(dir, "controls.md", r.Markdown(), "controls.json", r.jsonSafe())
}

// jsonSafe maps NaN (not measured) to null.
func (r *ControlReport) jsonSafe() map[string]any {
	rows := make([]map[string]any, len(r.Rows))
	for i, row := range r.Rows {
		scores := make([]map[string]any, len(row.Scores))
		for k, s := range row.Scores {
			scores[k] = map[string]any{"control": s.Control, "attribute": s.Attr, "n": s.N,
				"right_way": jsonNum(s.Right), "mean_shift": jsonNum(s.Shift)}
		}
		rows[i] = map[string]any{"method": row.Method, "cond": row.Cond, "controls": scores,
			"hair_lab_fraction": jsonNum(row.HairLab), "hair_lab_right_way": jsonNum(row.HairLabRight), "diversity": jsonNum(row.Diversity), "seed_variation": jsonNum(row.SeedVariation)}
	}
	return map[string]any{"n": r.N, "hair_lab_gt": jsonNum(r.HairLabGT), "rows": rows}
}
