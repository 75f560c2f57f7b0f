// Package stylegan2 is StyleGAN2 (Karras et al., "Analyzing and Improving
// the Image Quality of StyleGAN", CVPR 2020) in ddgi's engine: the mapping
// network z → w, the synthesis network driven by w+ (L = 2·log₂(res) − 2
// style vectors) with modulated/demodulated convolutions, noise inputs and
// skip toRGB outputs, and a residual discriminator with minibatch stddev.
// Types are named after the paper's boxes (and rosinality's model.py).
//
// Checkpoint keys (dotted nn paths):
//
//	mapping.embed.{weight,bias}             camera/label embedding (CDim > 0)
//	mapping.fc{i}.{weight,bias}             mapping layers, lr_mul 0.01
//	mapping.w_avg                           w̄ (buffer)
//	synthesis.input.const                   [1, C4, 4, 4]
//	synthesis.conv1.{conv.weight, conv.affine.*, noise.weight, bias}
//	synthesis.torgb1.{conv.weight, conv.affine.*, bias}
//	synthesis.convs.{j}.…                   two StyledConvs per resolution 8…res
//	synthesis.torgbs.{k}.…                  one ToRGB per resolution 8…res
//	synthesis.noise_const.{n}               fixed noise maps (buffers)
package stylegan2

import (
	"fmt"
	"math"

	"ddgi/nn"
	"ddgi/torch"
)

// sqrt2 is the gain of StyleGAN's leaky ReLU (fused_lrelu).
var sqrt2 = math.Sqrt(2)

// FusedLeakyReLU adds a per-channel bias and applies leaky ReLU(0.2)·√2, the
// activation of every StyleGAN2 layer. b is [C]; x is [B,C,…] or [B,C].
func FusedLeakyReLU(x, b *torch.Tensor) *torch.Tensor {
	steps := []func(*torch.Tensor) *torch.Tensor{
		func(x *torch.Tensor) *torch.Tensor { return x.LeakyRelu(0.2) },
		func(x *torch.Tensor) *torch.Tensor { return x.MulScalar(sqrt2) },
	}
	if b != nil {
		shape := make([]int64, x.Dim())
		for i := range shape {
			shape[i] = 1
		}
		shape[1] = b.Size(0)
		bias := func(x *torch.Tensor) *torch.Tensor { return x.Add(b.Reshape(shape...)) }
		steps = append([]func(*torch.Tensor) *torch.Tensor{bias}, steps...)
	}
	return torch.Chain(x, steps...)
}

// NormalizeSecondMoment is StyleGAN's pixel norm: x / sqrt(mean(x²) + ε)
// over the feature dim (applied to z before mapping).
func NormalizeSecondMoment(x *torch.Tensor) *torch.Tensor {
	return x.Mul(x.Square().Mean([]int64{1}, true).AddScalar(1e-8).Rsqrt())
}

// blurKernel is the normalised [1,3,3,1]ᵀ[1,3,3,1] FIR filter times gain,
// as a depthwise weight [C,1,4,4].
func blurKernel(c int64, gain float64, like *torch.Tensor) *torch.Tensor {
	k1 := []float64{1, 3, 3, 1}
	v := make([]float32, 16)
	for i := range 4 {
		for j := range 4 {
			v[i*4+j] = float32(k1[i] * k1[j] / 64 * gain)
		}
	}
	k := torch.FromFloat32(v, 1, 1, 4, 4)
	if dt := like.DType(); dt != torch.Float32 {
		k = k.To(dt)
	}
	if dev := like.Device(); dev != torch.CPU {
		k = k.ToDevice(dev)
	}
	return k.Repeat(c, 1, 1, 1)
}

// Blur low-pass filters NCHW x with the [1,3,3,1] kernel after padding
// (p0 before, p1 after) on both axes: upfirdn2d with up = down = 1.
func Blur(x *torch.Tensor, p0, p1 int64, gain float64) *torch.Tensor {
	c := x.Size(1)
	return torch.Chain(x,
		func(x *torch.Tensor) *torch.Tensor { return x.Pad([]int64{p0, p1, p0, p1}, torch.PadConstant, 0) },
		func(x *torch.Tensor) *torch.Tensor {
			return torch.Conv2d(x, blurKernel(c, gain, x), nil, torch.ConvOpts{Groups: c})
		})
}

