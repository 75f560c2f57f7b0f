package convert

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"ddgi/diffusion"
	"ddgi/kinds"
	"ddgi/nn"
)

// Prefixes of the LDM / cldm networks inside a single-file checkpoint
// (CompVis' and lllyasviel's .ckpt/.safetensors, ControlNet v1.0 .pth) and
// inside lllyasviel's v1.1 ControlNet-only .pth files.
const (
	LDMUNetPrefix    = "model.diffusion_model."
	LDMControlPrefix = "control_model."
)

// LDMOptions are what an LDM U-Net's tensors cannot say about it.
type LDMOptions struct {
	// Heads is UNetModel's num_heads (every level; SD1.x's layout with
	// legacy False). 0 takes SD1.5's 8: head count leaves no trace in the
	// projection shapes.
	Heads int64
	// LatentSize is the latent side the model is run at; 0 takes SD1.5's
	// 64 (512² images). Only the pipeline's defaults depend on it.
	LatentSize int64
	// Expect, from the user's .yaml (ReadLDMConfig), is checked against
	// what the weights say; nil checks nothing.
	Expect *LDMNet
}

// ldmResnet maps the inside of openaimodel.ResBlock onto ddgi's ResBlock
// (diffusers' ResnetBlock2D names).
var ldmResnet = []struct{ from, to string }{
	{"in_layers.0.", "norm1."},
	{"in_layers.2.", "conv1."},
	{"emb_layers.1.", "time_emb_proj."},
	{"out_layers.0.", "norm2."},
	{"out_layers.3.", "conv2."},
	{"skip_connection.", "conv_shortcut."},
}

func ldmResnetPart(rest string) string {
	for _, r := range ldmResnet {
		if s, ok := strings.CutPrefix(rest, r.from); ok {
			return r.to + s
		}
	}
	return "?" + rest // no ddgi tensor has this name: Plan reports it
}

// ldmTransformerPart: LDM's SpatialTransformer already has diffusers'
// names except the attention output, a Sequential(Linear, Dropout) there
// and a plain Linear in ddgi.
func ldmTransformerPart(rest string) string {
	return strings.Replace(rest, ".to_out.0.", ".to_out.", 1)
}

// ldmEncoderRules place time_embed, input_blocks and middle_block, which
// the U-Net and cldm's ControlNet share. layers is num_res_blocks: level i
// holds input blocks 1+i(layers+1) … and its downsampler last.
func ldmEncoderRules(layers int) []Rule {
	layers = max(layers, 1) // a U-Net has ≥ 1 resnet per level; avoids ÷0 below
	return []Rule{
		rule(`time_embed\.0\.(weight|bias)`, "time_embedding.linear_1.$1", false),
		rule(`time_embed\.2\.(weight|bias)`, "time_embedding.linear_2.$1", false),
		rule(`input_blocks\.0\.0\.(weight|bias)`, "conv_in.$1", false),
		{From: regexp.MustCompile(`^input_blocks\.(\d{1,6})\.([012])\.(.+)$`), To: func(m []string) string {
			k := atoi(m[1]) - 1
			lvl, j := k/(layers+1), k%(layers+1)
			switch {
			case j == layers && m[2] == "0" && strings.HasPrefix(m[3], "op."):
				return fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.%s", lvl, strings.TrimPrefix(m[3], "op."))
			case j < layers && m[2] == "0":
				return fmt.Sprintf("down_blocks.%d.resnets.%d.%s", lvl, j, ldmResnetPart(m[3]))
			case j < layers && m[2] == "1":
				return fmt.Sprintf("down_blocks.%d.attentions.%d.%s", lvl, j, ldmTransformerPart(m[3]))
			}
			return "?" + m[0]
		}},
		{From: regexp.MustCompile(`^middle_block\.([012])\.(.+)$`), To: func(m []string) string {
			switch m[1] {
			case "0":
				return "mid_block.resnets.0." + ldmResnetPart(m[2])
			case "1":
				return "mid_block.attentions.0." + ldmTransformerPart(m[2])
			}
			return "mid_block.resnets.1." + ldmResnetPart(m[2])
		}},
	}
}

