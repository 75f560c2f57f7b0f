package methods

import (
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
	ds := data.NewSynthFace(data.Bench, size, 3)
	var ss []*data.Sample
	for i := 0; i < 3; i++ {
		s, err := ds.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
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
