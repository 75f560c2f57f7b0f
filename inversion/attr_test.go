package inversion

import (
	"context"
	"math"
	"strings"
	"testing"

	"ddgi/data"
	"ddgi/synthface"
	"ddgi/torch"
	"ddgi/train"
)

// meanCritic scores every attribute by a fixed signed weight times the
// image's mean brightness: differentiable, so a step can follow it.
type meanCritic struct{ w *torch.Tensor }

func newMeanCritic(k int64) *meanCritic {
	v := make([]float32, k)
	for i := range v {
		v[i] = float32(i%3) - 1
	}
	w := torch.FromFloat32(v, 1, k)
	torch.Persist(w)
	return &meanCritic{w: w}
}

func (c *meanCritic) Logits(x *torch.Tensor) *torch.Tensor {
	return x.Flatten(1, 3).Mean([]int64{1}, true).MulScalar(4).Mul(c.w)
}

func attrIndex(t *testing.T, name string) int {
	for i, n := range synthface.AttributeNames {
		if n == name {
			return i
		}
	}
	t.Fatalf("no attribute %s", name)
	return -1
}

func TestStatedAttributesFollowTheCaption(t *testing.T) {
	k := int64(len(synthface.AttributeNames))
	y, m := StatedAttributes([]string{"A smiling woman with blond hair.", "A photo."}, k, torch.CPU)
	yv, mv := y.Float32s(), m.Float32s()
	for name, want := range map[string]float32{"Smiling": 1, "Blond_Hair": 1, "Male": 0} {
		i := attrIndex(t, name)
		if mv[i] != 1 || yv[i] != want {
			t.Errorf("%s: stated %v target %v, want stated with target %v", name, mv[i], yv[i], want)
		}
	}
	var n float32
	for _, v := range mv[k:] {
		n += v
	}
	if n != 0 {
		t.Errorf("a caption stating nothing marked %v attributes", n)
	}
}

func TestPromptAttributeLossIsMaskedBCE(t *testing.T) {
	k := int64(len(synthface.AttributeNames))
	c := newMeanCritic(k)
	x := torch.Randn(torch.NewGenerator(1), []int64{2, 3, 8, 8}, torch.Float32, torch.CPU)
	prompts := []string{"A smiling woman with blond hair.", "A photo."}
	y, m := StatedAttributes(prompts, k, torch.CPU)
	got := PromptAttributeLoss(c, x, y, m).Item()
	// By hand: image 0's stated attributes only; image 1 adds 0.
	logits := c.Logits(x).Float32s()
	var sum float64
	ms := synthface.CaptionAttributes(prompts[0])
	for _, a := range ms {
		l := float64(logits[a.Index])
		yv := 0.0
		if a.Value {
			yv = 1
		}
		sum += math.Log1p(math.Exp(l)) - yv*l
	}
	want := sum / float64(len(ms)) / 2
	if math.Abs(got-want) > 1e-5 {
		t.Fatalf("loss %v, by hand %v", got, want)
	}
	// Following its gradient makes the critic see the stated attributes.
	x.SetRequiresGrad(true)
	for range 20 {
		l := PromptAttributeLoss(c, x, y, m)
		g := torch.Grad([]*torch.Tensor{l}, []*torch.Tensor{x}, torch.GradOpts{})[0]
		x = x.Detach().Sub(g.MulScalar(50)).Detach()
		x.SetRequiresGrad(true)
	}
	if after := PromptAttributeLoss(c, x, y, m).Item(); after >= got*0.9 {
		t.Fatalf("loss %v → %v after 20 steps down its gradient", got, after)
	}
}

