package convert

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ddgi/internal/golden"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/text"
	"ddgi/torch"
)

// TestCLIPTextParity converts an OpenAI CLIP state dict on random weights
// (text width 32, 2 layers, 4 heads, context 77, vocab 1000; a small ViT
// beside it) and reproduces the final-layer-norm hidden states SD's
// cross-attention reads and encode_text's pooled projection, for one row
// padded with 0 after its EOS and one padded with EOS.
func TestCLIPTextParity(t *testing.T) {
	io := golden.Load(t, filepath.Join("testdata", "clip", "io.safetensors"))
	src, cl, err := OpenSources(filepath.Join("testdata", "clip", "model.pt"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	e, _, err := CLIPText(src, CLIPTextOptions{Heads: 4})
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config
	if c.Vocab != 1000 || c.Context != 77 || c.Dim != 32 || c.Layers != 2 || c.MLP != 128 || c.Projection != 24 || !c.AttnBias || c.Act != "quick_gelu" || e.EOS != 999 {
		t.Fatalf("config %+v, EOS %d", c, e.EOS)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			ids := io["ids"].To(torch.Int64)
			h := e.Forward(ids)
			checkClose(t, "hidden", h, io["hidden"])
			checkClose(t, "pooled", e.Project(e.Pooled(ids, h)), io["pooled"])
		})
	})
}

