// Package auxnets holds the auxiliary networks the paper borrows and ddgi
// cannot download, each trained on SynthFace instead: the identity embedder
// R (ArcFace's role), the perceptual distance F (LPIPS's role), the face
// parser (ACC/mIoU), the attribute classifier (attribute accuracy) and the
// FID feature extractor (Inception's role). Their numbers are SynthFace
// numbers, not CelebA ones. All take [N,3,H,W] images in [-1, 1] at any
// size (resized to InputSize).
package auxnets

import (
	"encoding/json"
	"fmt"

	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/synthface"
	"ddgi/torch"
)

// InputSize is the side every aux net works at.
const InputSize = 64

// Net kinds, as in `ddgi train aux --net` and the weights' file names.
const (
	NetIdentity   = "identity"
	NetParser     = "parser"
	NetAttributes = "attributes"
	NetFID        = "fid"
	NetPerceptual = "perceptual"
	NetArt        = "art" // depiction style: photo or one of SynthFace's artworks
)

// NumAttributes is the length of synthface.AttributeNames.
var NumAttributes = int64(len(synthface.AttributeNames))

// Config describes one aux net; it travels in the weights' metadata.
type Config struct {
	Net string `json:"net"`
	// Width is the encoder's first stage channel count; stages have
	// Width·{1,2,4,8,8} channels at 64², 32², 16², 8², 4².
	Width int64 `json:"width"`
	// EmbedDim is the identity embedding size.
	EmbedDim int64 `json:"embed_dim,omitempty"`
	// Areas adds 19 class-area outputs to a classifier (the FID net).
	Areas bool `json:"areas,omitempty"`
	// Styles makes a classifier a softmax over this many depiction styles
	// (the art net: synthface.ArtNames).
	Styles int64 `json:"styles,omitempty"`
}

// Preset returns a named config ("tiny" for tests, "small64" shipped) for net.
func Preset(net, name string) (Config, error) {
	c := Config{Net: net}
	switch name {
	case "tiny":
		c.Width = 4
	case "small64":
		c.Width = 16
	default:
		return c, fmt.Errorf("unknown preset %q (want tiny or small64)", name)
	}
	switch net {
	case NetIdentity:
		c.EmbedDim = 128
		if name == "tiny" {
			c.EmbedDim = 16
		}
	case NetFID:
		c.Areas = true
	case NetArt:
		c.Styles = int64(len(synthface.ArtNames))
	case NetParser, NetAttributes, NetPerceptual:
	default:
		return c, fmt.Errorf("unknown net %q", net)
	}
	return c, nil
}

// ConfigOf reads the config from weights metadata.
func ConfigOf(meta map[string]string) (Config, error) {
	var c Config
	if err := json.Unmarshal([]byte(meta["config"]), &c); err != nil {
		return c, fmt.Errorf("aux config: %w", err)
	}
	return c, nil
}

// Resize brings images to InputSize² (area filter when shrinking).
func Resize(x *torch.Tensor) *torch.Tensor {
	h, w := x.Size(2), x.Size(3)
	if h == InputSize && w == InputSize {
		return x
	}
	mode := torch.Bilinear
	if h > InputSize {
		mode = torch.Area
	}
	return torch.Interpolate(x, InputSize, InputSize, mode, false)
}

// convNorm is conv3×3 → GroupNorm → ReLU.
type convNorm struct {
	conv *nn.Conv2d
	norm *nn.GroupNorm
}

func newConvNorm(p nn.Path, in, out, stride int64) *convNorm {
	return &convNorm{
		conv: nn.NewConv2d(p.Sub("conv"), in, out, 3, nn.Conv2dOpts{Stride: stride, Padding: 1, NoBias: true}),
		norm: nn.NewGroupNorm(p.Sub("norm"), min(8, out/2), out),
	}
}

func (c *convNorm) Forward(x *torch.Tensor) *torch.Tensor {
	return c.norm.Forward(c.conv.Forward(x)).Relu()
}

// stage halves the resolution with a strided convNorm and, from 16² on, adds
// a residual convNorm (ResNet's basic block, one conv deep to stay cheap).
type stage struct {
	down, res *convNorm
}

// Encoder is the conv backbone every aux net shares: a stem at 64² and four
// stages to 4². Keys: stem.*, stages.{0..3}.{down,res}.*.
type Encoder struct {
	stem   *convNorm
	stages []stage
	// Channels at 64², 32², 16², 8², 4².
	Channels []int64
}

// NewEncoder registers an encoder of the given width under p.
func NewEncoder(p nn.Path, width int64) *Encoder {
	ch := []int64{width, 2 * width, 4 * width, 8 * width, 8 * width}
	e := &Encoder{stem: newConvNorm(p.Sub("stem"), 3, width, 1), Channels: ch}
	for i := 1; i < len(ch); i++ {
		q := p.Subf("stages.%d", i-1)
		st := stage{down: newConvNorm(q.Sub("down"), ch[i-1], ch[i], 2)}
		if i >= 2 {
			st.res = newConvNorm(q.Sub("res"), ch[i], ch[i], 1)
		}
		e.stages = append(e.stages, st)
	}
	return e
}

// Forward returns the feature maps at 64², 32², 16², 8², 4².
func (e *Encoder) Forward(x *torch.Tensor) []*torch.Tensor {
	h := e.stem.Forward(Resize(x))
	feats := []*torch.Tensor{h}
	for _, st := range e.stages {
		h = st.down.Forward(h)
		if st.res != nil {
			h = h.Add(st.res.Forward(h))
		}
		feats = append(feats, h)
	}
	return feats
}

// pool is global average pooling to [N,C].
func pool(x *torch.Tensor) *torch.Tensor { return x.Mean([]int64{2, 3}, false) }

// newStore makes a CPU store seeded for reproducible initialisation.
func newStore(seed uint64) *nn.Store { return nn.NewStore(torch.CPU, seed) }

// loadStore makes a store on dev whose tensors a file will overwrite, so
// it skips random initialisation.
func loadStore(dev torch.Device) *nn.Store {
	s := nn.NewStore(dev, 0)
	s.SkipInit = true
	return s
}

// openWeights reads a weights file and its config, checking it holds net.
func openWeights(path, net string) (*safetensors.File, Config, error) {
	f, err := safetensors.Load(path)
	if err != nil {
		return nil, Config{}, err
	}
	c, err := ConfigOf(f.Metadata)
	if err != nil {
		return nil, c, fmt.Errorf("load %s: %w", path, err)
	}
	if c.Net != net {
		return nil, c, fmt.Errorf("load %s: holds a %q net, want %q", path, c.Net, net)
	}
	return f, c, nil
}

// loadFrozen fills s from f and freezes it: shipped aux nets are only
// ever used as fixed losses and metrics.
func loadFrozen(s *nn.Store, f *safetensors.File, path string) error {
	if err := s.LoadFile(f); err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	s.Freeze("")
	return nil
}
