// Package vae is the latent space of ddgi's diffusion model: a KL
// autoencoder shaped like Stable Diffusion's AutoencoderKL (ResNet blocks
// with GroupNorm, a self-attention mid block, a diagonal-Gaussian latent),
// sized for 64² SynthFace at a downsampling factor of 4. Its decoder turns
// the denoised latent into I^d_0.
package vae

import (
	"encoding/json"
	"fmt"

	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

// Config sizes the autoencoder. Level i has Channels·Mult[i] channels; each
// level but the last halves the side, so Factor = 2^(len(Mult)-1).
type Config struct {
	Resolution int64   `json:"resolution"` // training image side (the nets are fully convolutional)
	Channels   int64   `json:"channels"`
	Mult       []int64 `json:"channel_mult"`
	ResBlocks  int     `json:"res_blocks"` // per encoder level; the decoder has one more, as in SD
	ZChannels  int64   `json:"latent_channels"`
	Groups     int64   `json:"groups"`
	Scale      float64 `json:"scale_factor"` // 1/std of latents: z·Scale is what diffusion sees
	// AttnBias gives the mid blocks' attention q/k/v projections biases
	// (SD's AutoencoderKL has them; ddgi's trained models do not).
	AttnBias bool `json:"attn_bias,omitempty"`
	// DownPad is the downsamplers' padding: "" pads 1 all round before the
	// stride-2 conv; "asym" pads right and bottom only, (0,1,0,1), with an
	// unpadded conv, as LDM's Downsample does.
	DownPad string `json:"down_pad,omitempty"`
	// NormEps is every GroupNorm's ε; 0 means 1e-5 (SD's VAE uses 1e-6).
	NormEps float64 `json:"norm_eps,omitempty"`
}

var presets = map[string]Config{
	"tiny": {Resolution: 16, Channels: 8, Mult: []int64{1, 2}, ResBlocks: 1, ZChannels: 4, Groups: 4, Scale: 1},
	// small64's Scale is what training measured for weights/vae_small64.safetensors.
	"small64": {Resolution: 64, Channels: 16, Mult: []int64{1, 2, 4}, ResBlocks: 1, ZChannels: 4, Groups: 8, Scale: 0.7495},
	"sd": {Resolution: 512, Channels: 128, Mult: []int64{1, 2, 4, 4}, ResBlocks: 2, ZChannels: 4, Groups: 32, Scale: 0.18215,
		AttnBias: true, DownPad: "asym", NormEps: 1e-6},
}

// Preset returns a named configuration: tiny (tests), small64 (shipped;
// 64² RGB → [4,16,16]), sd (SD1.5's AutoencoderKL: what `ddgi convert`
// gives for its weights).
func Preset(name string) (Config, error) {
	c, ok := presets[name]
	if !ok {
		return c, fmt.Errorf("vae preset %q unknown (tiny, small64, sd)", name)
	}
	c.Mult = append([]int64(nil), c.Mult...)
	return c, nil
}

// LatentChannels is the latent depth.
func (c Config) LatentChannels() int64 { return c.ZChannels }

// Factor is the spatial downsampling from image to latent.
func (c Config) Factor() int64 { return 1 << (len(c.Mult) - 1) }

// ScaleFactor multiplies latents before diffusion (SD's 0.18215), measured
// as 1/std of SynthFace latents for the shipped model.
func (c Config) ScaleFactor() float64 { return c.Scale }

// Validate checks the sizes fit together.
func (c Config) Validate() error {
	if len(c.Mult) == 0 || c.Channels < 1 || c.ZChannels < 1 || c.ResBlocks < 1 || c.Groups < 1 || c.Scale <= 0 {
		return fmt.Errorf("vae: bad config %+v", c)
	}
	if c.DownPad != "" && c.DownPad != "asym" {
		return fmt.Errorf("vae: down_pad %q (\"\" or asym)", c.DownPad)
	}
	if c.NormEps < 0 {
		return fmt.Errorf("vae: norm_eps %v < 0", c.NormEps)
	}
	for _, m := range c.Mult {
		if c.Channels*m%c.Groups != 0 {
			return fmt.Errorf("vae: %d channels not divisible into %d groups", c.Channels*m, c.Groups)
		}
	}
	return nil
}

// ResnetBlock is GroupNorm→SiLU→conv twice plus a (1×1 when widths differ)
// shortcut, as in SD.
type ResnetBlock struct {
	norm1, norm2 *nn.GroupNorm
	conv1, conv2 *nn.Conv2d
	shortcut     *nn.Conv2d
}

// eps returns ε for the GroupNorms (NormEps, or nn's default 1e-5).
func (c Config) eps() float64 {
	if c.NormEps == 0 {
		return 1e-5
	}
	return c.NormEps
}

func (c Config) groupNorm(p nn.Path, ch int64) *nn.GroupNorm {
	n := nn.NewGroupNorm(p, c.Groups, ch)
	n.Eps = c.eps()
	return n
}

func newResnet(p nn.Path, c Config, in, out int64) *ResnetBlock {
	r := &ResnetBlock{
		norm1: c.groupNorm(p.Sub("norm1"), in),
		conv1: nn.NewConv2d(p.Sub("conv1"), in, out, 3, nn.Conv2dOpts{Padding: 1}),
		norm2: c.groupNorm(p.Sub("norm2"), out),
		conv2: nn.NewConv2d(p.Sub("conv2"), out, out, 3, nn.Conv2dOpts{Padding: 1}),
	}
	if in != out {
		r.shortcut = nn.NewConv2d(p.Sub("conv_shortcut"), in, out, 1, nn.Conv2dOpts{})
	}
	return r
}

// silu is SiLU as a step of torch.Chain.
func silu(x *torch.Tensor) *torch.Tensor { return x.Silu() }

// Forward is x + F(x). Intermediate maps are freed as the next exists
// (torch.Chain; autograd keeps what it saved): at 512² one 128-channel
// map is 134 MB, and a scope would hold seven a block until it closes.
func (r *ResnetBlock) Forward(x *torch.Tensor) *torch.Tensor {
	h := torch.Chain(x, r.norm1.Forward, silu, r.conv1.Forward, r.norm2.Forward, silu, r.conv2.Forward)
	s := x
	if r.shortcut != nil {
		s = r.shortcut.Forward(x)
	}
	out := s.Add(h)
	h.Free()
	if s != x {
		s.Free()
	}
	return out
}

// midBlock is resnet → single-head self-attention over positions → resnet.
type midBlock struct {
	res1, res2 *ResnetBlock
	norm       *nn.GroupNorm
	attn       *nn.MultiHeadAttention
}

func newMid(p nn.Path, c Config, ch int64) *midBlock {
	a := p.Sub("attentions").Sub("0")
	m := &midBlock{
		res1: newResnet(p.Sub("resnets").Sub("0"), c, ch, ch),
		norm: c.groupNorm(a.Sub("group_norm"), ch),
	}
	if c.AttnBias {
		lin := func(name string) *nn.Linear { return nn.NewLinear(a.Sub(name), ch, ch, nn.LinearOpts{}) }
		m.attn = &nn.MultiHeadAttention{Q: lin("to_q"), K: lin("to_k"), V: lin("to_v"), Out: lin("to_out"), Heads: 1, Dim: ch}
	} else {
		m.attn = nn.NewMultiHeadAttention(a, ch, ch, ch, 1)
	}
	m.res2 = newResnet(p.Sub("resnets").Sub("1"), c, ch, ch)
	return m
}

func (m *midBlock) Forward(x *torch.Tensor) *torch.Tensor {
	x = m.res1.Forward(x)
	b, c, h, w := x.Size(0), x.Size(1), x.Size(2), x.Size(3)
	tok := m.norm.Forward(x).Flatten(2, 3).Transpose(1, 2) // B,HW,C
	a, _ := m.attn.Forward(tok, nil, nil, false)
	x = x.Add(a.Transpose(1, 2).Reshape(b, c, h, w))
	return m.res2.Forward(x)
}

type level struct {
	resnets []*ResnetBlock
	resize  *nn.Conv2d // stride-2 conv (encoder) or conv after nearest ×2 (decoder); nil at the end
}

// Autoencoder is the KL autoencoder. Checkpoint keys follow diffusers'
// AutoencoderKL: encoder.{conv_in,down_blocks.I.{resnets.J,downsamplers.0.conv},
// mid_block,conv_norm_out,conv_out}, quant_conv, post_quant_conv,
// decoder.{conv_in,mid_block,up_blocks.I.{resnets.J,upsamplers.0.conv},conv_norm_out,conv_out}.
type Autoencoder struct {
	Config                    Config
	encIn, encOut, decIn, out *nn.Conv2d
	quant, postQuant          *nn.Conv2d
	down, up                  []level
	encMid, decMid            *midBlock
	encNorm, decNorm          *nn.GroupNorm
}

// New builds the autoencoder under p; it panics on an invalid config.
func New(p nn.Path, c Config) *Autoencoder {
	if err := c.Validate(); err != nil {
		panic(err)
	}
	a := &Autoencoder{Config: c}
	z := c.ZChannels
	conv3 := func(p nn.Path, in, out, stride int64) *nn.Conv2d {
		return nn.NewConv2d(p, in, out, 3, nn.Conv2dOpts{Padding: 1, Stride: stride})
	}
	e := p.Sub("encoder")
	a.encIn = conv3(e.Sub("conv_in"), 3, c.Channels, 1)
	in := c.Channels
	for i, m := range c.Mult {
		bp := e.Sub("down_blocks").Subf("%d", i)
		var l level
		for j := 0; j < c.ResBlocks; j++ {
			l.resnets = append(l.resnets, newResnet(bp.Sub("resnets").Subf("%d", j), c, in, c.Channels*m))
			in = c.Channels * m
		}
		if i < len(c.Mult)-1 {
			dp := bp.Sub("downsamplers").Sub("0").Sub("conv")
			if c.DownPad == "asym" {
				l.resize = nn.NewConv2d(dp, in, in, 3, nn.Conv2dOpts{Stride: 2})
			} else {
				l.resize = conv3(dp, in, in, 2)
			}
		}
		a.down = append(a.down, l)
	}
	a.encMid = newMid(e.Sub("mid_block"), c, in)
	a.encNorm = c.groupNorm(e.Sub("conv_norm_out"), in)
	a.encOut = conv3(e.Sub("conv_out"), in, 2*z, 1)
	a.quant = nn.NewConv2d(p.Sub("quant_conv"), 2*z, 2*z, 1, nn.Conv2dOpts{})
	a.postQuant = nn.NewConv2d(p.Sub("post_quant_conv"), z, z, 1, nn.Conv2dOpts{})

	d := p.Sub("decoder")
	top := c.Channels * c.Mult[len(c.Mult)-1]
	a.decIn = conv3(d.Sub("conv_in"), z, top, 1)
	a.decMid = newMid(d.Sub("mid_block"), c, top)
	in = top
	for i := 0; i < len(c.Mult); i++ {
		bp := d.Sub("up_blocks").Subf("%d", i)
		out := c.Channels * c.Mult[len(c.Mult)-1-i]
		var l level
		for j := 0; j <= c.ResBlocks; j++ {
			l.resnets = append(l.resnets, newResnet(bp.Sub("resnets").Subf("%d", j), c, in, out))
			in = out
		}
		if i < len(c.Mult)-1 {
			l.resize = conv3(bp.Sub("upsamplers").Sub("0").Sub("conv"), in, in, 1)
		}
		a.up = append(a.up, l)
	}
	a.decNorm = c.groupNorm(d.Sub("conv_norm_out"), in)
	a.out = conv3(d.Sub("conv_out"), in, 3, 1)
	return a
}

// Encode maps images [B,3,H,W] in [-1,1] (H, W multiples of Factor) to the
// posterior's mean and log-variance, each [B,Z,H/f,W/f].
func (a *Autoencoder) Encode(x *torch.Tensor) (mean, logvar *torch.Tensor) {
	f := a.Config.Factor()
	if x.Dim() != 4 || x.Size(1) != 3 || x.Size(2)%f != 0 || x.Size(3)%f != 0 {
		panic(&torch.Error{Op: "vae encode", Msg: fmt.Sprintf("input %v: want [B,3,H,W] with H, W multiples of %d", x.Shape(), f)})
	}
	// Each block's input is freed once its output exists (torch.Chain).
	steps := []func(*torch.Tensor) *torch.Tensor{a.encIn.Forward}
	for _, l := range a.down {
		for _, r := range l.resnets {
			steps = append(steps, r.Forward)
		}
		if l.resize != nil {
			if a.Config.DownPad == "asym" {
				steps = append(steps, func(h *torch.Tensor) *torch.Tensor { return h.Pad([]int64{0, 1, 0, 1}, torch.PadConstant, 0) })
			}
			steps = append(steps, l.resize.Forward)
		}
	}
	steps = append(steps, a.encMid.Forward, a.encNorm.Forward, silu, a.encOut.Forward, a.quant.Forward)
	ms := torch.Chain(x, steps...).Chunk(2, 1)
	return ms[0], ms[1].Clamp(-30, 20)
}

// Sample draws z = mean + exp(logvar/2)·ε with ε from g (the
// reparameterisation trick, so gradients reach the encoder).
func (a *Autoencoder) Sample(mean, logvar *torch.Tensor, g *torch.Generator) *torch.Tensor {
	return SampleWith(mean, logvar, torch.Randn(g, mean.Shape(), torch.Float32, mean.Device()))
}

// SampleWith is Sample with the caller's standard normal noise eps (shaped
// as mean): mean + exp(logvar/2)·eps.
func SampleWith(mean, logvar, eps *torch.Tensor) *torch.Tensor {
	return mean.Add(logvar.MulScalar(0.5).Exp().Mul(eps))
}

// Decode maps latents [B,Z,h,w] (unscaled: divide diffusion latents by
// ScaleFactor first) to images [B,3,h·f,w·f] in about [-1,1].
func (a *Autoencoder) Decode(z *torch.Tensor) *torch.Tensor {
	if z.Dim() != 4 || z.Size(1) != a.Config.ZChannels {
		panic(&torch.Error{Op: "vae decode", Msg: fmt.Sprintf("latent %v: want [B,%d,h,w]", z.Shape(), a.Config.ZChannels)})
	}
	// Each block's input is freed once its output exists (torch.Chain).
	steps := []func(*torch.Tensor) *torch.Tensor{a.postQuant.Forward, a.decIn.Forward, a.decMid.Forward}
	for _, l := range a.up {
		for _, r := range l.resnets {
			steps = append(steps, r.Forward)
		}
		if l.resize != nil {
			steps = append(steps, func(h *torch.Tensor) *torch.Tensor {
				return torch.Interpolate(h, 2*h.Size(2), 2*h.Size(3), torch.Nearest, false)
			}, l.resize.Forward)
		}
	}
	steps = append(steps, a.decNorm.Forward, silu, a.out.Forward)
	return torch.Chain(z, steps...)
}

// KL is the posterior's KL divergence from N(0, I), summed per sample and
// averaged over the batch (SD's regulariser, weighted ~1e-6).
func KL(mean, logvar *torch.Tensor) *torch.Tensor {
	k := mean.Square().Add(logvar.Exp()).Sub(logvar).SubScalar(1).MulScalar(0.5)
	return k.SumAll().DivScalar(float64(mean.Size(0)))
}

// Load reads weights written with the config in their metadata (as
// `ddgi train vae` writes them) into a fresh store on dev, for inference:
// an fp16 file of a big VAE (SD's) stays fp16 in memory, each layer
// computing in fp32 (nn.NewInferenceStore).
func Load(path string, dev torch.Device) (*Autoencoder, *nn.Store, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var c Config
	if err := json.Unmarshal([]byte(f.Metadata["config"]), &c); err != nil {
		return nil, nil, fmt.Errorf("load %s: no vae config in metadata: %v", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	s := nn.NewInferenceStore(dev, f, nn.FP32)
	a := New(s.Root(), c)
	if err := s.LoadLazy(f); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	return a, s, nil
}
