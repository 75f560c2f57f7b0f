package encoder

import (
	"testing"

	"ddgi/diffusion"
	"ddgi/inversion"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/text"
	"ddgi/torch"
)

// tinyE builds the encoder from random tiny parts: patch latents, a fresh
// text encoder and the committed tokenizer.
func tinyE(t *testing.T, kind kinds.Cond) *E {
	t.Helper()
	c, err := diffusion.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	c = diffusion.PatchConfig(c)
	m, err := diffusion.New(c, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddControl(kind, 2); err != nil {
		t.Fatal(err)
	}
	tok, err := text.LoadTokenizer("../weights/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := text.EncoderPreset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	te := TextEncoder{Tok: tok, Enc: text.NewEncoder(nn.NewStore(torch.CPU, 3).Root(), tc)}
	ae, err := diffusion.NewAutoencoder(c)
	if err != nil {
		t.Fatal(err)
	}
	return &E{Pipeline: &diffusion.Pipeline{Model: m, Text: te, AE: ae}, Text: te, Steps: 2, Guidance: diffusion.NoGuidance, WeightsID: "tiny"}
}

func TestEncoderFeedsTheInversion(t *testing.T) {
	for _, kind := range kinds.Conds {
		e := tinyE(t, kind)
		cfg, err := e.InversionConfig(4, 8, 16, kind)
		if err != nil {
			t.Fatal(err)
		}
		m, err := inversion.NewModel(cfg, torch.CPU, 1)
		if err != nil {
			t.Fatal(err)
		}
		torch.Scoped(func() {
			s := m.Config.Size
			_ = s
			size := e.Pipeline.Model.Config.ImageSize()
			img := torch.Zeros([]int64{2, 3, size, size}, torch.Float32, torch.CPU)
			g := torch.NewGenerator(1)
			steps := torch.FromInt64([]int64{5, 900}, 2)
			z0 := e.Latents(img)
			zt := e.AddNoise(z0, torch.Randn(g, z0.Shape(), torch.Float32, torch.CPU), steps)
			cond := inversion.Condition{Kind: kind, Mask: torch.Zeros([]int64{2, size, size}, torch.Int64, torch.CPU),
				Scribble: torch.Zeros([]int64{2, 1, size, size}, torch.Float32, torch.CPU)}
			h, f := e.Features(zt, steps, []string{"The woman is smiling.", "He has a beard."}, cond)
			codes := m.Invert(h, f, steps, false)
			if sh := codes.W.Shape(); sh[0] != 2 || sh[1] != 4 || sh[2] != 8 {
				t.Fatalf("%s: code shape %v", kind, sh)
			}
			// Word mask: only real words count for Ā.
			if n := f.Words.Sum([]int64{1}, false).Float32s(); n[0] < 3 || n[1] < 3 {
				t.Fatalf("%s: word counts %v", kind, n)
			}
			d0 := e.Sample([]string{"a face"}, inversion.Condition{Kind: kind, Mask: cond.Mask.Narrow(0, 0, 1), Scribble: cond.Scribble.Narrow(0, 0, 1)}, []int64{3})
			if sh := d0.Shape(); sh[1] != 3 || sh[2] != size {
				t.Fatalf("%s: I^d_0 shape %v", kind, sh)
			}
		})
	}
}

// TestWordMaskAsksTheTokenizer: for the shipped tokenizer the mask is what
// it was when it was ids > text.EOSID; a CLIP-style row (EOS 49407, padded
// with EOS) marks only its words.
func TestWordMaskAsksTheTokenizer(t *testing.T) {
	tok, err := text.LoadVocab("../weights/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	torch.Scoped(func() {
		ids, err := tok.EncodeBatch([]string{"The woman is smiling.", "He has a beard and wears glasses.", "a"}, 16)
		if err != nil {
			t.Fatal(err)
		}
		ids = torch.Cat([]*torch.Tensor{ids, tok.EmptyIDs(1, 16)}, 0)
		got := WordMask(ids, tok.Specials()).Float32s()
		want := ids.GtScalar(float64(text.EOSID)).To(torch.Float32).Float32s()
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("position %d: mask %v, was %v", i, got[i], want[i])
			}
		}
		clip := torch.FromInt64([]int64{49406, 320, 1929, 49407, 49407, 49407}, 1, 6)
		m := WordMask(clip, text.Specials{BOS: 49406, EOS: 49407, Pad: 49407}).Float32s()
		for i, w := range []float32{0, 1, 1, 0, 0, 0} {
			if m[i] != w {
				t.Fatalf("CLIP row mask %v", m)
			}
		}
	})
}
