package methods

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/data"
	"ddgi/eval"
	"ddgi/face"
	"ddgi/imagebatch"
	"ddgi/internal/testweights"
	"ddgi/kinds"
	"ddgi/torch"
)

// TestDDGIMatchesProductAPI: the ddgi-2d method, fed bench tensors, draws
// exactly the images face's Request path draws from the same samples'
// bytes and seeds, for both conditions; its Config decides the weights.
func TestDDGIMatchesProductAPI(t *testing.T) {
	dir := testweights.Tiny(t, "../../weights/tokenizer.json")
	c := DefaultConfig()
	c.Weights = dir
	r := eval.NewRegistry()
	Register(r, c)
	m, err := r.New("ddgi-2d")
	if err != nil {
		t.Fatal(err)
	}
	const size = 32 // the tiny diffusion model reads 32² conditions
	ss := benchSamples(t, size, 3)
	for _, cond := range []kinds.Cond{kinds.Mask, kinds.Scribble} {
		torch.Scoped(func() {
			b := &eval.Batch{Cond: cond, Size: size, Samples: ss, Index: []int{0, 1, 2},
				Mask: imagebatch.SampleMasks(ss), Scribble: imagebatch.SampleScribbles(ss)}
			var reqs []face.Request
			for i, s := range ss {
				b.Prompts = append(b.Prompts, eval.Prompt(s, i))
				req := face.Request{Text: b.Prompts[i], Seed: int64(i), Mask: s.Mask}
				if cond == kinds.Scribble {
					req.Mask, req.Scribble = nil, s.Scribble
				}
				reqs = append(reqs, req)
			}
			got, err := m.Generate(b)
			if err != nil {
				t.Fatal(err)
			}
			p, err := face.Load(face.Options{Weights: dir, GAN: "stylegan2", Cond: cond, Device: torch.CPU, Step: -1})
			if err != nil {
				t.Fatal(err)
			}
			w, err := p.Codes(reqs)
			if err != nil {
				t.Fatal(err)
			}
			want, err := p.Render(w, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := got.Sub(want).Abs().MaxAll().Item(); d != 0 {
				t.Errorf("%s: method and product API differ by %g", cond, d)
			}
		})
	}
	c.Weights = t.TempDir()
	r = eval.NewRegistry()
	Register(r, c)
	m, _ = r.New("ddgi-2d")
	_, err = m.Generate(&eval.Batch{Cond: kinds.Mask, Size: size})
	if err == nil || !strings.Contains(err.Error(), c.Weights) {
		t.Errorf("empty weights folder: got %v, want an error naming it", err)
	}
}

// TestDDGI3DTurns: ddgi-3d and project-3d turn (eval.Turner), their 2D
// twins do not; a view from a pair's own camera is exactly what Generate
// draws for it, and another camera gives another image of the same code.
func TestDDGI3DTurns(t *testing.T) {
	dir := testweights.Tiny(t, "../../weights/tokenizer.json")
	for _, f := range []string{"aux_perceptual.safetensors", "aux_identity.safetensors"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "weights", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := DefaultConfig()
	c.Weights, c.ProjectSteps = dir, 3
	r := eval.NewRegistry()
	Register(r, c)
	// ddgi reads the tiny U-Net's 32² conditions; the projection fits
	// the tiny GAN's 16² renders.
	for name, size := range map[string]int{"ddgi": 32, "project": 16} {
		ss := benchSamples(t, size, 2)
		b := &eval.Batch{Cond: kinds.Mask, Size: size, Samples: ss, Index: []int{0, 1}, Prompts: []string{eval.Prompt(ss[0], 0), eval.Prompt(ss[1], 1)},
			Mask: imagebatch.SampleMasks(ss), Scribble: imagebatch.SampleScribbles(ss)}
		other := ss[0].Camera
		other[3] += 0.3 // the camera moved sideways
		m2, _ := r.New(name + "-2d")
		if m2.(eval.Turner).Turns() {
			t.Errorf("%s-2d says it turns", name)
		}
		m, err := r.New(name + "-3d")
		if err != nil {
			t.Fatal(err)
		}
		tm := m.(eval.Turner)
		if !tm.Turns() {
			t.Fatalf("%s-3d does not turn", name)
		}
		want, err := m.Generate(b)
		if err != nil {
			t.Fatal(err)
		}
		views, err := tm.Turn(b, [][25]float32{ss[0].Camera, ss[1].Camera, other})
		if err != nil {
			t.Fatal(err)
		}
		if len(views) != 3 {
			t.Fatalf("%s-3d: %d views for 3 cameras", name, len(views))
		}
		for i := 0; i < 2; i++ {
			if d := views[i].Narrow(0, int64(i), 1).Sub(want.Narrow(0, int64(i), 1)).Abs().MaxAll().Item(); d > 1e-5 {
				t.Errorf("%s-3d: pair %d from its own camera differs from Generate by %g", name, i, d)
			}
		}
		if d := views[2].Narrow(0, 0, 1).Sub(want.Narrow(0, 0, 1)).Abs().MaxAll().Item(); d < 1e-3 {
			t.Errorf("%s-3d: a moved camera changed pair 0's image by only %g", name, d)
		}
	}
}

// benchSamples renders the first n SynthFace-bench samples at size².
func benchSamples(t *testing.T, size, n int) []*data.Sample {
	t.Helper()
	ds := data.NewSynthFace(data.Bench, size, n)
	ss := make([]*data.Sample, n)
	for i := range ss {
		var err error
		if ss[i], err = ds.Get(i); err != nil {
			t.Fatal(err)
		}
	}
	return ss
}
