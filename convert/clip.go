package convert

import (
	"fmt"
	"regexp"
	"strings"

	"ddgi/nn"
	"ddgi/text"
)

// OpenAICLIPText is the layout of the text tower in OpenAI's CLIP state
// dicts (clip/model.py): token_embedding, positional_embedding,
// transformer.resblocks.N.{ln_1,attn.{in_proj_weight,in_proj_bias,out_proj},
// ln_2,mlp.{c_fc,c_proj}}, ln_final, text_projection (x·P, kept as is).
// The fused in_proj is cut into q, k, v; the image tower, logit_scale and
// the sizes OpenAI's archives store as tensors are dropped.
var OpenAICLIPText = Table{Name: "openai-clip", Rules: []Rule{
	rule(`token_embedding\.weight`, "embeddings.token_embedding.weight", false),
	rule(`positional_embedding`, "embeddings.position_embedding.weight", false),
	rule(`transformer\.resblocks\.(\d+)\.ln_1\.(weight|bias)`, "encoder.layers.$1.layer_norm1.$2", false),
	rule(`transformer\.resblocks\.(\d+)\.ln_2\.(weight|bias)`, "encoder.layers.$1.layer_norm2.$2", false),
	{From: regexp.MustCompile(`^transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$`), Split: func(m []string) []string {
		a := "encoder.layers." + m[1] + ".self_attn."
		return []string{a + "to_q." + m[2], a + "to_k." + m[2], a + "to_v." + m[2]}
	}},
	rule(`transformer\.resblocks\.(\d+)\.attn\.out_proj\.(weight|bias)`, "encoder.layers.$1.self_attn.to_out.$2", false),
	rule(`transformer\.resblocks\.(\d+)\.mlp\.c_fc\.(weight|bias)`, "encoder.layers.$1.mlp.fc1.$2", false),
	rule(`transformer\.resblocks\.(\d+)\.mlp\.c_proj\.(weight|bias)`, "encoder.layers.$1.mlp.fc2.$2", false),
	rule(`ln_final\.(weight|bias)`, "final_layer_norm.$1", false),
	rule(`text_projection`, "text_projection", false),
	drop(`visual\..+|logit_scale|input_resolution|context_length|vocab_size`),
}}

// HFCLIPText is the layout of Hugging Face's CLIPTextModel
// (text_model.embeddings, text_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj,
// layer_norm1, mlp.{fc1,fc2}, layer_norm2}, text_model.final_layer_norm), as
// diffusers' text_encoder and, under cond_stage_model.transformer., SD1.x
// single files store it. The position_ids buffer is dropped.
// CLIPTextModelWithProjection's text_projection ([proj, width], a Linear)
// is not placed: ddgi keeps OpenAI's x·P orientation and SD does not use it.
var HFCLIPText = Table{Name: "hf-clip", Rules: []Rule{
	rule(`text_model\.embeddings\.(token_embedding|position_embedding)\.weight`, "embeddings.$1.weight", false),
	rule(`text_model\.encoder\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.(weight|bias)`, "encoder.layers.$1.self_attn.to_$2.$3", false),
	rule(`text_model\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)`, "encoder.layers.$1.self_attn.to_out.$2", false),
	rule(`text_model\.encoder\.layers\.(\d+)\.(layer_norm1|layer_norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)`, "encoder.layers.$1.$2.$3", false),
	rule(`text_model\.final_layer_norm\.(weight|bias)`, "final_layer_norm.$1", false),
	drop(`text_model\.embeddings\.position_ids`),
}}

// sdTextPrefix is where an SD1.x single-file checkpoint keeps its
// (HF-layout) text encoder.
const sdTextPrefix = "cond_stage_model.transformer."

// CLIPTextLayout tells the layout of a text tower's tensors (after
// CLIPText's prefix handling): HFCLIPText when they sit under text_model.,
// OpenAICLIPText otherwise.
func CLIPTextLayout(src map[string][]int64) Table {
	for name := range src {
		if strings.HasPrefix(name, "text_model.") {
			return HFCLIPText
		}
	}
	return OpenAICLIPText
}