// LDMUNetTable is the layout of LDM's openaimodel.UNetModel (SD1.x's
// model.diffusion_model, prefix removed) with num_res_blocks layers.
// Output block N is decoder level N/(layers+1), resnet N%(layers+1); its
// upsampler is module 1, or 2 after a spatial transformer.
func LDMUNetTable(layers int) Table {
	layers = max(layers, 1)
	rules := ldmEncoderRules(layers)
	rules = append(rules,
		Rule{From: regexp.MustCompile(`^output_blocks\.(\d{1,6})\.([012])\.(.+)$`), To: func(m []string) string {
			n := atoi(m[1])
			lvl, j := n/(layers+1), n%(layers+1)
			switch {
			case m[2] != "0" && strings.HasPrefix(m[3], "conv."):
				return fmt.Sprintf("up_blocks.%d.upsamplers.0.%s", lvl, m[3])
			case m[2] == "0":
				return fmt.Sprintf("up_blocks.%d.resnets.%d.%s", lvl, j, ldmResnetPart(m[3]))
			case m[2] == "1":
				return fmt.Sprintf("up_blocks.%d.attentions.%d.%s", lvl, j, ldmTransformerPart(m[3]))
			}
			return "?" + m[0]
		}},
		rule(`out\.0\.(weight|bias)`, "conv_norm_out.$1", false),
		rule(`out\.2\.(weight|bias)`, "conv_out.$1", false),
	)
	return Table{Name: "ldm-unet", Rules: rules}
}

// CLDMControlNetTable is the layout of lllyasviel's cldm.ControlNet
// (control_model., prefix removed): the U-Net's encoder names, then
// input_hint_block (convs at even indices, SiLUs between; hintConvs convs,
// the last the zero conv), zero_convs.N.0 and middle_block_out.0.
func CLDMControlNetTable(layers, hintConvs int) Table {
	rules := ldmEncoderRules(layers)
	rules = append(rules,
		Rule{From: regexp.MustCompile(`^input_hint_block\.(\d{1,6})\.(weight|bias)$`), To: func(m []string) string {
			k := atoi(m[1])
			switch {
			case k%2 != 0:
				return "?" + m[0] // SiLUs have no tensors
			case k == 0:
				return "controlnet_cond_embedding.conv_in." + m[2]
			case k/2 == hintConvs-1:
				return "controlnet_cond_embedding.conv_out." + m[2]
			}
			return fmt.Sprintf("controlnet_cond_embedding.blocks.%d.%s", k/2-1, m[2])
		}},
		rule(`zero_convs\.(\d{1,6})\.0\.(weight|bias)`, "controlnet_down_blocks.$1.$2", false),
		rule(`middle_block_out\.0\.(weight|bias)`, "controlnet_mid_block.$1", false),
	)
	return Table{Name: "cldm-controlnet", Rules: rules}
}

// selectNet returns the tensors under prefix with it removed, or src itself
// when no name has the prefix (a bare state dict); a file that holds only
// the other network (other) is named as such.
func selectNet(src map[string]Source, prefix, other, what string) (map[string]Source, error) {
	out := withPrefix(src, prefix)
	if len(out) == len(src) {
		for n := range src {
			if strings.HasPrefix(n, other) {
				return nil, fmt.Errorf("no %s tensors (%s*) in the file, which holds %s*", what, prefix, other)
			}
		}
	}
	return out, nil
}

var (
	ldmInputRe  = regexp.MustCompile(`^input_blocks\.(\d{1,6})\.`)
	ldmDownRe   = regexp.MustCompile(`^input_blocks\.(\d{1,6})\.0\.op\.weight$`)
	ldmDepthRe  = regexp.MustCompile(`^middle_block\.1\.transformer_blocks\.(\d{1,6})\.norm1\.weight$`)
	ldmHintRe   = regexp.MustCompile(`^input_hint_block\.(\d{1,6})\.weight$`)
	sd15CondEmb = []int64{16, 32, 96, 256} // cldm's input_hint_block widths
)

