package face

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/diffusion"
	"ddgi/gan/stylegan2"
	"ddgi/inversion"
	"ddgi/nn"
	"ddgi/text"
	"ddgi/torch"
)

// tinyWeights writes a complete set of tiny, untrained weight files under
// the shipped names, so loading and generation are tested end to end.
func tinyWeights(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tok, err := os.ReadFile("../weights/tokenizer.json")
	must(err)
	must(os.WriteFile(filepath.Join(dir, "tokenizer.json"), tok, 0o644))
	tc, err := text.EncoderPreset("tiny")
	must(err)
	ts := nn.NewStore(torch.CPU, 1)
	text.NewEncoder(ts.Root(), tc)
	must(ts.Save(filepath.Join(dir, "text_small64.safetensors"), nn.SaveOptions{Config: map[string]any{"encoder": tc}}))
	dc, err := diffusion.Preset("tiny")
	must(err)
	dm, err := diffusion.New(diffusion.PatchConfig(dc), torch.CPU, 2)
	must(err)
	_, err = dm.AddControl("mask", 3)
	must(err)
	must(dm.Save(filepath.Join(dir, "diffusion_small64.safetensors"), false))
	must(dm.SaveControl("mask", filepath.Join(dir, "diffusion_small64_mask.safetensors"), false))
	gc, err := stylegan2.Preset("tiny")
	must(err)
	g, err := stylegan2.NewGenerator(nn.NewStore(torch.CPU, 4).Root(), gc)
	must(err)
	must(g.Save(filepath.Join(dir, "stylegan2_small64.safetensors"), false))
	o := Options{Weights: dir, GAN: "stylegan2", Cond: "mask", Device: torch.CPU, Step: -1}
	e, err := LoadEncoder(o)
	must(err)
	ic, err := e.InversionConfig(int64(g.NumWS()), int64(gc.WDim), 16, "mask")
	must(err)
	im, err := inversion.NewModel(ic, torch.CPU, 5)
	must(err)
	must(im.Save(filepath.Join(dir, "inversion_stylegan2_mask.safetensors"), inversion.TrainConfig{}, true))
	return dir
}

func TestLoadAndGenerateEndToEnd(t *testing.T) {
	dir := tinyWeights(t)
	p, err := Load(Options{Weights: dir, GAN: "stylegan2", Cond: "mask", Device: torch.CPU, Step: -1})
	if err != nil {
		t.Fatal(err)
	}
	size := p.Size()
	mask := make([]uint8, size*size)
	for i := range mask {
		mask[i] = uint8(i % 19)
	}
	reqs := []Request{{Text: "The woman has wavy blond hair.", Mask: mask, Seed: 1}, {Text: "He wears eyeglasses.", Mask: mask, Seed: 2}}
	w, err := p.Codes(reqs)
	if err != nil {
		t.Fatal(err)
	}
	if s := w.Shape(); s[0] != 2 || s[1] != p.G.Styles() || s[2] != p.G.StyleDim() {
		t.Fatalf("codes %v", s)
	}
	img, err := p.Render(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := img.Shape(); s[0] != 2 || s[1] != 3 || s[2] != p.G.Resolution() {
		t.Fatalf("images %v", s)
	}
	// Same seed and inputs give the same code.
	w2, _ := p.Codes(reqs[:1])
	torch.Scoped(func() {
		if d := w2.Sub(w.Narrow(0, 0, 1)).Abs().MaxAll().Item(); d > 1e-5 {
			t.Fatalf("codes not deterministic: %v", d)
		}
	})
	// Bad inputs are errors, not panics.
	for _, bad := range []Request{{Text: "", Mask: mask}, {Text: strings.Repeat("a", 2000), Mask: mask}, {Text: "ok", Mask: mask[:10]}} {
		if _, err := p.Codes([]Request{bad}); err == nil {
			t.Errorf("request %q… accepted", bad.Text[:min(10, len(bad.Text))])
		}
	}
}

func TestLoadNamesMissingWeights(t *testing.T) {
	_, err := Load(Options{Weights: t.TempDir(), GAN: "stylegan2", Cond: "mask"})
	if err == nil || !strings.Contains(err.Error(), "missing weights") {
		t.Fatalf("want missing-weights error, got %v", err)
	}
	if _, err := Load(Options{Weights: t.TempDir(), GAN: "stylegan2", Cond: "sketch"}); err == nil {
		t.Fatal("unknown condition accepted")
	}
}