// Upsample2x doubles NCHW x with zero insertion and the blur filter
// (upfirdn2d with up = 2, pad = (2, 1), gain 4): the skip-path upsampling.
func Upsample2x(x *torch.Tensor) *torch.Tensor {
	c := x.Size(1)
	return torch.ConvTranspose2d(x, blurKernel(c, 4, x), nil, torch.ConvOpts{Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}, Groups: c})
}

// MappingNetwork maps a latent z (and an optional condition c, EG3D's
// camera) to an intermediate latent w through MLP layers with equalized
// learning rate and lr_mul 0.01. It keeps w̄ as the buffer mapping.w_avg.
type MappingNetwork struct {
	Embed  *nn.Linear
	FCs    []*nn.Linear
	WAvg   *torch.Tensor
	NumWS  int
	cfg    Config
	dev    torch.Device
	Update bool // track w̄ during training (EMA with WAvgBeta)
}

// NewMappingNetwork registers the mapping network under p.
func NewMappingNetwork(p nn.Path, c Config) *MappingNetwork {
	m := &MappingNetwork{NumWS: c.NumWS(), cfg: c, dev: p.Store().Device}
	in := int64(c.ZDim)
	if c.CDim > 0 {
		m.Embed = nn.NewLinear(p.Sub("embed"), int64(c.CDim), int64(c.WDim), nn.LinearOpts{EqualLR: true})
		in += int64(c.WDim)
	}
	for i := range c.MappingLayers {
		m.FCs = append(m.FCs, nn.NewLinear(p.Subf("fc%d", i), in, int64(c.WDim), nn.LinearOpts{EqualLR: true, LRMul: c.MappingLRMul}))
		in = int64(c.WDim)
	}
	m.WAvg = p.Buffer("w_avg", []int64{int64(c.WDim)}, nn.Constant(0))
	return m
}

// Forward maps z [B,Z] (and c [B,C] or nil) to w [B,W].
func (m *MappingNetwork) Forward(z, c *torch.Tensor) *torch.Tensor {
	x := NormalizeSecondMoment(z)
	if m.Embed != nil {
		if c == nil {
			panic(&torch.Error{Op: "mapping", Msg: fmt.Sprintf("this generator is conditioned on a %d-float camera; got none", m.cfg.CDim)})
		}
		x = torch.Cat([]*torch.Tensor{x, NormalizeSecondMoment(m.Embed.Forward(c))}, 1)
	}
	for _, fc := range m.FCs {
		x = FusedLeakyReLU(fc.Forward(x), nil)
	}
	if m.Update {
		torch.NoGrad(func() { m.WAvg.LerpIn(x.Detach().Mean([]int64{0}, false), 1-m.cfg.WAvgBeta) })
	}
	return x
}

// Truncate pulls w toward w̄: w̄ + ψ(w − w̄) (the truncation trick).
func Truncate(w, wAvg *torch.Tensor, psi float64) *torch.Tensor {
	if psi == 1 {
		return w
	}
	return wAvg.Add(w.Sub(wAvg).MulScalar(psi))
}

// ConstantInput is the learned 4×4 tensor the synthesis network starts from.
type ConstantInput struct{ Const *torch.Tensor }

// NewConstantInput registers input.const [1,c,4,4] ~ N(0,1).
func NewConstantInput(p nn.Path, c int64) *ConstantInput {
	return &ConstantInput{Const: p.Param("const", []int64{1, c, 4, 4}, nn.Normal(1))}
}

// Forward repeats the constant over the batch.
func (ci *ConstantInput) Forward(batch int64) *torch.Tensor {
	return ci.Const.Repeat(batch, 1, 1, 1)
}