// inferLDM reads a diffusion.Config off the (prefix-free) shapes of an LDM
// U-Net or cldm ControlNet encoder. What the shapes cannot say follows
// SD1.5: the heads and latent size (o), GroupNorm's 32 groups (LDM
// hard-codes them), the scaled-linear schedule of v1-inference.yaml
// (β 0.00085–0.012, 1000 steps, ε-prediction) sampled on LDM's DDIM grid
// (leading, offset 1), and the VAE latent space.
func inferLDM(src map[string][]int64, o LDMOptions) (diffusion.Config, error) {
	c, err := diffusion.Preset("sd15")
	if err != nil {
		return c, err
	}
	c.Name = "ldm"
	if o.Heads > 0 {
		c.Heads = o.Heads
	}
	if o.LatentSize > 0 {
		c.LatentSize = o.LatentSize
	}
	in := src["input_blocks.0.0.weight"]
	if _, ok := src["conv_in.weight"]; ok && len(in) == 0 {
		return c, fmt.Errorf("ldm: diffusers names (conv_in, down_blocks…): convert the diffusers folder (with its config.json) instead: --from diffusers for a pipeline, --from controlnet --in FOLDER for a ControlNetModel")
	}
	if len(in) != 4 {
		return c, fmt.Errorf("ldm: no input_blocks.0.0 conv: not an LDM UNetModel or cldm ControlNet")
	}
	c.LatentChannels = in[1]
	maxIn, firstDown := 0, 0
	for n := range src {
		if m := ldmInputRe.FindStringSubmatch(n); m != nil {
			maxIn = max(maxIn, atoi(m[1]))
		}
		if m := ldmDownRe.FindStringSubmatch(n); m != nil && (firstDown == 0 || atoi(m[1]) < firstDown) {
			firstDown = atoi(m[1])
		}
	}
	layers := maxIn // one level: no downsampler
	if firstDown > 0 {
		layers = firstDown - 1
	}
	if layers < 1 || (maxIn+1)%(layers+1) != 0 {
		return c, fmt.Errorf("ldm: input blocks 0…%d do not form levels of resnets and a downsampler", maxIn)
	}
	c.LayersPerBlock = layers
	levels := (maxIn + 1) / (layers + 1)
	c.Channels, c.Attention = nil, nil
	for i := 0; i < levels; i++ {
		n := 1 + i*(layers+1)
		w := src[fmt.Sprintf("input_blocks.%d.0.out_layers.3.weight", n)]
		if len(w) != 4 {
			return c, fmt.Errorf("ldm: input block %d is not a ResBlock", n)
		}
		c.Channels = append(c.Channels, w[0])
		p := src[fmt.Sprintf("input_blocks.%d.1.proj_in.weight", n)]
		if p != nil && len(p) != 4 {
			return c, fmt.Errorf("ldm: linear transformer projections (use_linear_in_transformer, SD2.x) are not supported")
		}
		c.Attention = append(c.Attention, p != nil)
	}
	c.TransformerDepth = 0
	for n := range src {
		if m := ldmDepthRe.FindStringSubmatch(n); m != nil {
			c.TransformerDepth = max(c.TransformerDepth, atoi(m[1])+1)
		}
	}
	k := src["middle_block.1.transformer_blocks.0.attn2.to_k.weight"]
	if c.TransformerDepth == 0 || len(k) != 2 {
		return c, fmt.Errorf("ldm: the middle block has no spatial transformer (use_spatial_transformer False is not SD's U-Net)")
	}
	c.ContextDim = k[1]
	if o := src["out.2.weight"]; o != nil && (len(o) != 4 || o[0] != c.LatentChannels) {
		return c, fmt.Errorf("ldm: %v output conv for %d input channels (ddgi predicts in the latent's width)", o, c.LatentChannels)
	}
	c.HintChannels = 3 // lllyasviel's ControlNets; branches say their own
	// LDM's DDIMSampler (make_ddim_timesteps "uniform") steps 1, 1+T/S, …
	c.Spacing, c.StepsOffset = "leading", 1
	c.CondEmbedChannels = append([]int64(nil), sd15CondEmb...)
	if o.Expect != nil {
		if err := checkLDM(c, o.Expect); err != nil {
			return c, fmt.Errorf("ldm: %w", err)
		}
	}
	return c, nil
}

