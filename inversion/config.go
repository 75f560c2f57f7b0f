package inversion

import (
	"encoding/json"
	"fmt"

	"ddgi/safetensors"
	"ddgi/torch"
)

// Config sizes M and T from the encoder's taps and the GAN's latent space.
type Config struct {
	// The GAN's W+ space: L style vectors of StyleDim values.
	Styles, StyleDim int64
	// Middle-block features h_t: [HChannels, HSize, HSize].
	HChannels, HSize int64
	// Decoder blocks tapped for f_t: channels per block.
	FChannels []int64
	// Size is H = W of F_t, the size every f_t^n is upsampled to.
	Size int64
	// Width of M's and T's hidden layers.
	Width int64
	// AlphaBuckets splits the schedule into ranges with their own α^γ_t, α^β_t.
	AlphaBuckets int
	// Timesteps of the diffusion schedule (t ∈ [0, Timesteps)).
	Timesteps int
	// UseAttention is false for the "no-attn" ablation (A_t = Ā_t = 1).
	UseAttention bool
	// TextDim, when > 0, is the width of the prompt's pooled embedding that
	// M also reads (ddgi's text path, beside Eq. 2's h_t); 0 is the paper's
	// M, which sees the prompt only through h_t.
	TextDim int64 `json:",omitempty"`
}

// Validate reports a config that cannot build.
func (c Config) Validate() error {
	switch {
	case c.Styles < 1 || c.StyleDim < 1:
		return fmt.Errorf("inversion config: %d styles of width %d", c.Styles, c.StyleDim)
	case c.HChannels < 1 || c.HSize < 1 || c.Size < 1 || c.Width < 1:
		return fmt.Errorf("inversion config: non-positive size in %+v", c)
	case len(c.FChannels) == 0:
		return fmt.Errorf("inversion config: no decoder blocks tapped")
	case c.TextDim < 0:
		return fmt.Errorf("inversion config: text width %d", c.TextDim)
	case c.AlphaBuckets < 1 || c.Timesteps < 1:
		return fmt.Errorf("inversion config: %d α buckets over %d steps", c.AlphaBuckets, c.Timesteps)
	}
	return nil
}

// Tiny is a test-sized config.
func Tiny() Config {
	return Config{Styles: 4, StyleDim: 16, HChannels: 16, HSize: 2, FChannels: []int64{16, 8}, Size: 8, Width: 16, AlphaBuckets: 4, Timesteps: 1000, UseAttention: true}
}

// savedConfigs is the "config" metadata the trainer stores with M and T.
type savedConfigs struct {
	Model *Config      `json:"model"`
	Train *TrainConfig `json:"train"`
}

func configsFromMetadata(meta map[string]string) (savedConfigs, error) {
	var v savedConfigs
	if err := json.Unmarshal([]byte(meta["config"]), &v); err != nil || v.Model == nil {
		return v, fmt.Errorf("no inversion config in the file's metadata")
	}
	return v, v.Model.Validate()
}

// ConfigFromMetadata reads the model config the trainer stores in a
// weights file's "config" metadata ({"model": …, "train": …}).
func ConfigFromMetadata(meta map[string]string) (Config, error) {
	v, err := configsFromMetadata(meta)
	if err != nil {
		return Config{}, err
	}
	return *v.Model, nil
}

// Load reads M and T written by Model.Save, building them from the model
// config in the metadata; train is the stored training config (nil when
// the file has none).
func Load(path string, dev torch.Device) (m *Model, train *TrainConfig, err error) {
	f, err := safetensors.Load(path)
	if err != nil {
		return nil, nil, err
	}
	v, err := configsFromMetadata(f.Metadata)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if m, err = NewModel(*v.Model, dev, 0); err != nil {
		return nil, nil, err
	}
	if err := m.Store.LoadFile(f); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, v.Train, nil
}