// ModulatedConv is StyleGAN2's weight-modulated convolution: an affine map
// A turns w into per-input-channel styles s, the weights are scaled by s
// and (optionally) demodulated so each output has unit expected variance.
type ModulatedConv struct {
	Weight   *torch.Tensor // [out,in,k,k] ~ N(0,1), scaled by 1/√(in·k²)
	Affine   *nn.Linear    // w → s, bias initialised to 1
	In, Out  int64
	K        int64
	Demod    bool
	Upsample bool
	// Fused runs the convolution as one grouped conv (groups = batch) over
	// per-sample weights, as the paper describes; otherwise the equivalent
	// scale-input / shared-conv / scale-output form (StyleGAN2's
	// fused_modconv=False), which is faster on CPU.
	Fused bool
	scale float64
}

// NewModulatedConv registers conv.weight and conv.affine under p.
func NewModulatedConv(p nn.Path, in, out, k, wdim int64, demod, up bool) *ModulatedConv {
	return &ModulatedConv{
		Weight: p.Param("weight", []int64{out, in, k, k}, nn.Normal(1)),
		Affine: nn.NewLinear(p.Sub("affine"), wdim, in, nn.LinearOpts{EqualLR: true, BiasInit: 1}),
		In:     in, Out: out, K: k, Demod: demod, Upsample: up,
		scale: 1 / math.Sqrt(float64(in*k*k)),
	}
}

// Demodulation is StyleGAN2 Eq. 3: σ_j = sqrt(Σ_{i,k} (s_i·w_ijk)² + ε),
// returned as 1/σ of shape [B,out] for styles s [B,in] and weight [out,in,k,k].
func Demodulation(s, w *torch.Tensor) *torch.Tensor {
	w2 := w.Square().Sum([]int64{2, 3}, false) // [out,in]
	return s.Square().Matmul(w2.Transpose(0, 1)).AddScalar(1e-8).Rsqrt()
}

// Forward applies the modulated conv to x [B,in,H,W] with w [B,W].
func (m *ModulatedConv) Forward(x, w *torch.Tensor) *torch.Tensor {
	s := m.Affine.Forward(w) // StyleGAN2 Eq. 1: w'_ijk = s_i · w_ijk
	weight := m.Weight.MulScalar(m.scale)
	if m.Fused || largeInference(x) {
		return m.fused(x, s, weight)
	}
	b := x.Size(0)
	steps := []func(*torch.Tensor) *torch.Tensor{
		func(x *torch.Tensor) *torch.Tensor { return x.Mul(s.Reshape(b, m.In, 1, 1)) },
		func(x *torch.Tensor) *torch.Tensor {
			if m.Upsample {
				return ConvTranspose2x(x, weight.Transpose(0, 1))
			}
			return torch.Conv2d(x, weight, nil, torch.Same(1, m.K/2))
		},
	}
	if m.Demod {
		steps = append(steps, func(x *torch.Tensor) *torch.Tensor { return x.Mul(Demodulation(s, weight).Reshape(b, m.Out, 1, 1)) })
	}
	if m.Upsample {
		steps = append(steps, func(x *torch.Tensor) *torch.Tensor { return Blur(x, 1, 1, 4) })
	}
	return torch.Chain(x, steps...)
}

// convTWorkspace bounds the column buffer of one transposed convolution
// (libtorch's CPU path unfolds out·k²·H·W floats: 300 MB for the 512→1024
// layer of a 1024² StyleGAN2); larger ones run in output-channel slices.
const convTWorkspace = 64 << 20

// ConvTranspose2x is the stride-2 transposed convolution of the upsampling
// modulated conv (weight [in,out,k,k]). Without gradients, when its column
// buffer would exceed convTWorkspace, it fills the output slice by slice of
// output channels; the result is the same.
func ConvTranspose2x(x, weight *torch.Tensor) *torch.Tensor {
	opts := torch.ConvOpts{Stride: [2]int64{2, 2}}
	out, k := weight.Size(1), weight.Size(2)
	cols := out * k * k * x.Size(0) * x.Size(2) * x.Size(3) * 4
	if cols <= convTWorkspace || torch.GradEnabled() {
		return torch.ConvTranspose2d(x, weight, nil, opts)
	}
	step := max(1, out*convTWorkspace/cols)
	var y *torch.Tensor
	for o := int64(0); o < out; o += step {
		n := min(step, out-o)
		part := torch.ConvTranspose2d(x, weight.Narrow(1, o, n), nil, opts)
		if y == nil {
			s := part.Shape()
			y = torch.Zeros([]int64{s[0], out, s[2], s[3]}, part.DType(), part.Device())
		}
		y.Narrow(1, o, n).CopyIn(part)
		part.Free()
	}
	return y
}