// hintWidths reads cldm's input_hint_block: the hint's channels and the
// condition-embedding widths (conv_in's, then every stride-2 conv's), and
// the number of convs. Same-width convs must precede each stride-2 conv,
// as in cldm and ddgi's CondEmbedding.
func hintWidths(src map[string][]int64) (hint int64, widths []int64, convs int, err error) {
	var idx []int
	for n := range src {
		if m := ldmHintRe.FindStringSubmatch(n); m != nil {
			idx = append(idx, atoi(m[1]))
		}
	}
	sort.Ints(idx)
	for i, k := range idx {
		if k != 2*i {
			return 0, nil, 0, fmt.Errorf("cldm: input_hint_block convs at %v, want every even index", idx)
		}
	}
	if len(idx) < 2 || len(idx)%2 != 0 {
		return 0, nil, 0, fmt.Errorf("cldm: input_hint_block has %d convs, want conv_in, pairs, and a zero conv", len(idx))
	}
	for _, k := range idx {
		if w := src[fmt.Sprintf("input_hint_block.%d.weight", k)]; len(w) != 4 {
			return 0, nil, 0, fmt.Errorf("cldm: input_hint_block.%d.weight is %v, not a conv", k, w)
		}
	}
	w := func(k int) []int64 { return src[fmt.Sprintf("input_hint_block.%d.weight", 2*k)] }
	hint, widths = w(0)[1], []int64{w(0)[0]}
	for k := 1; k+1 < len(idx); k += 2 {
		same, next := w(k), w(k+1)
		if same[0] != same[1] || same[0] != widths[len(widths)-1] || next[1] != same[0] {
			return 0, nil, 0, fmt.Errorf("cldm: input_hint_block convs %d/%d are %v/%v, not a same-width conv and a stride-2 conv", 2*k, 2*k+2, same, next)
		}
		widths = append(widths, next[0])
	}
	return hint, widths, len(idx), nil
}

// LDMUNet converts an LDM UNetModel (SD1.x; a single-file checkpoint's
// model.diffusion_model.* tensors, other keys ignored, or a bare state
// dict) to a ddgi diffusion model on the CPU, config from the shapes (see
// inferLDM). Every U-Net tensor is placed and shape-checked.
func LDMUNet(src map[string]Source, o LDMOptions) (*diffusion.Model, error) {
	src, err := selectNet(src, LDMUNetPrefix, LDMControlPrefix, "U-Net")
	if err != nil {
		return nil, err
	}
	c, err := inferLDM(shapesOf(src), o)
	if err != nil {
		return nil, err
	}
	u, store, err := fill(LDMUNetTable(c.LayersPerBlock), src, func(p nn.Path) (*diffusion.UNet, error) { return diffusion.NewUNet(p, c) })
	if err != nil {
		return nil, err
	}
	store.Freeze("")
	sch, err := diffusion.NewSchedule(c)
	if err != nil {
		return nil, err
	}
	return &diffusion.Model{Config: c, Store: store, UNet: u, Controls: map[kinds.Cond]*diffusion.ControlNet{}, Schedule: sch}, nil
}

// ControlNet converts lllyasviel's cldm.ControlNet (control_model.* of a
// v1.0 single file or a v1.1 .pth, or a bare state dict) to a ddgi branch
// of condition kind (kinds.Mask for seg, kinds.Scribble for
// scribble), config from its shapes (n.Enc.Config; HintChannels from the
// hint block, 3 for the public models).
func ControlNet(src map[string]Source, kind kinds.Cond, o LDMOptions) (*diffusion.ControlNet, error) {
	src, err := selectNet(src, LDMControlPrefix, LDMUNetPrefix, "ControlNet")
	if err != nil {
		return nil, err
	}
	shapes := shapesOf(src)
	c, err := inferLDM(shapes, o)
	if err != nil {
		return nil, err
	}
	hint, widths, convs, err := hintWidths(shapes)
	if err != nil {
		return nil, err
	}
	c.HintChannels, c.CondEmbedChannels = hint, widths
	n, store, err := fill(CLDMControlNetTable(c.LayersPerBlock, convs), src, func(p nn.Path) (*diffusion.ControlNet, error) {
		return diffusion.NewControlNetIn(p.Store(), c, kind)
	})
	if err != nil {
		return nil, err
	}
	store.Freeze("")
	return n, nil
}

// AttachControl adds a converted branch to a converted U-Net after
// checking that their configs agree (as diffusion's LoadControl does).
func AttachControl(m *diffusion.Model, kind kinds.Cond, n *diffusion.ControlNet) error {
	if err := diffusion.CheckBranchConfig(m.Config, n.Enc.Config); err != nil {
		return fmt.Errorf("controlnet: %w", err)
	}
	if _, dup := m.Controls[kind]; dup {
		return fmt.Errorf("a %s branch is already attached", kind)
	}
	m.Controls[kind] = n
	return nil
}
