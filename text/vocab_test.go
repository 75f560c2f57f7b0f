package text

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"ddgi/nn"
	"ddgi/torch"
)

// clipStyleTokenizer is the tiny fixture with CLIP's special ids (49406,
// 49407) and no configs, so it pads with <|endoftext|> like SD 1.5's.
func clipStyleTokenizer(t *testing.T) *CLIPTokenizer {
	t.Helper()
	b, err := os.ReadFile("testdata/clipbpe_tiny/vocab.json")
	if err != nil {
		t.Fatal(err)
	}
	var vocab map[string]int64
	if err := json.Unmarshal(b, &vocab); err != nil {
		t.Fatal(err)
	}
	vocab[clipSOT], vocab[clipEOT] = 49406, 49407
	dir := t.TempDir()
	b, _ = json.Marshal(vocab)
	os.WriteFile(filepath.Join(dir, "vocab.json"), b, 0o644)
	m, _ := os.ReadFile("testdata/clipbpe_tiny/merges.txt")
	os.WriteFile(filepath.Join(dir, "merges.txt"), m, 0o644)
	v, err := LoadVocab(dir)
	if err != nil {
		t.Fatal(err)
	}
	return v.(*CLIPTokenizer)
}

// TestPoolingAndWordsFollowTheTokenizer: with a CLIP-style tokenizer (EOS
// 49407, padding with EOS) the encoder pools at each row's first EOS and
// the word mask covers exactly the caption's tokens; with OpenAI's padding
// (id 0, a real token) too.
func TestPoolingAndWordsFollowTheTokenizer(t *testing.T) {
	tok := clipStyleTokenizer(t)
	if sp := tok.Specials(); sp != (Specials{BOS: 49406, EOS: 49407, Pad: 49407}) || tok.VocabSize() != 49408 {
		t.Fatalf("specials %+v, vocab %d", sp, tok.VocabSize())
	}
	c := EncoderConfig{Vocab: 49408, Context: 12, Dim: 16, Layers: 1, Heads: 2, MLP: 32}
	e := NewEncoder(nn.NewStore(torch.CPU, 1).Root(), c)
	if e.EOS != EOSID {
		t.Fatalf("a new encoder pools at %d, want ddgi's EOSID", e.EOS)
	}
	small := c
	small.Vocab = 1024
	if err := NewEncoder(nn.NewStore(torch.CPU, 1).Root(), small).UseVocab(tok); err == nil {
		t.Fatal("an encoder with 1024 rows accepted a 49408-token vocabulary")
	}
	if err := e.UseVocab(tok); err != nil || e.EOS != 49407 {
		t.Fatalf("UseVocab: %v, EOS %d", err, e.EOS)
	}
	torch.Scoped(func() {
		ids, err := tok.EncodeBatch([]string{"the woman is smiling", "the"}, 12)
		if err != nil {
			t.Fatal(err)
		}
		v := ids.Int64s()
		if v[5] != 49407 || v[11] != 49407 || v[12+2] != 49407 || v[12+11] != 49407 {
			t.Fatalf("rows %v: want EOS padding", v)
		}
		h := e.Forward(ids)
		p := e.Pooled(ids, h).Float32s()
		w := int(c.Dim)
		for r, at := range []int64{5, 2} {
			want := h.Select(0, int64(r)).Select(0, at).Float32s()
			if !slices.Equal(p[r*w:(r+1)*w], want) {
				t.Fatalf("row %d not pooled at its first EOS (%d)", r, at)
			}
			last := h.Select(0, int64(r)).Select(0, 11).Float32s()
			if slices.Equal(want, last) {
				t.Fatalf("row %d: first EOS and last position agree; the test proves nothing", r)
			}
		}
		words := WordMask(ids, tok.Specials()).Float32s()
		want := []float32{0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		if !slices.Equal(words, want) {
			t.Fatalf("word mask %v", words)
		}
		if got := TrimPadding(ids, tok.Specials().EOS).Size(1); got != 6 {
			t.Fatalf("trimmed to %d columns, want 6 (through the first EOS of the longest row)", got)
		}
		// OpenAI pads with id 0, which is also "!": a "!" in the caption is a
		// word, the padding is not.
		if err := tok.SetPad("!"); err != nil {
			t.Fatal(err)
		}
		ids, _ = tok.EncodeBatch([]string{"the !?"}, 8)
		if got := ids.Int64s(); !slices.Equal(got, []int64{49406, 513, 0, 286, 49407, 0, 0, 0}) {
			t.Fatalf("row %v", got)
		}
		if got := WordMask(ids, tok.Specials()).Float32s(); !slices.Equal(got, []float32{0, 1, 1, 1, 0, 0, 0, 0}) {
			t.Fatalf("word mask with zero padding %v", got)
		}
		// ddgi's own ids: the mask is what it always was, ids > EOSID.
		d := torch.FromInt64([]int64{BOSID, 300, 301, EOSID, PadID, BOSID, EOSID, PadID, PadID, PadID}, 2, 5)
		if got := WordMask(d, ddgiSpecials).Float32s(); !slices.Equal(got, d.GtScalar(float64(EOSID)).To(torch.Float32).Float32s()) {
			t.Fatalf("ddgi word mask %v", got)
		}
	})
}