func TestAttributeTermTrainsAndNeedsACritic(t *testing.T) {
	c := Tiny()
	tc := tinyTrain(2, 0)
	tc.Weights.Attr = 1
	if _, _, err := trainTiny(t, c, tc, newLinearG(c, 32), newFakeEncoder(c), "", 1, quietLoop()); err == nil || !strings.Contains(err.Error(), "attribute critic") {
		t.Fatalf("want an attribute-critic error, got %v", err)
	}
	// With a critic the term is logged in both stages and falls; only its
	// weight is raised, so it drives the run.
	tc = tinyTrain(12, 4)
	tc.Weights.Attr = 5
	m, _ := NewModel(c, torch.CPU, 1)
	g := newLinearG(c, 32)
	m.Mapping.SetMeanLatent(g.MeanLatent())
	run, err := train.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr := &Trainer{Cfg: tc, Model: m, G: g, E: newFakeEncoder(c), A: newMeanCritic(int64(len(synthface.AttributeNames))),
		Data: data.NewSynthFace(data.Train, 32, 4), Cache: &D0Cache{Dir: t.TempDir()}, Dev: torch.CPU}
	if err := tr.Train(context.Background(), run, quietLoop()); err != nil {
		t.Fatal(err)
	}
	_, vals, err := run.ReadLog()
	if err != nil {
		t.Fatal(err)
	}
	a := vals["attr"]
	if len(a) != 16 {
		t.Fatalf("attr logged %d times, want 16", len(a))
	}
	if !(a[8]+a[9]+a[10]+a[11] < a[0]+a[1]+a[2]+a[3]) {
		t.Fatalf("attribute term did not fall in stage 1: %v", a[:12])
	}
}

// TestAttrFocusWeighsStatedAttributes: a focus weight w on one stated
// attribute gives it w shares of the image's average, the others 1.
func TestAttrFocusWeighsStatedAttributes(t *testing.T) {
	focus, err := ParseAttrFocus(" smiling=3 ,Young=0.5")
	if err != nil || focus["Smiling"] != 3 || focus["Young"] != 0.5 || len(focus) != 2 {
		t.Fatalf("ParseAttrFocus: %v, %v", focus, err)
	}
	for _, bad := range []string{"Smiling", "Smiling=x", "Dimples=2", "Smiling=0", "Young=-1", "Young=inf", "Young=NaN"} {
		if _, err := ParseAttrFocus(bad); err == nil {
			t.Errorf("ParseAttrFocus(%q) accepted", bad)
		}
	}
	if _, err := AttrFocusRow(map[string]float64{"Smiling": math.Inf(1)}, 40); err == nil {
		t.Error("AttrFocusRow accepted an infinite weight")
	}
	k := int64(len(synthface.AttributeNames))
	c := newMeanCritic(k)
	x := torch.Randn(torch.NewGenerator(2), []int64{1, 3, 8, 8}, torch.Float32, torch.CPU)
	prompt := "A smiling young woman with blond hair."
	y, m := StatedAttributes([]string{prompt}, k, torch.CPU)
	row, err := AttrFocusRow(focus, k)
	if err != nil {
		t.Fatal(err)
	}
	got := PromptAttributeLoss(c, x, y, FocusStated(m, row)).Item()
	logits := c.Logits(x).Float32s()
	var sum, n float64
	ms := synthface.CaptionAttributes(prompt)
	seen := map[string]bool{}
	for _, a := range ms {
		w := 1.0
		if f, ok := focus[synthface.AttributeNames[a.Index]]; ok {
			w = f
			seen[synthface.AttributeNames[a.Index]] = true
		}
		l, yv := float64(logits[a.Index]), 0.0
		if a.Value {
			yv = 1
		}
		sum += w * (math.Log1p(math.Exp(l)) - yv*l)
		n += w
	}
	if !seen["Smiling"] || !seen["Young"] {
		t.Fatalf("prompt %q states %v: the test needs Smiling and Young", prompt, ms)
	}
	if want := sum / n; math.Abs(got-want) > 1e-5 {
		t.Fatalf("focused loss %v, by hand %v", got, want)
	}
	if plain := PromptAttributeLoss(c, x, y, m).Item(); math.Abs(plain-got) < 1e-6 {
		t.Fatalf("focus changed nothing (%v)", plain)
	}
}
