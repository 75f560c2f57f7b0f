package eval

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/kinds"
	"ddgi/metrics"
	"ddgi/synthface"
	"ddgi/torch"
)

// hairPainter paints the mask's hair region in the colour the prompt
// names and everything else grey, a lighter grey for a pair's second seed:
// it follows hair colour and its seed, nothing else.
type hairPainter struct{}

func (hairPainter) Name() string { return "hair-painter" }
func (hairPainter) Generate(b *Batch) (*torch.Tensor, error) {
	n, s := len(b.Prompts), b.Size
	hw := s * s
	px := make([]float32, n*3*hw)
	masks := b.Mask.Int64s()
	for i, p := range b.Prompts {
		col := [3]float32{0, 0, 0}
		switch {
		case strings.Contains(p, "blond"):
			col = [3]float32{0.8, 0.6, 0.1}
		case strings.Contains(p, "black"):
			col = [3]float32{-0.85, -0.85, -0.85}
		}
		for k := 0; k < hw; k++ {
			for c := 0; c < 3; c++ {
				v := float32(0)
				if b.Seed(i) >= reseedShift {
					v = 0.5
				}
				if masks[i*hw+k] == int64(synthface.Hair) {
					v = col[c]
				}
				px[(i*3+c)*hw+k] = v
			}
		}
	}
	return torch.FromFloat32(px, int64(n), 3, int64(s), int64(s)), nil
}

// The report must tell a method that follows the hair prompt from one that
// ignores the prompt (gt): hair colour moves the truth's way only for the
// first, and nothing moves for the second.
func TestControlsSeparatePromptFollowingFromIgnoring(t *testing.T) {
	gt, err := NewRegistry().New("gt")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := RunControls(Config{Methods: []Method{hairPainter{}, gt}, Conds: []kinds.Cond{kinds.Mask}, N: 12, Size: 32,
		Batch: 16, Workers: 1, Nets: tinyNets(t), Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.HairLabGT < 5 {
		t.Fatalf("ground truth blond/black hair differ by %.2f ΔE; the reference is broken", rep.HairLabGT)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("%d rows", len(rep.Rows))
	}
	painter, truth := rep.Rows[0], rep.Rows[1]
	if !(painter.HairLab > 0.5 && painter.HairLabRight == 1) {
		t.Errorf("hair painter: Lab fraction %.2f, right-way %.2f; want > 0.5 and 1", painter.HairLab, painter.HairLabRight)
	}
	if truth.HairLab != 0 || truth.HairLabRight != 0 {
		t.Errorf("gt ignores the prompt but moved hair colour: %.3f, %.2f", truth.HairLab, truth.HairLabRight)
	}
	for _, sc := range truth.Scores {
		if sc.N > 0 && (sc.Right != 0 || math.Abs(sc.Shift) > 1e-6) {
			t.Errorf("gt ignores the prompt but %s moved: %+v", sc.Control, sc)
		}
	}
	// Every condition gets gender, age and smiling; eyeglasses only where the truth has them.
	byName := map[string]ControlScore{}
	for _, sc := range painter.Scores {
		byName[sc.Control] = sc
	}
	if byName["gender (man vs woman)"].N != 12 || byName["smiling"].N != 12 {
		t.Errorf("always-allowed controls ran on %d / %d of 12", byName["gender (man vs woman)"].N, byName["smiling"].N)
	}
	if truth.Diversity < 0 || math.IsNaN(truth.Diversity) || math.Abs(truth.Diversity-1) > 1e-6 {
		t.Errorf("gt diversity %.4f, want 1 (its outputs are the truth)", truth.Diversity)
	}
	if truth.SeedVariation != 0 {
		t.Errorf("gt ignores the seed but varies with it by %.4f", truth.SeedVariation)
	}
	if !(painter.SeedVariation > 0.05) {
		t.Errorf("the painter's second seed shades its background, seed variation %.4f", painter.SeedVariation)
	}
	dir := t.TempDir()
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	js, err := os.ReadFile(filepath.Join(dir, "controls.json"))
	if err != nil || json.Unmarshal(js, &back) != nil {
		t.Fatalf("controls.json unreadable: %v", err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "controls.md"))
	if !strings.Contains(string(md), "hair-painter") || !strings.Contains(string(md), "hair colour") || !strings.Contains(string(md), "seed variation") {
		t.Errorf("controls.md lacks the method or the hair row:\n%s", md)
	}
}

func TestDescribeWritesCaptionVocabulary(t *testing.T) {
	p := Person{Noun: "woman", Age: "older", Hair: "brown hair"}
	for _, c := range []struct{ got, want string }{
		{p.Base(), "An older woman with brown hair."},
		{synthface.Describe([]string{"smiling", "young"}, "man", []string{"blond hair", "eyeglasses"}), "A smiling young man with blond hair and eyeglasses."},
		{synthface.Describe([]string{"young"}, "man", []string{"", "a hat"}), "A young man with a hat."},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	// Each control's pair must state its attribute in the caption parser's
	// terms: Hi asserts it (or Lo denies it) — otherwise attribute accuracy
	// and the controls would disagree on what the prompt asked.
	for _, ctl := range Controls {
		hi, lo := ctl.Prompts(p)
		a := attrIndex(ctl.Attr)
		stated := func(s string) (bool, bool) {
			for _, m := range synthface.CaptionAttributes(s) {
				if m.Index == a {
					return m.Value, true
				}
			}
			return false, false
		}
		vh, okh := stated(hi)
		vl, okl := stated(lo)
		if !(okh && vh) && !(okl && !vl) {
			t.Errorf("%s: %q / %q do not state %s", ctl.Name, hi, lo, ctl.Attr)
		}
		if okh && okl && vh == vl {
			t.Errorf("%s: both prompts state %s = %v", ctl.Name, ctl.Attr, vh)
		}
	}
}

func TestSRGBToLabKnownColours(t *testing.T) {
	for _, c := range []struct {
		rgb [3]float64
		lab [3]float64
	}{
		{[3]float64{1, 1, 1}, [3]float64{100, 0, 0}},
		{[3]float64{0, 0, 0}, [3]float64{0, 0, 0}},
		{[3]float64{1, 0, 0}, [3]float64{53.24, 80.09, 67.20}},
	} {
		got := metrics.SRGBToLab(c.rgb[0], c.rgb[1], c.rgb[2])
		for k := range got {
			if math.Abs(got[k]-c.lab[k]) > 0.05 {
				t.Errorf("Lab%v = %v, want %v", c.rgb, got, c.lab)
				break
			}
		}
	}
}
