package face_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/face"
	"ddgi/gan/eg3d"
	"ddgi/internal/testweights"
	"ddgi/kinds"
	"ddgi/synthface"
	"ddgi/torch"
)

func TestLoadAndGenerateEndToEnd(t *testing.T) {
	dir := testweights.Tiny(t, "../weights/tokenizer.json")
	p, err := face.Load(face.Options{Weights: dir, GAN: "stylegan2", Cond: "mask", Device: torch.CPU, Step: -1})
	if err != nil {
		t.Fatal(err)
	}
	size := p.Size()
	mask := make([]uint8, size*size)
	for i := range mask {
		mask[i] = uint8(i % 19)
	}
	reqs := []face.Request{{Text: "The woman has wavy blond hair.", Mask: mask, Seed: 1}, {Text: "He wears eyeglasses.", Mask: mask, Seed: 2}}
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
	// An earlier step denoises first: a different code, still deterministic.
	p.Opts.Step = p.E.Timesteps() / 2
	w3, err := p.Codes(reqs[:1])
	if err != nil {
		t.Fatal(err)
	}
	w4, _ := p.Codes(reqs[:1])
	torch.Scoped(func() {
		if d := w3.Sub(w2).Abs().MaxAll().Item(); d == 0 {
			t.Error("step T/2 gave the code of step T−1")
		}
		if d := w3.Sub(w4).Abs().MaxAll().Item(); d > 1e-5 {
			t.Errorf("step T/2 not deterministic: %v", d)
		}
	})
	p.Opts.Step = -1
	// Bad inputs are errors, not panics.
	for _, bad := range []face.Request{{Text: "", Mask: mask}, {Text: strings.Repeat("a", 2000), Mask: mask}, {Text: "ok", Mask: mask[:10]}} {
		if _, err := p.Codes([]face.Request{bad}); err == nil {
			t.Errorf("request %q… accepted", bad.Text[:min(10, len(bad.Text))])
		}
	}
}

func TestLoadNamesMissingWeights(t *testing.T) {
	_, err := face.Load(face.Options{Weights: t.TempDir(), GAN: "stylegan2", Cond: "mask"})
	if err == nil || !strings.Contains(err.Error(), "missing weights") {
		t.Fatalf("want missing-weights error, got %v", err)
	}
	if _, err := face.Load(face.Options{Weights: t.TempDir(), GAN: "stylegan2", Cond: "sketch"}); err == nil {
		t.Fatal("unknown condition accepted")
	}
}

