package stylegan2

import (
	"fmt"
	"math"
	"math/bits"
	"sort"
)

// Config holds every hyper-parameter of a StyleGAN2 generator and
// discriminator pair. It travels in the safetensors metadata ("config").
type Config struct {
	Preset     string `json:"preset"`
	Resolution int    `json:"resolution"` // output side, a power of two ≥ 8
	ZDim       int    `json:"z_dim"`
	WDim       int    `json:"w_dim"`
	// CDim is the conditioning width fed to the mapping network (EG3D's
	// 25-float camera); 0 is unconditional.
	CDim          int     `json:"c_dim"`
	MappingLayers int     `json:"mapping_layers"` // 8 at full scale
	MappingLRMul  float64 `json:"mapping_lr_mul"` // 0.01
	// Channels at resolution r: min(ChannelBase/r, ChannelMax).
	ChannelBase int `json:"channel_base"`
	ChannelMax  int `json:"channel_max"`
	ImgChannels int `json:"img_channels"` // 3 for images, 96 for EG3D tri-planes
	// ConvClamp clamps every synthesis layer's output to ±ConvClamp after
	// its activation (NVlabs' conv_clamp, 256 in their FFHQ configs: it
	// guards fp16 training); 0 = no clamp, as rosinality and ddgi's presets.
	ConvClamp float64 `json:"conv_clamp,omitempty"`

	// Discriminator.
	DChannelBase int `json:"d_channel_base"`
	DChannelMax  int `json:"d_channel_max"`
	MbstdGroup   int `json:"mbstd_group"` // minibatch-stddev group size (4)

	// Training.
	Batch         int     `json:"batch"`
	LR            float64 `json:"lr"`       // Adam lr for G and D (0.0025)
	R1Gamma       float64 `json:"r1_gamma"` // R1 weight γ
	R1Interval    int     `json:"r1_interval"`
	StyleMixing   float64 `json:"style_mixing"` // probability (0.9)
	EMAKimg       float64 `json:"ema_kimg"`     // G_ema half-life in kimg
	EMARampup     float64 `json:"ema_rampup"`   // half-life ≤ rampup × images seen
	PLWeight      float64 `json:"pl_weight"`    // path-length weight; 0 disables it
	PLInterval    int     `json:"pl_interval"`
	WAvgBeta      float64 `json:"w_avg_beta"` // tracking of w̄ during training (0.995)
	MeanLatentN   int     `json:"mean_latent_n"`
	NoiseSeedBase uint64  `json:"-"`
}

// Presets by name: tiny (tests), small64 (shipped), ffhq256/512/1024 (full size).
var Presets = map[string]Config{
	"tiny": {
		Preset: "tiny", Resolution: 16, ZDim: 32, WDim: 32, MappingLayers: 2, MappingLRMul: 0.01,
		ChannelBase: 256, ChannelMax: 32, ImgChannels: 3, DChannelBase: 256, DChannelMax: 32, MbstdGroup: 2,
		Batch: 4, LR: 0.002, R1Gamma: 1, R1Interval: 4, StyleMixing: 0.9, EMAKimg: 0.01, EMARampup: 0.05,
		PLInterval: 4, WAvgBeta: 0.995, MeanLatentN: 1000,
	},
	"small64": {
		Preset: "small64", Resolution: 64, ZDim: 256, WDim: 256, MappingLayers: 4, MappingLRMul: 0.01,
		ChannelBase: 1024, ChannelMax: 128, ImgChannels: 3, DChannelBase: 1024, DChannelMax: 128, MbstdGroup: 4,
		Batch: 16, LR: 0.0025, R1Gamma: 0.05, R1Interval: 16, StyleMixing: 0.9, EMAKimg: 2.5, EMARampup: 0.05,
		PLInterval: 4, WAvgBeta: 0.995, MeanLatentN: 10000,
	},
	"ffhq256":  full(256, 32768, 2), // as rosinality's and NVlabs' public 256² FFHQ models (NVlabs' paper256 config: 16384)
	"ffhq512":  full(512, 32768, 10),
	"ffhq1024": full(1024, 32768, 50),
}

