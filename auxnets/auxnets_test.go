package auxnets

import (
	"testing"

	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/synthface"
	"ddgi/torch"
)

func samples(t *testing.T, n int) []*data.Sample {
	t.Helper()
	ds := data.NewSynthFace(data.Train, 32, n)
	out := make([]*data.Sample, n)
	for i := range out {
		s, err := ds.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

func tiny(t *testing.T, net string) Config {
	c, err := Preset(net, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func eqShape(t *testing.T, name string, got []int64, want ...int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s shape %v, want %v", name, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s shape %v, want %v", name, got, want)
		}
	}
}

func TestShapes(t *testing.T) {
	torch.Scoped(func() {
		x := torch.Randn(torch.NewGenerator(1), []int64{2, 3, 128, 128}, torch.Float32, torch.CPU).Tanh()
		p := NewParser(tiny(t, NetParser), 1)
		eqShape(t, "parser logits", p.Logits(x).Shape(), 2, synthface.NumClasses, 128, 128)
		eqShape(t, "parse", p.Parse(x).Shape(), 2, 128, 128)
		c := NewClassifier(tiny(t, NetAttributes), 1)
		eqShape(t, "features", c.Features(x).Shape(), 2, c.FeatureDim())
		eqShape(t, "attr probs", c.AttributeProbs(x).Shape(), 2, NumAttributes)
		fc := NewClassifier(tiny(t, NetFID), 1)
		eqShape(t, "fid logits", fc.Logits(x).Shape(), 2, NumAttributes+synthface.NumClasses)
		r := NewIdentity(tiny(t, NetIdentity), 1)
		e := r.Embed(x)
		eqShape(t, "embedding", e.Shape(), 2, 16)
		if n := e.Norm(2, []int64{1}, false).MinAll().Item(); n < 0.999 || n > 1.001 {
			t.Errorf("embedding norm %g", n)
		}
		f := NewPerceptual(tiny(t, NetPerceptual), 1)
		eqShape(t, "lpips", f.Distance(x, x.Flip(3)).Shape(), 2)
		a := Augment(x, torch.NewGenerator(2), true)
		if a.MaxAll().Item() > 1 || a.MinAll().Item() < -1 {
			t.Error("augment left [-1,1]")
		}
		eqShape(t, "distort", Distort(x, x, torch.NewGenerator(3)).Shape(), 18, 3, 128, 128)
	})
}

// fit runs a few Adam steps of loss and reports first and last values.
func fit(t *testing.T, name string, s []*nn.Store, steps int, loss func() *torch.Tensor) {
	t.Helper()
	opt := optim.NewAdam(optim.DefaultAdam(3e-3))
	var first, last float64
	for i := 0; i < steps; i++ {
		torch.Scoped(func() {
			l := loss()
			l.Backward()
			var ps []nn.Named
			for _, st := range s {
				ps = append(ps, st.Trainable()...)
			}
			opt.Update(ps)
			if i == 0 {
				first = l.Item()
			}
			last = l.Item()
		})
	}
	if !(last < first) {
		t.Errorf("%s loss %g → %g, did not fall", name, first, last)
	}
}

func TestTinyTrainingLowersLosses(t *testing.T) {
	ss := samples(t, 8)
	x, m := imagebatch.SampleImages(ss), imagebatch.SampleMasks(ss)
	defer x.Free()
	defer m.Free()
	p := NewParser(tiny(t, NetParser), 1)
	fit(t, "parser", []*nn.Store{p.Store}, 8, func() *torch.Tensor { return ParserLoss(p.Logits(x), m) })
	c := NewClassifier(tiny(t, NetAttributes), 1)
	v := make([]float32, 0, len(ss)*int(NumAttributes))
	for _, s := range ss {
		v = append(v, s.Attrs...)
	}
	y := torch.FromFloat32(v, int64(len(ss)), NumAttributes)
	defer y.Free()
	fit(t, "attributes", []*nn.Store{c.Store}, 8, func() *torch.Tensor {
		return ClassifierLoss(c.Logits(x), y, PosWeights([]float64{0.1, 0.5}, NumAttributes))
	})
	r := NewIdentity(tiny(t, NetIdentity), 1)
	head := nn.NewStore(torch.CPU, 2)
	arc := NewArcFace(head.Root().Sub("arcface"), 8, 16)
	r.Training = true
	lab := torch.FromInt64([]int64{0, 1, 2, 3, 4, 5, 6, 7}, 8)
	defer lab.Free()
	fit(t, "arcface", []*nn.Store{r.Store, head}, 20, func() *torch.Tensor { return arc.Loss(r.Embed(x), lab, 0.2) })
	f := NewPerceptual(tiny(t, NetPerceptual), 1)
	fit(t, "calibration", []*nn.Store{f.Store}, 8, func() *torch.Tensor {
		n := x.Size(0)
		d := f.Distance(x.Repeat(2, 1, 1, 1), torch.Cat([]*torch.Tensor{nn.Blur(x, 2), nn.Blur(x, 0.5)}, 0))
		return CalibrationLoss(d.Narrow(0, n, n), d.Narrow(0, 0, n))
	})
}

func TestWeightsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := NewParser(tiny(t, NetParser), 4)
	path := dir + "/p.safetensors"
	if err := p.Store.Save(path, nn.SaveOptions{Config: p.Config, Half: true}); err != nil {
		t.Fatal(err)
	}
	q, err := LoadParser(path, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if q.Config != p.Config {
		t.Errorf("config %+v, want %+v", q.Config, p.Config)
	}
	if _, err := LoadIdentity(path, torch.CPU); err == nil {
		t.Error("parser weights loaded as identity")
	}
}