// largeInference reports a single image at full-size resolutions without
// gradients: there modulating the weights (the fused form, as NVlabs'
// inference) saves two passes over activations of up to 128 MB per layer.
// Small images and training keep the form they were measured fastest in.
func largeInference(x *torch.Tensor) bool {
	return x.Size(0) == 1 && x.Size(2)*x.Size(3) >= 128*128 && !torch.GradEnabled()
}

// fused is the grouped-convolution form: one weight per sample.
func (m *ModulatedConv) fused(x, s, weight *torch.Tensor) *torch.Tensor {
	b, h, wd := x.Size(0), x.Size(2), x.Size(3)
	wt := weight.Unsqueeze(0).Mul(s.Reshape(b, 1, m.In, 1, 1)) // [B,out,in,k,k]
	if m.Demod {
		wt = wt.Mul(Demodulation(s, weight).Reshape(b, m.Out, 1, 1, 1))
	}
	x = x.Reshape(1, b*m.In, h, wd)
	if m.Upsample {
		wt = wt.Transpose(1, 2).Reshape(b*m.In, m.Out, m.K, m.K)
		var y *torch.Tensor
		if b == 1 {
			y = ConvTranspose2x(x, wt)
		} else {
			y = torch.ConvTranspose2d(x, wt, nil, torch.ConvOpts{Stride: [2]int64{2, 2}, Groups: b})
		}
		yr := y.Reshape(b, m.Out, y.Size(2), y.Size(3))
		y.Free()
		z := Blur(yr, 1, 1, 4)
		yr.Free() // the last handle on the transposed conv's output
		return z
	}
	wt = wt.Reshape(b*m.Out, m.In, m.K, m.K)
	x = torch.Conv2d(x, wt, nil, torch.ConvOpts{Padding: [2]int64{m.K / 2, m.K / 2}, Groups: b})
	return x.Reshape(b, m.Out, h, wd)
}

// NoiseInjection adds per-pixel noise scaled by a learned strength.
type NoiseInjection struct{ Weight *torch.Tensor }

// NewNoiseInjection registers noise.weight (a scalar, initialised to 0).
func NewNoiseInjection(p nn.Path) *NoiseInjection {
	return &NoiseInjection{Weight: p.Param("weight", []int64{1}, nn.Constant(0))}
}

// Forward adds weight·noise; noise is [B or 1,1,H,W].
func (n *NoiseInjection) Forward(x, noise *torch.Tensor) *torch.Tensor {
	if noise == nil {
		return x
	}
	return x.Add(noise.Mul(n.Weight))
}

// StyledConv is ModulatedConv → NoiseInjection → bias + leaky ReLU
// (→ clamp to ±Clamp when Clamp > 0: NVlabs' conv_clamp).
type StyledConv struct {
	Conv  *ModulatedConv
	Noise *NoiseInjection
	Bias  *torch.Tensor
	Clamp float64
}

// NewStyledConv registers a 3×3 styled conv under p.
func NewStyledConv(p nn.Path, in, out, wdim int64, up bool) *StyledConv {
	return &StyledConv{
		Conv:  NewModulatedConv(p.Sub("conv"), in, out, 3, wdim, true, up),
		Noise: NewNoiseInjection(p.Sub("noise")),
		Bias:  p.Param("bias", []int64{out}, nn.Constant(0)),
	}
}