// TestHFCLIPTextParity converts the same tower in Hugging Face's names
// inside an SD1.x-style single file (cond_stage_model.transformer.; the
// names transformers' convert_clip_original_pytorch_to_hf.py gives, with
// the position_ids buffer), also with the older prefix that lacks
// text_model., and reproduces OpenAI's hidden states.
func TestHFCLIPTextParity(t *testing.T) {
	io := golden.Load(t, filepath.Join("testdata", "clip", "io.safetensors"))
	src, cl, err := OpenSources(filepath.Join("testdata", "clip", "sd_single_file_hf.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	old := map[string]Source{}
	for n, s := range src {
		old[strings.Replace(n, "transformer.text_model.", "transformer.", 1)] = s
	}
	for name, s := range map[string]map[string]Source{"text_model": src, "older prefix": old} {
		t.Run(name, func(t *testing.T) {
			e, _, err := CLIPText(s, CLIPTextOptions{Heads: 4})
			if err != nil {
				t.Fatal(err)
			}
			if c := e.Config; c.Vocab != 1000 || c.Layers != 2 || c.Projection != 0 || c.Act != "quick_gelu" || !c.AttnBias || e.EOS != 999 {
				t.Fatalf("config %+v, EOS %d", c, e.EOS)
			}
			torch.NoGrad(func() {
				torch.Scoped(func() {
					checkClose(t, "hidden", e.Forward(io["ids"].To(torch.Int64)), io["hidden"])
				})
			})
		})
	}
}

// TestCLIPTextFullSizeKeyList places OpenAI's ViT-L/14 text tower (written
// by clip/model.py's modules at width 768, 12 layers, vocab 49408) on the
// clip-vit-l14 preset plus its 768-wide projection: 123,650,304
// parameters, HF CLIPTextModel's 123,060,480 without the projection.
func TestCLIPTextFullSizeKeyList(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "clip", "keys_vit_l14_text.json"))
	if err != nil {
		t.Fatal(err)
	}
	var keys struct {
		Parameters int64
		Keys       map[string][]int64
	}
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	c, err := InferCLIPText(OpenAICLIPText, keys.Keys, CLIPTextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := text.EncoderPreset("clip-vit-l14")
	want.Projection = 768
	if c != want {
		t.Fatalf("inferred %+v, want %+v", c, want)
	}
	store := nn.NewStore(torch.CPU, 0)
	store.SkipInit = true
	text.NewEncoder(store.Root(), c)
	if n := store.NumParams(); n != keys.Parameters || n != 123650304 {
		t.Errorf("ddgi %d parameters, reference %d", n, keys.Parameters)
	}
	if _, err := OpenAICLIPText.Plan(keys.Keys, storeShapes(store)); err != nil {
		t.Fatal(err)
	}
}

// TestCLIPTextBadInput: what is not an OpenAI text tower is an error.
func TestCLIPTextBadInput(t *testing.T) {
	if _, _, err := CLIPText(map[string]Source{"encoder.conv_in.weight": shapeOnly{8, 3, 3, 3}}, CLIPTextOptions{}); err == nil || !strings.Contains(err.Error(), "not a CLIP text tower") {
		t.Errorf("a VAE: %v", err)
	}
	src := map[string]Source{
		"token_embedding.weight":                  shapeOnly{1000, 32},
		"positional_embedding":                    shapeOnly{77, 32},
		"transformer.resblocks.0.mlp.c_fc.weight": shapeOnly{128, 32},
		"transformer.resblocks.0.ln_1.weight":     shapeOnly{32},
		"transformer.resblocks.70000.ln_1.weight": shapeOnly{32},
	}
	if _, _, err := CLIPText(src, CLIPTextOptions{Heads: 4}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("layer 70000: %v", err)
	}
	delete(src, "transformer.resblocks.70000.ln_1.weight")
	if _, _, err := CLIPText(src, CLIPTextOptions{Heads: 5}); err == nil {
		t.Error("5 heads over width 32 accepted")
	}
	if _, _, err := CLIPText(src, CLIPTextOptions{Heads: 4}); err == nil || !strings.Contains(err.Error(), "network tensors the file lacks") {
		t.Errorf("missing tensors: %v", err)
	}
}

// TestSplitRule: a Split rule cuts a tensor into equal dim-0 slices in
// order, drops "" slices, and refuses a tensor that does not divide.
func TestSplitRule(t *testing.T) {
	data := make([]float32, 6*2)
	for i := range data {
		data[i] = float32(i)
	}
	st, err := safetensors.FromFloat32([]int64{6, 2}, data)
	if err != nil {
		t.Fatal(err)
	}
	tab := Table{Name: "split", Rules: []Rule{{From: regexp.MustCompile(`^w$`), Split: func([]string) []string { return []string{"a", "", "c"} }}}}
	want := map[string][]int64{"a": {2, 2}, "c": {2, 2}}
	out, err := Apply(tab, map[string]Source{"w": memTensor{st}}, want)
	if err != nil {
		t.Fatal(err)
	}
	for name, first := range map[string]float32{"a": 0, "c": 8} {
		x, err := nn.FromSafetensors(out[name], torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		if v := x.Float32s(); len(v) != 4 || v[0] != first || v[3] != first+3 {
			t.Errorf("slice %s = %v", name, v)
		}
	}
	st5, _ := safetensors.FromFloat32([]int64{5, 2}, make([]float32, 10))
	if _, err := Apply(tab, map[string]Source{"w": memTensor{st5}}, want); err == nil || !strings.Contains(err.Error(), "does not split") {
		t.Errorf("5 rows split in 3: %v", err)
	}
}

// TestCLIPTextSavedLoads saves a converted text tower as ddgi safetensors
// (config under "encoder", as text.LoadEncoder reads it) and loads it: same
// hidden states and projection.
func TestCLIPTextSavedLoads(t *testing.T) {
	io := golden.Load(t, filepath.Join("testdata", "clip", "io.safetensors"))
	src, cl, err := OpenSources(filepath.Join("testdata", "clip", "model.pt"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	conv, store, err := CLIPText(src, CLIPTextOptions{Heads: 4})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "text.safetensors")
	if err := store.Save(path, nn.SaveOptions{Config: text.CLIPConfig{Encoder: conv.Config}}); err != nil {
		t.Fatal(err)
	}
	e, _, err := text.LoadEncoder(path, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	e.EOS = conv.EOS // the tokenizer's, set by UseVocab in a pipeline
	torch.NoGrad(func() {
		torch.Scoped(func() {
			ids := io["ids"].To(torch.Int64)
			h := e.Forward(ids)
			checkClose(t, "hidden after save/load", h, io["hidden"])
			checkClose(t, "pooled after save/load", e.Project(e.Pooled(ids, h)), io["pooled"])
		})
	})
}
