package convert

import (
	"fmt"
	"regexp"

	"ddgi/diffusion/vae"
	"ddgi/nn"
)

// ldmVAEPrefix is where an LDM / SD single-file checkpoint keeps its VAE.
const ldmVAEPrefix = "first_stage_model."

// LDMVAETable is the layout of LDM's AutoencoderKL (CompVis
// ldm/modules/diffusionmodules/model.py Encoder/Decoder) with levels
// resolution levels, onto ddgi's vae.Autoencoder (diffusers' names).
// LDM's attention projections are 1×1 convs (ddgi: linears), its
// decoder.up is indexed by resolution level, deepest last (ddgi's
// up_blocks run in the order they are applied), and its shortcut is
// nin_shortcut. A training checkpoint's loss (LPIPS, discriminator) and
// EMA copies are dropped.
func LDMVAETable(levels int) Table {
	resnet := `(norm1|norm2|conv1|conv2)\.(weight|bias)`
	up := func(m []string) string {
		i, ok := index(m[1])
		if !ok || i >= levels {
			return "decoder.up." + m[1] + " (no such level)" // reported as a name the network lacks
		}
		return fmt.Sprintf("decoder.up_blocks.%d", levels-1-i)
	}
	return Table{Name: "ldm-vae", Rules: []Rule{
		rule(`(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)`, "$1.$2.$3", false),
		rule(`(encoder|decoder)\.norm_out\.(weight|bias)`, "$1.conv_norm_out.$2", false),
		rule(`(quant_conv|post_quant_conv)\.(weight|bias)`, "$1.$2", false),
		rule(`encoder\.down\.(\d+)\.block\.(\d+)\.`+resnet, "encoder.down_blocks.$1.resnets.$2.$3.$4", false),
		rule(`encoder\.down\.(\d+)\.block\.(\d+)\.nin_shortcut\.(weight|bias)`, "encoder.down_blocks.$1.resnets.$2.conv_shortcut.$3", false),
		rule(`encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)`, "encoder.down_blocks.$1.downsamplers.0.conv.$2", false),
		{From: regexp.MustCompile(`^decoder\.up\.(\d+)\.block\.(\d+)\.` + resnet + `$`), To: func(m []string) string {
			return fmt.Sprintf("%s.resnets.%s.%s.%s", up(m), m[2], m[3], m[4])
		}},
		{From: regexp.MustCompile(`^decoder\.up\.(\d+)\.block\.(\d+)\.nin_shortcut\.(weight|bias)$`), To: func(m []string) string {
			return fmt.Sprintf("%s.resnets.%s.conv_shortcut.%s", up(m), m[2], m[3])
		}},
		{From: regexp.MustCompile(`^decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)$`), To: func(m []string) string {
			return fmt.Sprintf("%s.upsamplers.0.conv.%s", up(m), m[2])
		}},
		rule(`(encoder|decoder)\.mid\.block_1\.`+resnet, "$1.mid_block.resnets.0.$2.$3", false),
		rule(`(encoder|decoder)\.mid\.block_2\.`+resnet, "$1.mid_block.resnets.1.$2.$3", false),
		rule(`(encoder|decoder)\.mid\.attn_1\.norm\.(weight|bias)`, "$1.mid_block.attentions.0.group_norm.$2", false),
		rule(`(encoder|decoder)\.mid\.attn_1\.(q|k|v)\.(weight|bias)`, "$1.mid_block.attentions.0.to_$2.$3", true),
		rule(`(encoder|decoder)\.mid\.attn_1\.proj_out\.(weight|bias)`, "$1.mid_block.attentions.0.to_out.$2", true),
		drop(`loss\..+|model_ema\..+`),
	}}
}

// LDMVAEOptions are what an LDM VAE's weights do not say.
type LDMVAEOptions struct {
	// Scale is the latent scale factor (the model config's scale_factor);
	// 0 means SD1.x/2.x's 0.18215.
	Scale float64
	// Resolution is the training image side kept in the config; 0 means 512.
	Resolution int64
}

// InferLDMVAE reads an LDM autoencoder's config off its tensor shapes
// (names without the first_stage_model. prefix). LDM fixes 32 groups, ε 1e-6,
// biased attention and (0,1,0,1) downsampling padding; it must have no
// attention outside the mid blocks (SD's attn_resolutions is empty) and its
// embed_dim must equal z_channels (as in every SD VAE).
func InferLDMVAE(src map[string][]int64, o LDMVAEOptions) (vae.Config, error) {
	c := vae.Config{Groups: 32, AttnBias: true, DownPad: "asym", NormEps: 1e-6, Scale: o.Scale, Resolution: o.Resolution}
	if c.Scale == 0 {
		c.Scale = 0.18215
	}
	if c.Resolution == 0 {
		c.Resolution = 512
	}
	in, din := src["encoder.conv_in.weight"], src["decoder.conv_in.weight"]
	if len(in) != 4 || len(din) != 4 {
		return c, fmt.Errorf("ldm-vae layout: no encoder.conv_in / decoder.conv_in weights (not an LDM autoencoder)")
	}
	c.Channels, c.ZChannels = in[0], din[1]
	levels, blocks := 0, 0
	for name := range src {
		if m := regexp.MustCompile(`^encoder\.down\.(\d+)\.block\.(\d+)\.conv1\.weight$`).FindStringSubmatch(name); m != nil {
			l, ok1 := index(m[1])
			b, ok2 := index(m[2])
			if !ok1 || !ok2 {
				return c, fmt.Errorf("ldm-vae layout: %s: level or block number out of range", name)
			}
			levels, blocks = max(levels, l+1), max(blocks, b+1)
		}
	}
	c.ResBlocks = blocks
	for i := 0; i < levels; i++ {
		w := src[fmt.Sprintf("encoder.down.%d.block.0.conv1.weight", i)]
		if len(w) != 4 || c.Channels == 0 || w[0]%c.Channels != 0 {
			return c, fmt.Errorf("ldm-vae layout: level %d's first block has weight %v, not a multiple of %d channels", i, w, c.Channels)
		}
		c.Mult = append(c.Mult, w[0]/c.Channels)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("ldm-vae layout: %w", err)
	}
	return c, nil
}

// LDMVAE converts an LDM AutoencoderKL (a whole SD checkpoint, whose VAE
// is under first_stage_model., or a VAE-only file) to ddgi's autoencoder,
// its config inferred from the tensors; the store holds the weights.
func LDMVAE(src map[string]Source, o LDMVAEOptions) (*vae.Autoencoder, *nn.Store, error) {
	src = withPrefix(src, ldmVAEPrefix)
	c, err := InferLDMVAE(shapesOf(src), o)
	if err != nil {
		return nil, nil, err
	}
	a, store, err := fill(LDMVAETable(len(c.Mult)), src, func(p nn.Path) (*vae.Autoencoder, error) { return vae.New(p, c), nil })
	if err != nil {
		return nil, nil, err
	}
	store.Freeze("")
	return a, store, nil
}