// full is the official StyleGAN2 config-f at res (batch 32, 8 mapping layers).
func full(res, base int, gamma float64) Config {
	return Config{
		Preset: fmt.Sprintf("ffhq%d", res), Resolution: res, ZDim: 512, WDim: 512, MappingLayers: 8, MappingLRMul: 0.01,
		ChannelBase: base, ChannelMax: 512, ImgChannels: 3, DChannelBase: base, DChannelMax: 512, MbstdGroup: 4,
		Batch: 32, LR: 0.002, R1Gamma: gamma, R1Interval: 16, StyleMixing: 0.9, EMAKimg: 10, EMARampup: 0,
		PLWeight: 2, PLInterval: 4, WAvgBeta: 0.995, MeanLatentN: 10000,
	}
}

// Preset returns a named config.
func Preset(name string) (Config, error) {
	c, ok := Presets[name]
	if !ok {
		names := make([]string, 0, len(Presets))
		for n := range Presets {
			names = append(names, n)
		}
		sort.Strings(names)
		return Config{}, fmt.Errorf("stylegan2: unknown preset %q (known: %v)", name, names)
	}
	return c, nil
}

// Bounds on configs read from files, far above every public model
// (1024², widths 512, 8 mapping layers), so a corrupt or hostile file's
// config fails before it allocates gigabytes.
const (
	MaxResolution    = 8192
	maxWidth         = 8192
	maxMappingLayers = 64
)

// Validate reports configs the networks cannot be built from.
func (c Config) Validate() error {
	switch {
	case c.Resolution < 8 || c.Resolution&(c.Resolution-1) != 0:
		return fmt.Errorf("stylegan2: resolution %d: want a power of two ≥ 8", c.Resolution)
	case c.ZDim < 1 || c.WDim < 1 || c.MappingLayers < 1:
		return fmt.Errorf("stylegan2: z_dim, w_dim and mapping_layers must be ≥ 1")
	case c.ChannelBase < 1 || c.ChannelMax < 1 || c.ImgChannels < 1:
		return fmt.Errorf("stylegan2: channel_base, channel_max and img_channels must be ≥ 1")
	case c.Resolution > MaxResolution || c.ZDim > maxWidth || c.WDim > maxWidth || c.CDim > maxWidth || c.MappingLayers > maxMappingLayers ||
		c.ChannelMax > maxWidth || c.ImgChannels > maxWidth || c.ChannelBase > maxWidth*c.Resolution:
		return fmt.Errorf("stylegan2: config beyond any public model (resolution ≤ %d, widths ≤ %d, mapping layers ≤ %d): %d², z %d, w %d, c %d, %d mapping layers, channels %d/%d, %d out",
			MaxResolution, maxWidth, maxMappingLayers, c.Resolution, c.ZDim, c.WDim, c.CDim, c.MappingLayers, c.ChannelBase, c.ChannelMax, c.ImgChannels)
	case c.ConvClamp < 0 || math.IsNaN(c.ConvClamp) || math.IsInf(c.ConvClamp, 0):
		return fmt.Errorf("stylegan2: conv_clamp %v: want a finite value ≥ 0 (0 = none)", c.ConvClamp)
	}
	return nil
}

// Log2Res is log₂ of the output resolution.
func (c Config) Log2Res() int { return bits.Len(uint(c.Resolution)) - 1 }

// NumWS is the number L of style vectors in w+: 2·log₂(res) − 2.
func (c Config) NumWS() int { return 2*c.Log2Res() - 2 }

// Channels is the generator's feature width at resolution res.
func (c Config) Channels(res int) int64 { return int64(min(c.ChannelBase/res, c.ChannelMax)) }

// DChannels is the discriminator's feature width at resolution res.
func (c Config) DChannels(res int) int64 { return int64(min(c.DChannelBase/res, c.DChannelMax)) }