// Forward applies the layer with style w [B,W] and noise (nil for none).
func (l *StyledConv) Forward(x, w, noise *torch.Tensor) *torch.Tensor {
	return torch.Chain(l.Conv.Forward(x, w),
		func(x *torch.Tensor) *torch.Tensor { return l.Noise.Forward(x, noise) },
		func(x *torch.Tensor) *torch.Tensor { return FusedLeakyReLU(x, l.Bias) },
		func(x *torch.Tensor) *torch.Tensor { return ConvClamp(x, l.Clamp) })
}

// ConvClamp limits a layer's output to ±c (c = 0: unchanged), after the
// activation gain, as NVlabs' bias_act(…, clamp=conv_clamp·gain) with gain 1.
func ConvClamp(x *torch.Tensor, c float64) *torch.Tensor {
	if c == 0 {
		return x
	}
	return x.Clamp(-c, c)
}

// ToRGB is a 1×1 modulated conv without demodulation to output channels,
// added to the upsampled previous output (the skip architecture). Clamp > 0
// clamps its own contribution before the addition (NVlabs' conv_clamp).
type ToRGB struct {
	Conv  *ModulatedConv
	Bias  *torch.Tensor
	Clamp float64
}

// NewToRGB registers a ToRGB under p.
func NewToRGB(p nn.Path, in, out, wdim int64) *ToRGB {
	return &ToRGB{Conv: NewModulatedConv(p.Sub("conv"), in, out, 1, wdim, false, false), Bias: p.Param("bias", []int64{out}, nn.Constant(0))}
}

// Forward returns the image contribution of x plus the upsampled skip.
func (t *ToRGB) Forward(x, w, skip *torch.Tensor) *torch.Tensor {
	return torch.Chain(t.Conv.Forward(x, w),
		func(y *torch.Tensor) *torch.Tensor { return y.Add(t.Bias.Reshape(1, t.Conv.Out, 1, 1)) },
		func(y *torch.Tensor) *torch.Tensor { return ConvClamp(y, t.Clamp) },
		func(y *torch.Tensor) *torch.Tensor {
			if skip == nil {
				return y
			}
			up := Upsample2x(skip)
			defer up.Free()
			return y.Add(up)
		})
}

// NoiseMode selects the per-pixel noise of the synthesis network.
type NoiseMode int

const (
	// NoiseRandom draws fresh noise (training, diverse samples).
	NoiseRandom NoiseMode = iota
	// NoiseConst uses the fixed maps stored with the model (deterministic
	// inversion).
	NoiseConst
	// NoiseNone disables noise.
	NoiseNone
)

// ParseNoiseMode reads random, const or none.
func ParseNoiseMode(s string) (NoiseMode, error) {
	switch s {
	case "random":
		return NoiseRandom, nil
	case "const":
		return NoiseConst, nil
	case "none":
		return NoiseNone, nil
	}
	return 0, fmt.Errorf("noise mode %q: want random, const or none", s)
}

// Generator is the StyleGAN2 generator: MappingNetwork + synthesis network.
type Generator struct {
	Cfg        Config
	Map        *MappingNetwork
	Input      *ConstantInput
	Conv1      *StyledConv
	ToRGB1     *ToRGB
	Convs      []*StyledConv // two per resolution 8…res (the first upsamples)
	ToRGBs     []*ToRGB      // one per resolution 8…res
	NoiseConst []*torch.Tensor
	Store      *nn.Store
	rng        *torch.Generator
	// Rows, in a data-parallel training step, makes NoiseRandom maps the
	// rank's rows of the whole batch's (nil: one process).
	Rows *Rows
}

