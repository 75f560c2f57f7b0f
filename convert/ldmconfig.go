package convert

import (
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"

	"ddgi/diffusion"
)

// LDMNet is what an LDM .yaml config (v1-inference.yaml's unet_config,
// cldm_v15.yaml's control_stage_config) says about a U-Net or ControlNet.
type LDMNet struct {
	ImageSize            int64   `yaml:"image_size"` // the latent side
	InChannels           int64   `yaml:"in_channels"`
	ModelChannels        int64   `yaml:"model_channels"`
	AttentionResolutions []int64 `yaml:"attention_resolutions"` // downsampling factors with attention
	NumResBlocks         int     `yaml:"num_res_blocks"`
	ChannelMult          []int64 `yaml:"channel_mult"`
	NumHeads             int64   `yaml:"num_heads"`
	NumHeadChannels      int64   `yaml:"num_head_channels"`
	TransformerDepth     int     `yaml:"transformer_depth"`
	ContextDim           int64   `yaml:"context_dim"`
	HintChannels         int64   `yaml:"hint_channels"`
	LinearInTransformer  bool    `yaml:"use_linear_in_transformer"`
}

// ReadLDMConfig reads the U-Net (control false) or ControlNet (true)
// parameters of an LDM/ControlNet .yaml and returns them as options for
// LDMUNet / ControlNet: the heads and latent size the weights cannot say,
// and every other value to check the weights against.
func ReadLDMConfig(path string, control bool) (LDMOptions, error) {
	b, err := readSmall(path) // configs are a few KB
	if err != nil {
		return LDMOptions{}, err
	}
	var doc struct {
		Model struct {
			Params struct {
				UNet    struct{ Params *LDMNet } `yaml:"unet_config"`
				Control struct{ Params *LDMNet } `yaml:"control_stage_config"`
			}
		}
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return LDMOptions{}, fmt.Errorf("%s: %w", path, err)
	}
	p, what := doc.Model.Params.UNet.Params, "model.params.unet_config.params"
	if control {
		p, what = doc.Model.Params.Control.Params, "model.params.control_stage_config.params"
	}
	if p == nil {
		return LDMOptions{}, fmt.Errorf("%s: no %s", path, what)
	}
	o := LDMOptions{LatentSize: p.ImageSize, Expect: p}
	switch {
	case p.LinearInTransformer:
		return o, fmt.Errorf("%s: use_linear_in_transformer (SD2.x) is not supported", path)
	case p.NumHeads > 0:
		o.Heads = p.NumHeads
	case p.NumHeadChannels > 0:
		// One head count for every level is all ddgi's U-Net has.
		for _, m := range p.ChannelMult {
			if h := p.ModelChannels * m / p.NumHeadChannels; o.Heads != 0 && h != o.Heads {
				return o, fmt.Errorf("%s: num_head_channels %d gives a different head count per level: not supported", path, p.NumHeadChannels)
			} else {
				o.Heads = h
			}
		}
	}
	return o, nil
}

// checkLDM reports where a config inferred from the weights disagrees
// with the .yaml the user gave.
func checkLDM(c diffusion.Config, p *LDMNet) error {
	var channels []int64
	var attn []bool
	for i, m := range p.ChannelMult {
		channels = append(channels, p.ModelChannels*m)
		attn = append(attn, slices.Contains(p.AttentionResolutions, int64(1)<<i))
	}
	bad := func(what string, yaml, weights any) error {
		return fmt.Errorf("the config's %s %v disagrees with the weights' %v", what, yaml, weights)
	}
	switch {
	case !slices.Equal(channels, c.Channels):
		return bad("model_channels × channel_mult", channels, c.Channels)
	case !slices.Equal(attn, c.Attention):
		return bad("attention_resolutions (levels with attention)", attn, c.Attention)
	case p.NumResBlocks != c.LayersPerBlock:
		return bad("num_res_blocks", p.NumResBlocks, c.LayersPerBlock)
	case p.ContextDim != c.ContextDim:
		return bad("context_dim", p.ContextDim, c.ContextDim)
	case p.TransformerDepth != 0 && p.TransformerDepth != c.TransformerDepth:
		return bad("transformer_depth", p.TransformerDepth, c.TransformerDepth)
	case p.InChannels != 0 && p.InChannels != c.LatentChannels:
		return bad("in_channels", p.InChannels, c.LatentChannels)
	}
	return nil
}