// CLIPTextOptions are what the weights do not say.
type CLIPTextOptions struct {
	// Heads is the attention head count; 0 means width/64, OpenAI's rule
	// (build_model: transformer_heads = transformer_width // 64).
	Heads int64
	// GELU selects exact GELU for towers trained with it (OpenCLIP's);
	// otherwise OpenAI's quick_gelu.
	GELU bool
}

// InferCLIPText reads a text tower's config off its shapes in layout t
// (OpenAICLIPText or HFCLIPText): vocabulary and width from the token
// embedding, context from the position embedding, depth from the blocks,
// MLP width from the first MLP layer and, for OpenAI's layout, the
// projection width from text_projection. CLIP has q/k/v biases.
func InferCLIPText(t Table, src map[string][]int64, o CLIPTextOptions) (text.EncoderConfig, error) {
	c := text.EncoderConfig{AttnBias: true, Act: "quick_gelu", Heads: o.Heads}
	if o.GELU {
		c.Act = ""
	}
	names := map[string][3]string{ // token embedding, position embedding, first MLP layer
		OpenAICLIPText.Name: {"token_embedding.weight", "positional_embedding", "transformer.resblocks.0.mlp.c_fc.weight"},
		HFCLIPText.Name:     {"text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight", "text_model.encoder.layers.0.mlp.fc1.weight"},
	}
	layer := map[string]*regexp.Regexp{
		OpenAICLIPText.Name: regexp.MustCompile(`^transformer\.resblocks\.(\d+)\.ln_1\.weight$`),
		HFCLIPText.Name:     regexp.MustCompile(`^text_model\.encoder\.layers\.(\d+)\.layer_norm1\.weight$`),
	}
	n, ok := names[t.Name]
	if !ok {
		return c, fmt.Errorf("convert: %s is not a CLIP text layout", t.Name)
	}
	tok, pos, fc := src[n[0]], src[n[1]], src[n[2]]
	if len(tok) != 2 || len(pos) != 2 || len(fc) != 2 {
		return c, fmt.Errorf("%s layout: no token embedding, position embedding or first block (not a CLIP text tower)", t.Name)
	}
	c.Vocab, c.Dim, c.Context, c.MLP = tok[0], tok[1], pos[0], fc[0]
	for name := range src {
		if m := layer[t.Name].FindStringSubmatch(name); m != nil {
			l, ok := index(m[1])
			if !ok {
				return c, fmt.Errorf("%s layout: %s: layer number out of range", t.Name, name)
			}
			c.Layers = max(c.Layers, l+1)
		}
	}
	if p := src["text_projection"]; t.Name == OpenAICLIPText.Name && len(p) == 2 {
		c.Projection = p[1]
	}
	if c.Heads == 0 {
		c.Heads = c.Dim / 64
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s layout: %w", t.Name, err)
	}
	return c, nil
}

// CLIPText converts a CLIP text tower to ddgi's text encoder, its layout
// (OpenAI's state dict, HF's CLIPTextModel, or an SD1.x single file's
// cond_stage_model) and config inferred from the tensors. Its EOS is the
// highest id (vocab − 1), where OpenAI pools (argmax(ids): the
// end-of-text token); the store holds the weights.
func CLIPText(src map[string]Source, o CLIPTextOptions) (*text.Encoder, *nn.Store, error) {
	src = withPrefix(src, sdTextPrefix)
	if _, ok := src["embeddings.token_embedding.weight"]; ok {
		// Single files written with older transformers lack "text_model.".
		old := src
		src = make(map[string]Source, len(old))
		for n, s := range old {
			src["text_model."+n] = s
		}
	}
	shapes := shapesOf(src)
	t := CLIPTextLayout(shapes)
	c, err := InferCLIPText(t, shapes, o)
	if err != nil {
		return nil, nil, err
	}
	e, store, err := fill(t, src, func(p nn.Path) (*text.Encoder, error) { return text.NewEncoder(p, c), nil })
	if err != nil {
		return nil, nil, err
	}
	store.Freeze("")
	e.EOS = c.Vocab - 1
	return e, store, nil
}