// NewGenerator builds a generator in store under p (usually the root).
func NewGenerator(p nn.Path, c Config) (*Generator, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	g := &Generator{Cfg: c, Store: p.Store(), rng: torch.NewGenerator(c.NoiseSeedBase + 1)}
	g.Map = NewMappingNetwork(p.Sub("mapping"), c)
	s := p.Sub("synthesis")
	wd := int64(c.WDim)
	c4 := c.Channels(4)
	g.Input = NewConstantInput(s.Sub("input"), c4)
	g.Conv1 = NewStyledConv(s.Sub("conv1"), c4, c4, wd, false)
	g.ToRGB1 = NewToRGB(s.Sub("torgb1"), c4, int64(c.ImgChannels), wd)
	g.NoiseConst = append(g.NoiseConst, s.Sub("noise_const").Buffer("0", []int64{1, 1, 4, 4}, nn.Normal(1)))
	in := c4
	for r := 8; r <= c.Resolution; r *= 2 {
		out := c.Channels(r)
		j := len(g.Convs)
		g.Convs = append(g.Convs,
			NewStyledConv(s.Sub("convs").Subf("%d", j), in, out, wd, true),
			NewStyledConv(s.Sub("convs").Subf("%d", j+1), out, out, wd, false))
		g.ToRGBs = append(g.ToRGBs, NewToRGB(s.Sub("torgbs").Subf("%d", len(g.ToRGBs)), out, int64(c.ImgChannels), wd))
		for range 2 {
			g.NoiseConst = append(g.NoiseConst, s.Sub("noise_const").Buffer(fmt.Sprint(len(g.NoiseConst)), []int64{1, 1, int64(r), int64(r)}, nn.Normal(1)))
		}
		in = out
	}
	g.Conv1.Clamp, g.ToRGB1.Clamp = c.ConvClamp, c.ConvClamp
	for _, l := range g.Convs {
		l.Clamp = c.ConvClamp
	}
	for _, t := range g.ToRGBs {
		t.Clamp = c.ConvClamp
	}
	return g, nil
}

// NumWS is the number L of style vectors the synthesis network takes.
func (g *Generator) NumWS() int { return g.Cfg.NumWS() }

// SetFused switches every modulated conv between the grouped-conv and the
// scale/conv/scale forms (identical results).
func (g *Generator) SetFused(on bool) {
	g.Conv1.Conv.Fused, g.ToRGB1.Conv.Fused = on, on
	for _, l := range g.Convs {
		l.Conv.Fused = on
	}
	for _, t := range g.ToRGBs {
		t.Conv.Fused = on
	}
}

// SetNoiseSeed reseeds the generator of NoiseRandom maps.
func (g *Generator) SetNoiseSeed(seed uint64) { g.rng = torch.NewGenerator(seed) }

// NoiseRNG is the source of NoiseRandom maps (a trainer checkpoints it).
func (g *Generator) NoiseRNG() *torch.Generator { return g.rng }

// WAvg is w̄ [W], the mean of the mapping network's outputs.
func (g *Generator) WAvg() *torch.Tensor { return g.Map.WAvg }

// MeanWPlus is w̄ broadcast to w+ [1,L,W]: the inversion's starting code.
func (g *Generator) MeanWPlus() *torch.Tensor {
	return g.Map.WAvg.Reshape(1, 1, int64(g.Cfg.WDim)).Repeat(1, int64(g.NumWS()), 1)
}

// Mapping maps z [B,Z] (and the camera c [B,25] for EG3D, else nil) to
// w+ [B,L,W] with truncation ψ (1 = none).
func (g *Generator) Mapping(z, c *torch.Tensor, psi float64) *torch.Tensor {
	w := Truncate(g.Map.Forward(z, c), g.Map.WAvg, psi)
	return Broadcast(w, g.NumWS())
}

// Broadcast repeats w [B,W] into w+ [B,L,W].
func Broadcast(w *torch.Tensor, l int) *torch.Tensor {
	return w.Unsqueeze(1).Repeat(1, int64(l), 1)
}

// Noises returns the noise maps for a batch of b under mode (nil entries
// for NoiseNone), in synthesis layer order.
func (g *Generator) Noises(b int64, mode NoiseMode) []*torch.Tensor {
	out := make([]*torch.Tensor, len(g.NoiseConst))
	for i, n := range g.NoiseConst {
		switch mode {
		case NoiseConst:
			out[i] = n
		case NoiseRandom:
			out[i] = g.Rows.Draw([]int64{b, 1, n.Size(2), n.Size(3)}, func(s []int64) *torch.Tensor {
				return torch.Randn(g.rng, s, torch.Float32, g.Store.Device)
			})
		}
	}
	return out
}

