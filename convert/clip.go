package convert

import (
	"fmt"
	"regexp"

	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/text"
	"ddgi/torch"
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

// CLIPTextOptions are what the weights do not say.
type CLIPTextOptions struct {
	// Heads is the attention head count; 0 means width/64, OpenAI's rule
	// (build_model: transformer_heads = transformer_width // 64).
	Heads int64
}

// InferCLIPText reads the text tower's config off OpenAI-layout shapes:
// vocabulary and width from the token embedding, context from the
// positional embedding, depth from the blocks, MLP width from c_fc and the
// projection width from text_projection. CLIP has q/k/v biases and
// quick_gelu.
func InferCLIPText(src map[string][]int64, o CLIPTextOptions) (text.EncoderConfig, error) {
	c := text.EncoderConfig{AttnBias: true, Act: "quick_gelu", Heads: o.Heads}
	tok, pos, fc := src["token_embedding.weight"], src["positional_embedding"], src["transformer.resblocks.0.mlp.c_fc.weight"]
	if len(tok) != 2 || len(pos) != 2 || len(fc) != 2 {
		return c, fmt.Errorf("openai-clip layout: no token_embedding, positional_embedding or first block (not a CLIP text tower)")
	}
	c.Vocab, c.Dim, c.Context, c.MLP = tok[0], tok[1], pos[0], fc[0]
	for name := range src {
		if m := regexp.MustCompile(`^transformer\.resblocks\.(\d+)\.ln_1\.weight$`).FindStringSubmatch(name); m != nil {
			l, ok := index(m[1])
			if !ok {
				return c, fmt.Errorf("openai-clip layout: %s: layer number out of range", name)
			}
			c.Layers = max(c.Layers, l+1)
		}
	}
	if p := src["text_projection"]; len(p) == 2 {
		c.Projection = p[1]
	}
	if c.Heads == 0 {
		c.Heads = c.Dim / 64
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("openai-clip layout: %w", err)
	}
	return c, nil
}

// CLIPText converts the text tower of an OpenAI CLIP state dict to ddgi's
// text encoder, its config inferred from the tensors. Its EOS is the
// highest id (vocab − 1): OpenAI pools at argmax(ids), the end-of-text
// token; the store holds the weights.
func CLIPText(src map[string]Source, o CLIPTextOptions) (*text.Encoder, *nn.Store, error) {
	c, err := InferCLIPText(shapesOf(src), o)
	if err != nil {
		return nil, nil, err
	}
	store := nn.NewStore(torch.CPU, 0)
	store.SkipInit = true
	var e *text.Encoder
	if err := torch.Try(func() { e = text.NewEncoder(store.Root(), c) }); err != nil {
		return nil, nil, err
	}
	tensors, err := Apply(OpenAICLIPText, src, storeShapes(store))
	if err != nil {
		return nil, nil, err
	}
	if err := store.LoadFile(&safetensors.File{Tensors: tensors}); err != nil {
		return nil, nil, err
	}
	store.Freeze("")
	e.EOS = c.Vocab - 1
	return e, store, nil
}
