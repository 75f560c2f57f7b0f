package text

import (
	"encoding/json"
	"fmt"
	"math"

	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

// EncoderConfig sizes the CLIP-style text transformer.
type EncoderConfig struct {
	Vocab   int64 `json:"vocab"`   // token embedding rows (≥ the tokenizer's VocabSize)
	Context int64 `json:"context"` // fixed context length, <bos> and <eos> included
	Dim     int64 `json:"width"`
	Layers  int   `json:"layers"`
	Heads   int64 `json:"heads"`
	MLP     int64 `json:"mlp"` // hidden width of each block's MLP
	// AttnBias gives the attention q/k/v projections biases (CLIP has
	// them; ddgi's trained encoders do not).
	AttnBias bool `json:"attn_bias,omitempty"`
	// Act is the MLP's activation: "" is GELU (erf); "quick_gelu" is
	// x·σ(1.702x), what OpenAI's CLIP was trained with.
	Act string `json:"act,omitempty"`
	// Projection, when > 0, adds CLIP's text_projection [Width,Projection]
	// (no bias) that Project applies to the pooled embedding.
	Projection int64 `json:"projection,omitempty"`
}

// Width is the token embedding width (the U-Net's cross-attention context dim).
func (c EncoderConfig) Width() int64 { return c.Dim }

// ContextLength is the number of token positions.
func (c EncoderConfig) ContextLength() int64 { return c.Context }

var encoderPresets = map[string]EncoderConfig{
	"tiny":    {Vocab: 1024, Context: 16, Dim: 32, Layers: 2, Heads: 2, MLP: 128},
	"small64": {Vocab: 1024, Context: 48, Dim: 128, Layers: 4, Heads: 4, MLP: 512},
	"clip-l":  {Vocab: 49408, Context: 77, Dim: 768, Layers: 12, Heads: 12, MLP: 3072}, // SD1.5's CLIP ViT-L/14 text tower, ddgi's layers
	// OpenAI's CLIP ViT-L/14 text tower as SD1.5 uses it (HF CLIPTextModel:
	// 123,060,480 parameters; the projection is CLIPTextModelWithProjection's).
	"clip-vit-l14": {Vocab: 49408, Context: 77, Dim: 768, Layers: 12, Heads: 12, MLP: 3072, AttnBias: true, Act: "quick_gelu"},
}

// EncoderPreset returns a named configuration: tiny (tests), small64
// (shipped), clip-l (SD1.5's shape with ddgi's layers, shape tests only),
// clip-vit-l14 (OpenAI's CLIP ViT-L/14 text tower, what `ddgi convert` gives).
func EncoderPreset(name string) (EncoderConfig, error) {
	c, ok := encoderPresets[name]
	if !ok {
		return c, fmt.Errorf("text encoder preset %q unknown (tiny, small64, clip-l, clip-vit-l14)", name)
	}
	return c, nil
}

// Validate checks the sizes fit together.
func (c EncoderConfig) Validate() error {
	switch {
	case c.Vocab < int64(numSpecial)+256:
		return fmt.Errorf("text encoder: vocab %d below the byte alphabet", c.Vocab)
	case c.Context < 2 || c.Dim < 1 || c.Layers < 1 || c.MLP < 1:
		return fmt.Errorf("text encoder: bad sizes %+v", c)
	case c.Heads < 1 || c.Dim%c.Heads != 0:
		return fmt.Errorf("text encoder: width %d not divisible by %d heads", c.Dim, c.Heads)
	case c.Act != "" && c.Act != "quick_gelu":
		return fmt.Errorf("text encoder: activation %q (\"\" for gelu, quick_gelu)", c.Act)
	case c.Projection < 0:
		return fmt.Errorf("text encoder: projection width %d", c.Projection)
	}
	return nil
}

// block is one pre-LN transformer layer: x += attn(ln1 x); x += mlp(ln2 x).
type block struct {
	ln1, ln2 *nn.LayerNorm
	attn     *nn.MultiHeadAttention
	fc1, fc2 *nn.Linear
}

// Encoder is the text transformer. Checkpoint keys (HF CLIPTextModel names):
// embeddings.{token,position}_embedding.weight,
// encoder.layers.N.{layer_norm1,self_attn.{to_q,to_k,to_v,to_out},layer_norm2,mlp.{fc1,fc2}},
// final_layer_norm, and text_projection (OpenAI's [Width,Projection], x·P)
// when the config has one.
type Encoder struct {
	Config EncoderConfig
	// EOS is the id Pooled looks for: the tokenizer's end of text. NewEncoder
	// sets ddgi's EOSID; UseVocab sets another tokenizer's (CLIP: 49407).
	EOS       int64
	tokens    *nn.Embedding
	positions *torch.Tensor // [Context, Width]
	blocks    []block
	final     *nn.LayerNorm
	proj      *torch.Tensor // [Width,Projection] or nil
}

// NewEncoder builds the encoder's parameters under p. It panics on an
// invalid config (a programming error; presets are valid).
func NewEncoder(p nn.Path, c EncoderConfig) *Encoder {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	emb := p.Sub("embeddings")
	e := &Encoder{
		Config:    c,
		EOS:       EOSID,
		tokens:    nn.NewEmbedding(emb.Sub("token_embedding"), c.Vocab, c.Dim),
		positions: emb.Sub("position_embedding").Param("weight", []int64{c.Context, c.Dim}, nn.Normal(0.01)),
		final:     nn.NewLayerNorm(p.Sub("final_layer_norm"), c.Dim),
	}
	for i := 0; i < c.Layers; i++ {
		l := p.Sub("encoder").Sub("layers").Subf("%d", i)
		b := block{ln1: nn.NewLayerNorm(l.Sub("layer_norm1"), c.Dim)}
		if a := l.Sub("self_attn"); c.AttnBias {
			lin := func(name string) *nn.Linear { return nn.NewLinear(a.Sub(name), c.Dim, c.Dim, nn.LinearOpts{}) }
			b.attn = &nn.MultiHeadAttention{Q: lin("to_q"), K: lin("to_k"), V: lin("to_v"), Out: lin("to_out"), Heads: c.Heads, Dim: c.Dim}
		} else {
			b.attn = nn.NewMultiHeadAttention(a, c.Dim, c.Dim, c.Dim, c.Heads)
		}
		b.ln2 = nn.NewLayerNorm(l.Sub("layer_norm2"), c.Dim)
		b.fc1 = nn.NewLinear(l.Sub("mlp").Sub("fc1"), c.Dim, c.MLP, nn.LinearOpts{})
		b.fc2 = nn.NewLinear(l.Sub("mlp").Sub("fc2"), c.MLP, c.Dim, nn.LinearOpts{})
		e.blocks = append(e.blocks, b)
	}
	if c.Projection > 0 {
		e.proj = p.Param("text_projection", []int64{c.Dim, c.Projection}, nn.Normal(1/math.Sqrt(float64(c.Dim))))
	}
	return e
}

// act is the MLP nonlinearity of the config.
func (e *Encoder) act(x *torch.Tensor) *torch.Tensor {
	if e.Config.Act == "quick_gelu" {
		return x.Mul(x.MulScalar(1.702).Sigmoid())
	}
	return x.Gelu()
}

// Project maps pooled embeddings [B,Width] into CLIP's joint space
// [B,Projection]; without a projection it returns pooled unchanged.
func (e *Encoder) Project(pooled *torch.Tensor) *torch.Tensor {
	if e.proj == nil {
		return pooled
	}
	p := nn.Compute(e.proj)
	defer nn.Done(e.proj, p)
	return pooled.To(p.DType()).Matmul(p).To(torch.Float32)
}

// Device is where the encoder's weights live.
func (e *Encoder) Device() torch.Device { return e.positions.Device() }

// Forward maps ids [B,L] (L ≤ ContextLength) to token embeddings [B,L,Width]
// after the final LayerNorm; position i sees only positions ≤ i.
func (e *Encoder) Forward(ids *torch.Tensor) *torch.Tensor {
	l := ids.Size(1)
	if l > e.Config.Context {
		panic(&torch.Error{Op: "text encoder", Msg: fmt.Sprintf("%d tokens exceed the context length %d", l, e.Config.Context)})
	}
	pos := nn.Compute(e.positions)
	x := e.tokens.Forward(ids).Add(pos.Narrow(0, 0, l))
	nn.Done(e.positions, pos)
	mask := nn.CausalMask(l, ids.Device())
	for _, b := range e.blocks {
		// One scope per block: its temporaries go back to the allocator
		// before the next block allocates, so a call reuses a few MB of
		// warm memory instead of faulting in ~14 MB a block (CLIP-L's
		// first call 0.67 → 0.30 s); autograd keeps what it saved.
		s := torch.NewScope()
		prev := x
		a, _ := b.attn.Forward(b.ln1.Forward(x), nil, mask, false)
		x = x.Add(a)
		x = x.Add(b.fc2.Forward(e.act(b.fc1.Forward(b.ln2.Forward(x)))))
		s.Keep(x)
		s.Close()
		prev.Free()
	}
	return e.final.Forward(x).To(torch.Float32) // a bf16 tower's too
}

// UseVocab pairs the encoder with its tokenizer: Pooled then looks for the
// tokenizer's EOS. Every id must have an embedding row.
func (e *Encoder) UseVocab(v Vocab) error {
	if n := v.VocabSize(); int64(n) > e.Config.Vocab {
		return fmt.Errorf("tokenizer has %d tokens, the text encoder embeds only %d", n, e.Config.Vocab)
	}
	e.EOS = v.Specials().EOS
	return nil
}

// Pooled takes hidden [B,L,Width] (Forward's output) at each row's first
// e.EOS (CLIP's sentence embedding), or at the last position if a row has
// none. The first one, not the last: a tokenizer that pads with EOS (SD
// 1.5's) repeats it, and Hugging Face's CLIPTextModel pools at the first
// (its argmax over ids, or over ids == eos_token_id, both find the first).
func (e *Encoder) Pooled(ids, hidden *torch.Tensor) *torch.Tensor {
	b, l, w := hidden.Size(0), hidden.Size(1), hidden.Size(2)
	idx := EOSPositions(ids, e.EOS).ClampMax(float64(l - 1)).To(torch.Int64)
	return hidden.Gather(1, idx.Reshape(b, 1, 1).Expand(b, 1, w)).Squeeze(1)
}

// EOSPositions is, for ids [B,L], each row's first position holding eos, or
// L where a row has none: [B] float32 (whole numbers).
func EOSPositions(ids *torch.Tensor, eos int64) *torch.Tensor {
	l := float64(ids.Size(1))
	// Score L−i at each eos, 0 elsewhere: the row maximum is the first eos.
	left := torch.Arange(0, l, 1, torch.Float32, ids.Device()).RSubScalar(l)
	first := ids.EqScalar(float64(eos)).To(torch.Float32).Mul(left).Amax([]int64{1}, false)
	return first.RSubScalar(l)
}

// WordMask marks each row's word tokens, [B,L] float32: the positions
// before its first EOS that are not BOS. What follows the first EOS is
// padding whatever its id (OpenAI's CLIP pads with id 0, a real token, "!").
func WordMask(ids *torch.Tensor, sp Specials) *torch.Tensor {
	l := ids.Size(1)
	pos := torch.Arange(0, float64(l), 1, torch.Float32, ids.Device()).Reshape(1, l)
	before := pos.Lt(EOSPositions(ids, sp.EOS).Unsqueeze(1))
	return before.LogicalAnd(ids.NeScalar(float64(sp.BOS))).To(torch.Float32)
}

// LoadEncoder reads weights saved with the config in their metadata (as
// `ddgi train text` writes them) into a fresh store on dev, in fp32: the
// caller may train them.
func LoadEncoder(path string, dev torch.Device) (*Encoder, *nn.Store, error) {
	return loadEncoder(path, dev, false, nn.FP32)
}

// LoadFrozenEncoder is LoadEncoder for an encoder that only encodes: no
// random initialisation, and an fp16 file (CLIP ViT-L/14's tower) is
// upcast once as it loads, not per call as the U-Net's weights are. With
// nn.BF16 the tower is kept and run in bfloat16 (Forward and Project
// still return fp32).
func LoadFrozenEncoder(path string, dev torch.Device, p nn.Precision) (*Encoder, *nn.Store, error) {
	return loadEncoder(path, dev, true, p)
}

func loadEncoder(path string, dev torch.Device, frozen bool, p nn.Precision) (*Encoder, *nn.Store, error) {
	f, err := safetensors.Open(path) // tensor by tensor: the file is never held whole
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var meta struct {
		Encoder EncoderConfig `json:"encoder"`
	}
	if err := json.Unmarshal([]byte(f.Metadata["config"]), &meta); err != nil || meta.Encoder.Dim == 0 {
		return nil, nil, fmt.Errorf("load %s: no text encoder config in metadata", path)
	}
	if err := meta.Encoder.Validate(); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	s := nn.NewStore(dev, 0)
	s.SkipInit = true // LoadLazy overwrites every tensor
	if frozen {
		s = nn.NewInferenceStore(dev, f, p)
		// Each weight serves only B×77 tokens a call, so fp16 storage would
		// spend almost as long upcasting as computing (CLIP-L, warm: 0.45 s
		// a call against 0.25 s): fp32 in memory, 246 MB more than fp16.
		s.Half = false
	}
	e := NewEncoder(s.Root(), meta.Encoder)
	if err := s.LoadLazy(f); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	return e, s, nil
}