func TestEG3DScribbleViews(t *testing.T) {
	dir := testweights.Tiny(t, "../weights/tokenizer.json")
	p, err := face.Load(face.Options{Weights: dir, GAN: "eg3d", Cond: "scribble", Device: torch.CPU, Step: -1})
	if err != nil {
		t.Fatal(err)
	}
	size := p.Size()
	scr := make([]uint8, size*size)
	for i := 0; i < size; i++ {
		scr[i*size+size/2] = 255
	}
	w, err := p.Codes([]face.Request{{Text: "A man with short hair.", Scribble: scr, Seed: 3}})
	if err != nil {
		t.Fatal(err)
	}
	var left, right *torch.Tensor
	torch.Scoped(func() {
		l, r := eg3d.Camera(synthface.DefaultOrbit, -40, 0), eg3d.Camera(synthface.DefaultOrbit, 40, 0)
		torch.Persist(l, r)
		left, err = p.Render(w, l)
		if err == nil {
			right, err = p.Render(w, r)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	torch.Scoped(func() {
		if d := left.Sub(right).Abs().MeanAll().Item(); d == 0 {
			t.Fatal("views from ±40° are identical")
		}
	})
}

func TestParseCamera(t *testing.T) {
	want := eg3d.Camera(synthface.DefaultOrbit, 20, -5).Float32s()
	var nums []string
	for _, v := range want {
		nums = append(nums, fmt.Sprint(v))
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "cam.json")
	os.WriteFile(file, []byte("["+strings.Join(nums, ", ")+"]"), 0o644)
	for _, arg := range []string{strings.Join(nums, ","), strings.Join(nums, " "), "[" + strings.Join(nums, ",") + "]", file} {
		got, err := face.ParseCamera(arg)
		if err != nil {
			t.Fatalf("%.30q: %v", arg, err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%.30q: number %d is %v, want %v", arg, i, got[i], want[i])
			}
		}
	}
	scaled := append([]string(nil), nums...)
	scaled[0] = "2" // rotation no longer orthonormal
	noFocal := append([]string(nil), nums...)
	noFocal[16] = "0"
	for _, bad := range []string{"", "1,2,3", strings.Join(nums, ",") + ",1", strings.Join(scaled, ","), strings.Join(noFocal, ","),
		strings.Replace(strings.Join(nums, ","), nums[3], "NaN", 1), strings.Replace(strings.Join(nums, ","), nums[3], "x", 1)} {
		if _, err := face.ParseCamera(bad); err == nil {
			t.Errorf("%.40q accepted", bad)
		}
	}
}

// TestPromptStrength: on the shipped mask inversion (it has a text path),
// a strength above 1 moves a prompt's code (that the empty prompt stays
// put is inversion's test; requests refuse empty prompts); weights without
// a text path and a negative strength are refused at load.
func TestPromptStrength(t *testing.T) {
	load := func(s float64) *face.Pipeline {
		p, err := face.Load(face.Options{Weights: "../weights", GAN: kinds.StyleGAN2, Cond: kinds.Mask, Device: torch.CPU, Step: -1, PromptStrength: s})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	one, three := load(1), load(3)
	mask := make([]uint8, one.Size()*one.Size())
	for _, text := range []string{"The woman has wavy blond hair."} {
		req := []face.Request{{Text: text, Mask: mask, Seed: 4}}
		w1, err := one.Codes(req)
		if err != nil {
			t.Fatal(err)
		}
		w3, err := three.Codes(req)
		if err != nil {
			t.Fatal(err)
		}
		d := w3.Sub(w1).Abs().MaxAll().Item()
		if d < 1e-2 {
			t.Errorf("strength 3 moved %q's code by only %g", text, d)
		}
	}
	dir := testweights.Tiny(t, "../weights/tokenizer.json")
	if _, err := face.Load(face.Options{Weights: dir, GAN: kinds.StyleGAN2, Cond: kinds.Mask, Device: torch.CPU, PromptStrength: 2}); err == nil || !strings.Contains(err.Error(), "text path") {
		t.Errorf("no text path: %v", err)
	}
	if _, err := face.Load(face.Options{Weights: dir, GAN: kinds.StyleGAN2, Cond: kinds.Mask, Device: torch.CPU}); err != nil {
		t.Errorf("no text path, default strength: %v", err)
	}
	if _, err := face.Load(face.Options{Weights: "../weights", GAN: kinds.StyleGAN2, Cond: kinds.Mask, Device: torch.CPU, PromptStrength: -1}); err == nil {
		t.Error("strength -1 accepted")
	}
	for _, psi := range []float64{-1, math.NaN(), math.Inf(1), 5} {
		if _, err := face.Load(face.Options{Weights: dir, GAN: kinds.StyleGAN2, Cond: kinds.Mask, Device: torch.CPU, Spread: psi}); err == nil || !strings.Contains(err.Error(), "spread") {
			t.Errorf("spread %g: %v", psi, err)
		}
	}
}

// TestVariation: --variation moves only the style layers from
// VariationFrom on, by β times the seed's own GAN code less w̄, so a code
// without variation plus that offset is the code with it; the structure's
// layers stay put, and bad β or layers are refused at load.
func TestVariation(t *testing.T) {
	dir := testweights.Tiny(t, "../weights/tokenizer.json")
	load := func(beta float64, from int) *face.Pipeline {
		p, err := face.Load(face.Options{Weights: dir, GAN: kinds.StyleGAN2, Cond: kinds.Mask, Device: torch.CPU, Step: -1, Variation: beta, VariationFrom: from})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain, varied := load(0, 0), load(0.5, 0)
	mask := make([]uint8, plain.Size()*plain.Size())
	reqs := []face.Request{{Text: "A smiling man.", Mask: mask, Seed: 3}, {Text: "A smiling man.", Mask: mask, Seed: 8}}
	w0, err := plain.Codes(reqs)
	if err != nil {
		t.Fatal(err)
	}
	w1, err := varied.Codes(reqs)
	if err != nil {
		t.Fatal(err)
	}
	from, l := face.DefaultVariationFrom(varied.G), varied.G.Styles()
	if from < 1 || int64(from) >= l {
		t.Fatalf("default layers from %d of %d", from, l)
	}
	torch.Scoped(func() {
		if d := w1.Narrow(1, 0, int64(from)).Sub(w0.Narrow(1, 0, int64(from))).Abs().MaxAll().Item(); d > 1e-6 {
			t.Errorf("coarse layers moved by %g", d)
		}
		wz := varied.G.SeedCodes([]int64{3, 8}, torch.CPU)
		want := w0.Add(wz.Sub(varied.G.MeanLatent()).MulScalar(0.5)).Narrow(1, int64(from), l-int64(from))
		got := w1.Narrow(1, int64(from), l-int64(from))
		if d := got.Sub(want).Abs().MaxAll().Item(); d > 1e-5 {
			t.Errorf("fine layers off the seed's offset by %g", d)
		}
		if d := got.Sub(w0.Narrow(1, int64(from), l-int64(from))).Abs().MaxAll().Item(); d < 1e-3 {
			t.Errorf("fine layers moved by only %g", d)
		}
		// Two seeds give two offsets.
		if d := wz.Select(0, 0).Sub(wz.Select(0, 1)).Abs().MaxAll().Item(); d < 1e-3 {
			t.Errorf("seeds 3 and 8 map to one code (%g)", d)
		}
	})
	for _, bad := range []face.Options{{Variation: -0.1}, {Variation: math.NaN()}, {Variation: 5}, {Variation: 1, VariationFrom: -1}, {Variation: 1, VariationFrom: int(l)}} {
		bad.Weights, bad.GAN, bad.Cond, bad.Device = dir, kinds.StyleGAN2, kinds.Mask, torch.CPU
		if _, err := face.Load(bad); err == nil || !strings.Contains(err.Error(), "variation") {
			t.Errorf("variation %g from %d: %v", bad.Variation, bad.VariationFrom, err)
		}
	}
}