// Synthesis renders w+ [B,L,W] to images [B,ImgChannels,res,res] (roughly
// in [-1,1] for RGB) with the given noise mode.
func (g *Generator) Synthesis(wplus *torch.Tensor, mode NoiseMode) *torch.Tensor {
	return g.SynthesisNoise(wplus, g.Noises(wplus.Size(0), mode))
}

// SynthesisNoise is Synthesis with explicit noise maps (as Noises returns;
// inversion may optimise them).
func (g *Generator) SynthesisNoise(wplus *torch.Tensor, noises []*torch.Tensor) *torch.Tensor {
	if s := wplus.Shape(); len(s) != 3 || s[1] != int64(g.NumWS()) || s[2] != int64(g.Cfg.WDim) {
		panic(&torch.Error{Op: "synthesis", Msg: fmt.Sprintf("w+ shape %v, want [B,%d,%d]", s, g.NumWS(), g.Cfg.WDim)})
	}
	if len(noises) != len(g.NoiseConst) {
		panic(&torch.Error{Op: "synthesis", Msg: fmt.Sprintf("%d noise maps, want %d", len(noises), len(g.NoiseConst))})
	}
	ws := func(i int) *torch.Tensor { return wplus.Select(1, int64(i)) }
	x := g.Input.Forward(wplus.Size(0))
	x = g.Conv1.Forward(x, ws(0), noises[0])
	img := g.ToRGB1.Forward(x, ws(1), nil)
	for k, t := range g.ToRGBs {
		// One scope per resolution: its temporaries go before the next
		// (doubled) resolution allocates; autograd keeps what it saved.
		s := torch.NewScope()
		i := 1 + 2*k
		prevX, prevImg := x, img
		x = g.Convs[2*k].Forward(x, ws(i), noises[1+2*k])
		x = g.Convs[2*k+1].Forward(x, ws(i+1), noises[2+2*k])
		img = t.Forward(x, ws(i+2), img)
		s.Keep(x, img)
		s.Close()
		prevX.Free()
		prevImg.Free()
	}
	return img
}

// Forward is Mapping then Synthesis: z [B,Z] (c [B,C] or nil) to images.
func (g *Generator) Forward(z, c *torch.Tensor, psi float64, mode NoiseMode) *torch.Tensor {
	return g.Synthesis(g.Mapping(z, c, psi), mode)
}

// StyleMix is StyleGAN2's mixing regularisation: w+ takes w1 for layers
// below a random cutoff in [1, L) and w2 from it on.
func StyleMix(w1, w2 *torch.Tensor, cutoff, l int) *torch.Tensor {
	a := Broadcast(w1, cutoff)
	b := Broadcast(w2, l-cutoff)
	return torch.Cat([]*torch.Tensor{a, b}, 1)
}

// ComputeMeanLatent sets w̄ to the mean of the mapping network over n
// random z (seeded); c, when the mapping is conditioned, is a [1,C] camera
// repeated over the batch.
func (g *Generator) ComputeMeanLatent(n int, seed uint64, c *torch.Tensor) {
	rng := torch.NewGenerator(seed)
	torch.NoGrad(func() {
		torch.Scoped(func() {
			sum := torch.Zeros([]int64{int64(g.Cfg.WDim)}, torch.Float32, g.Store.Device)
			const chunk = 1000
			for done := 0; done < n; done += chunk {
				b := int64(min(chunk, n-done))
				z := torch.Randn(rng, []int64{b, int64(g.Cfg.ZDim)}, torch.Float32, g.Store.Device)
				var cb *torch.Tensor
				if c != nil {
					cb = c.Repeat(b, 1)
				}
				upd := g.Map.Update
				g.Map.Update = false
				sum = sum.Add(g.Map.Forward(z, cb).Sum([]int64{0}, false))
				g.Map.Update = upd
			}
			g.Map.WAvg.CopyIn(sum.DivScalar(float64(n)))
		})
	})
}
