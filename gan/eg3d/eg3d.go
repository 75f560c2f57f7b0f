// Package eg3d is an EG3D-style 3D-aware generator (Chan et al., "Efficient
// Geometry-aware 3D Generative Adversarial Networks", CVPR 2022): a
// StyleGAN2 backbone conditioned on the camera writes three feature planes
// (the tri-plane), a small MLP decodes features bilinearly sampled from
// them into density and colour features, volume rendering along camera
// rays (stratified + importance samples) forms a low-resolution feature
// image whose first three channels are the raw RGB, and a w-modulated
// super-resolution stage lifts it to the output resolution. The
// discriminator sees the high-resolution image and the upsampled raw image
// together (dual discrimination) and the camera.
//
// Checkpoint keys: backbone.* (a stylegan2.Generator: mapping with the
// 25-float camera embedding, synthesis writing 3·PlaneChannels channels),
// decoder.fc{0,1}.{weight,bias}, superres.convs.{j}.*, superres.torgbs.{k}.*.
package eg3d

import (
	"fmt"
	"sort"

	"ddgi/camera"
	"ddgi/gan/stylegan2"
	"ddgi/nn"
	"ddgi/torch"
)

// CameraDim is the width of EG3D's camera label: 16 cam2world + 9 intrinsics.
const CameraDim = camera.Dim

// Config holds the hyper-parameters of the 3D-aware generator.
type Config struct {
	Preset string `json:"preset"`
	// Backbone is the StyleGAN2 generator writing the planes: its
	// Resolution is the plane resolution, ImgChannels = 3·PlaneChannels and
	// CDim = 25. Its D fields and training fields drive the discriminator
	// and the loop.
	Backbone          stylegan2.Config `json:"backbone"`
	PlaneRes          int              `json:"plane_res"`
	PlaneChannels     int              `json:"plane_channels"`
	DecoderHidden     int              `json:"decoder_hidden"`
	DecoderFeatures   int              `json:"decoder_features"` // features composited per ray; first 3 are raw RGB
	NeuralRes         int              `json:"neural_res"`       // volume-rendered resolution
	ImgRes            int              `json:"img_res"`          // output resolution after super-resolution
	SRChannels        int              `json:"sr_channels"`
	DepthSamples      int              `json:"depth_samples"`
	ImportanceSamples int              `json:"importance_samples"`
	RayStart          float64          `json:"ray_start"`
	RayEnd            float64          `json:"ray_end"`
	BoxWarp           float64          `json:"box_warp"` // side of the cube the planes span (world units)
	// ShapePrior is the raw density of a solid core inside every SynthFace
	// head that G cannot carve (0 = off): the field's raw density is at
	// least the core's there. Without it the small runs settle early on a
	// flat card or a hollow (concave) face, whose painted face slides or
	// turns the wrong way when the camera moves (docs/gan.md); with it the
	// face sits on a convex surface from the first step, and G adds hair,
	// nose, chin and the backdrop around it.
	ShapePrior  float64    `json:"shape_prior,omitempty"`
	ShapeCentre [3]float64 `json:"shape_centre,omitempty"` // world units
	ShapeRadii  [3]float64 `json:"shape_radii,omitempty"`
	// ShapeShell is the outer share of the core's radius over which its
	// density ramps up (0 reads as 0.3, the first runs' value): thin makes
	// the core an opaque surface the face is painted on, where a thick
	// ramp lets colour smear through a semi-transparent volume.
	ShapeShell float64 `json:"shape_shell,omitempty"`

	// Switches for NVlabs' public EG3D (`ddgi convert --from eg3d` sets
	// them); their zero values are ddgi's own design, which the shipped
	// models were trained with.
	//
	// PlaneAxes "zx" samples the third plane at (z, x), as NVlabs' released
	// models do (a known quirk kept for their weights); "" samples (z, y).
	PlaneAxes string `json:"plane_axes,omitempty"`
	// Sampling "eg3d" places stratified samples at linspace + jitter·Δ,
	// smooths the importance weights by max- then average-pooling, and
	// clamps depth to the batch's sample range (NVlabs' ImportanceRenderer);
	// "" uses bin centres, raw weights and the far bound for empty rays.
	Sampling string `json:"sampling,omitempty"`
	// SRBlocks is NVlabs' super-resolution design: StyleGAN2 synthesis
	// blocks over the rendered features scaled to [-1,1] (all channels),
	// after a bilinear resize to SRInputRes; nil is ddgi's design
	// (SRChannels wide, one upsampling block per octave, features in [0,1]).
	SRBlocks    []SRBlock `json:"sr_blocks,omitempty"`
	SRInputRes  int       `json:"sr_input_res,omitempty"`
	SRConvClamp float64   `json:"sr_conv_clamp,omitempty"`
	// DecoderLRMul is the tri-plane decoder's learning-rate multiplier
	// (NVlabs' decoder_lr_mul; 0 reads as 1).
	DecoderLRMul float64 `json:"decoder_lr_mul,omitempty"`
	// ConditionZero maps every latent with a zero camera (NVlabs'
	// c_gen_conditioning_zero, or c_scale 0).
	ConditionZero bool `json:"condition_zero,omitempty"`
	// CameraPivot and CameraRadius are the orbit the model was trained on
	// (NVlabs FFHQ: (0, 0, 0.2) at 2.7); zero values take the orbit its
	// caller hands in (Generator.Orbit: SynthFace's for ddgi's models).
	CameraPivot  *[3]float64 `json:"camera_pivot,omitempty"`
	CameraRadius float64     `json:"camera_radius,omitempty"`
}

// SRBlock is one NVlabs super-resolution block: conv0 (2× upsampling when
// Up), conv1 and a ToRGB added to the (upsampled) skip image.
type SRBlock struct {
	Channels int  `json:"channels"`
	Up       bool `json:"up"`
}

// Validate reports configs the generator cannot be built from.
func (c Config) Validate() error {
	switch {
	case c.NeuralRes < 1 || c.ImgRes < 1:
		return fmt.Errorf("eg3d: neural_res %d and img_res %d must be ≥ 1", c.NeuralRes, c.ImgRes)
	case c.PlaneAxes != "" && c.PlaneAxes != "zx":
		return fmt.Errorf("eg3d: plane_axes %q: want \"\" (ddgi) or \"zx\" (NVlabs)", c.PlaneAxes)
	case c.Sampling != "" && c.Sampling != "eg3d":
		return fmt.Errorf("eg3d: sampling %q: want \"\" (ddgi) or \"eg3d\" (NVlabs)", c.Sampling)
	case c.DepthSamples < 2 || c.ImportanceSamples < 0 || (c.Sampling == "eg3d" && c.ImportanceSamples > 0 && c.DepthSamples < 4):
		return fmt.Errorf("eg3d: %d depth and %d importance samples are too few", c.DepthSamples, c.ImportanceSamples)
	case c.DecoderLRMul < 0:
		return fmt.Errorf("eg3d: decoder_lr_mul %v < 0", c.DecoderLRMul)
	case c.NeuralRes > 2048 || c.ImgRes > stylegan2.MaxResolution || c.SRInputRes > 2048 || c.DepthSamples > 1024 || c.ImportanceSamples > 1024 ||
		c.PlaneChannels > 1024 || c.DecoderHidden > 4096 || c.DecoderFeatures > 4096 || c.SRChannels > 8192 || len(c.SRBlocks) > 8:
		return fmt.Errorf("eg3d: config beyond any public model: neural %d², image %d², %d+%d samples per ray, %d plane channels, decoder %d/%d, %d super-resolution blocks",
			c.NeuralRes, c.ImgRes, c.DepthSamples, c.ImportanceSamples, c.PlaneChannels, c.DecoderHidden, c.DecoderFeatures, len(c.SRBlocks))
	}
	if c.SRBlocks == nil {
		if c.NeuralRes > c.ImgRes || c.ImgRes%c.NeuralRes != 0 {
			return fmt.Errorf("eg3d: neural_res %d must divide img_res %d", c.NeuralRes, c.ImgRes)
		}
		return nil
	}
	res := max(c.SRInputRes, c.NeuralRes)
	if c.SRInputRes < c.NeuralRes && c.SRInputRes != 0 {
		return fmt.Errorf("eg3d: sr_input_res %d below neural_res %d (downsampling with antialiasing is not implemented)", c.SRInputRes, c.NeuralRes)
	}
	for _, b := range c.SRBlocks {
		if b.Channels < 1 || b.Channels > 8192 {
			return fmt.Errorf("eg3d: super-resolution block of %d channels", b.Channels)
		}
		if b.Up {
			res *= 2
		}
	}
	if res != c.ImgRes {
		return fmt.Errorf("eg3d: super-resolution blocks end at %d², img_res is %d", res, c.ImgRes)
	}
	return nil
}

// HeadEllipsoid is a core that stays inside every SynthFace head (skull
// and face at the extremes of the sampled proportions), in EG3D world
// units (1 = 54 cm): 12 × 17 × 14 cm about a point 1 cm above the eyes.
var HeadEllipsoid = struct {
	Centre, Radii [3]float64
	Shell         float64
}{
	Centre: [3]float64{0, 0.02, -0.01},
	Radii:  [3]float64{0.11, 0.16, 0.13},
	Shell:  0.05,
}

// WithShapeOf returns c with the shape prior of o (strength, centre,
// radii, shell): how a resumed run keeps the prior its weights were fitted to.
func (c Config) WithShapeOf(o Config) Config {
	c.ShapePrior, c.ShapeCentre, c.ShapeRadii, c.ShapeShell = o.ShapePrior, o.ShapeCentre, o.ShapeRadii, o.ShapeShell
	return c
}

// WithShapePrior returns c with the head prior at strength a (0 turns it off).
func (c Config) WithShapePrior(a float64) Config {
	c.ShapePrior = a
	c.ShapeCentre, c.ShapeRadii, c.ShapeShell = HeadEllipsoid.Centre, HeadEllipsoid.Radii, HeadEllipsoid.Shell
	if a == 0 {
		c.ShapeCentre, c.ShapeRadii, c.ShapeShell = [3]float64{}, [3]float64{}, 0
	}
	return c
}

func preset(name string, planeRes, planeCh, neural, img, sr, samples int, bb stylegan2.Config) Config {
	bb.Preset = name + "-backbone"
	bb.Resolution = planeRes
	bb.ImgChannels = 3 * planeCh
	bb.CDim = CameraDim
	return Config{Preset: name, Backbone: bb, PlaneRes: planeRes, PlaneChannels: planeCh, DecoderHidden: 64,
		DecoderFeatures: planeCh, NeuralRes: neural, ImgRes: img, SRChannels: sr, DepthSamples: samples,
		ImportanceSamples: samples, RayStart: 2.25, RayEnd: 3.3, BoxWarp: 1}
}

// Presets by name: tiny (tests), small64 (shipped), ffhq256/512/1024 (full
// size: 256² planes with 32 channels each, 128² neural rendering, 48+48
// samples per ray, as EG3D's FFHQ models).
var Presets = map[string]Config{
	"tiny":     preset("tiny", 16, 8, 8, 16, 16, 8, stylegan2.Presets["tiny"]),
	"small64":  preset("small64", 32, 16, 32, 64, 64, 16, stylegan2.Presets["small64"]),
	"ffhq256":  preset("ffhq256", 256, 32, 128, 256, 128, 48, stylegan2.Presets["ffhq256"]),
	"ffhq512":  preset("ffhq512", 256, 32, 128, 512, 128, 48, stylegan2.Presets["ffhq512"]),
	"ffhq1024": preset("ffhq1024", 256, 32, 128, 1024, 128, 48, stylegan2.Presets["ffhq1024"]),
}

func init() {
	c := Presets["tiny"]
	c.DecoderHidden = 16
	Presets["tiny"] = c
	s := Presets["small64"]
	s.DecoderHidden = 32
	s.Backbone.Batch = 8
	Presets["small64"] = s
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
		return Config{}, fmt.Errorf("eg3d: unknown preset %q (known: %v)", name, names)
	}
	return c, nil
}

// DConfig is the discriminator's StyleGAN2 config (at ImgRes).
func (c Config) DConfig() stylegan2.Config {
	d := c.Backbone
	d.Resolution = c.ImgRes
	return d
}

// NumWS is L, the backbone's style count (the super-resolution stage
// reuses the last style, as EG3D).
func (c Config) NumWS() int { return c.Backbone.NumWS() }

// OSGDecoder is EG3D's tri-plane decoder: the mean of the three sampled
// plane features → FC + softplus → FC to one density and the features,
// whose colour part is squashed by a widened sigmoid.
type OSGDecoder struct {
	FC0, FC1 *nn.Linear
}

// NewOSGDecoder registers decoder.fc0 and decoder.fc1 (lrMul 0 reads as 1).
func NewOSGDecoder(p nn.Path, in, hidden, out int64, lrMul float64) *OSGDecoder {
	return &OSGDecoder{
		FC0: nn.NewLinear(p.Sub("fc0"), in, hidden, nn.LinearOpts{EqualLR: true, LRMul: lrMul}),
		FC1: nn.NewLinear(p.Sub("fc1"), hidden, 1+out, nn.LinearOpts{EqualLR: true, LRMul: lrMul}),
	}
}

// Forward maps features [B,P,C] to density [B,P,1] and features [B,P,F].
func (d *OSGDecoder) Forward(x *torch.Tensor) (sigma, feat *torch.Tensor) {
	h := d.FC1.Forward(d.FC0.Forward(x).Softplus(1, 20))
	f := h.Size(-1)
	sigma = h.Narrow(2, 0, 1)
	feat = h.Narrow(2, 1, f-1).Sigmoid().MulScalar(1 + 2*0.001).SubScalar(0.001)
	return sigma, feat
}

// SampleTriplane projects points [B,P,3] (world units) onto the xy, xz and
// zy planes (zx with axes "zx", NVlabs' layout) of planes [B,3,C,H,W]
// spanning a cube of side boxWarp, bilinearly samples each and averages:
// [B,P,C].
func SampleTriplane(planes, pts *torch.Tensor, boxWarp float64, axes string) *torch.Tensor {
	s := planes.Shape()
	b, c, h, w := s[0], s[2], s[3], s[4]
	p := pts.Size(1)
	q := pts.MulScalar(2 / boxWarp)
	x, y, z := q.Select(2, 0), q.Select(2, 1), q.Select(2, 2)
	pairs := [3][2]*torch.Tensor{{x, y}, {x, z}, {z, y}}
	if axes == "zx" {
		pairs[2] = [2]*torch.Tensor{z, x}
	}
	var sum *torch.Tensor
	for k, ab := range pairs {
		grid := torch.Stack([]*torch.Tensor{ab[0], ab[1]}, 2).Reshape(b, 1, p, 2)
		plane := planes.Select(1, int64(k)).Reshape(b, c, h, w)
		v := torch.GridSample(plane, grid, torch.Bilinear, torch.GridZeros, false).Reshape(b, c, p)
		if sum == nil {
			sum = v
		} else {
			sum = sum.Add(v)
		}
	}
	return sum.DivScalar(3).Permute(0, 2, 1)
}

// SuperResolution lifts the neural rendering to ImgRes with StyleGAN2
// blocks (StyledConv, upsampling or not, StyledConv, ToRGB skip) modulated
// by w.
type SuperResolution struct {
	Convs  []*stylegan2.StyledConv
	ToRGBs []*stylegan2.ToRGB
	Up     []bool // per block: conv0 upsamples and the skip image is upsampled
	// InputRes resizes the features bilinearly before the first block (0: no).
	InputRes int
}

// NewSuperResolution registers superres.* for neural → img resolution:
// ddgi's design (one upsampling block of SRChannels per octave) or
// c.SRBlocks.
func NewSuperResolution(p nn.Path, c Config) *SuperResolution {
	blocks := c.SRBlocks
	if blocks == nil {
		for r := c.NeuralRes * 2; r <= c.ImgRes; r *= 2 {
			blocks = append(blocks, SRBlock{Channels: c.SRChannels, Up: true})
		}
	}
	sr := &SuperResolution{}
	if c.SRInputRes != c.NeuralRes {
		sr.InputRes = c.SRInputRes
	}
	in := int64(c.DecoderFeatures)
	wd := int64(c.Backbone.WDim)
	for _, b := range blocks {
		ch := int64(b.Channels)
		j := len(sr.Convs)
		sr.Convs = append(sr.Convs,
			stylegan2.NewStyledConv(p.Sub("convs").Subf("%d", j), in, ch, wd, b.Up),
			stylegan2.NewStyledConv(p.Sub("convs").Subf("%d", j+1), ch, ch, wd, false))
		sr.ToRGBs = append(sr.ToRGBs, stylegan2.NewToRGB(p.Sub("torgbs").Subf("%d", len(sr.ToRGBs)), ch, 3, wd))
		sr.Up = append(sr.Up, b.Up)
		in = ch
	}
	for _, l := range sr.Convs {
		l.Clamp = c.SRConvClamp
	}
	for _, t := range sr.ToRGBs {
		t.Clamp = c.SRConvClamp
	}
	return sr
}

// Forward lifts features [B,F,N,N] and the image rgb [B,3,N,N] with style
// w [B,W].
func (sr *SuperResolution) Forward(feat, rgb, w *torch.Tensor) *torch.Tensor {
	x, img := feat, rgb
	if n := int64(sr.InputRes); n > 0 && n != x.Size(2) {
		x = torch.Interpolate(x, n, n, torch.Bilinear, false)
		img = torch.Interpolate(img, n, n, torch.Bilinear, false)
	}
	for k, t := range sr.ToRGBs {
		x = sr.Convs[2*k].Forward(x, w, nil)
		x = sr.Convs[2*k+1].Forward(x, w, nil)
		if sr.Up[k] {
			img = t.Forward(x, w, img)
		} else {
			img = img.Add(t.Forward(x, w, nil)) // NVlabs' SynthesisBlockNoUp
		}
	}
	return img
}

// Generator is the EG3D-style generator.
type Generator struct {
	Cfg      Config
	Backbone *stylegan2.Generator
	Decoder  *OSGDecoder
	SR       *SuperResolution
	Store    *nn.Store
	// Rng jitters ray samples when set (training); nil renders
	// deterministically.
	Rng *torch.Generator
	// Rows, in a data-parallel training step, makes the ray jitter the
	// rank's rows of the whole batch's (nil: one process).
	Rows *stylegan2.Rows
	// Orbit is the camera prior of the data the model learnt from, which
	// the model cannot know: Load and NewPair take it from their caller.
	// Camera and ComputeMeanLatent use it where Cfg names no orbit.
	Orbit camera.Orbit
}

// NewGenerator builds the generator under p.
func NewGenerator(p nn.Path, c Config) (*Generator, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	bb, err := stylegan2.NewGenerator(p.Sub("backbone"), c.Backbone)
	if err != nil {
		return nil, err
	}
	return &Generator{
		Cfg: c, Backbone: bb, Store: p.Store(),
		Decoder: NewOSGDecoder(p.Sub("decoder"), int64(c.PlaneChannels), int64(c.DecoderHidden), int64(c.DecoderFeatures), c.DecoderLRMul),
		SR:      NewSuperResolution(p.Sub("superres"), c),
	}, nil
}

// NumWS is L.
func (g *Generator) NumWS() int { return g.Cfg.NumWS() }

// WAvg is w̄ [W] (computed at the frontal camera).
func (g *Generator) WAvg() *torch.Tensor { return g.Backbone.WAvg() }

// MeanWPlus is w̄ as w+ [1,L,W].
func (g *Generator) MeanWPlus() *torch.Tensor { return g.Backbone.MeanWPlus() }

// Mapping maps z [B,Z] and the conditioning camera c [B,25] to w+ [B,L,W]
// with truncation ψ.
func (g *Generator) Mapping(z, c *torch.Tensor, psi float64) *torch.Tensor {
	if g.Cfg.ConditionZero {
		c = torch.Zeros(c.Shape(), c.DType(), c.Device())
	}
	return g.Backbone.Mapping(z, c, psi)
}

// Output is one rendering: the super-resolved image, the raw neural
// rendering and its depth.
type Output struct {
	Image    *torch.Tensor // [B,3,ImgRes,ImgRes] in ≈[-1,1]
	ImageRaw *torch.Tensor // [B,3,NeuralRes,NeuralRes] in [-1,1]
	Depth    *torch.Tensor // [B,1,NeuralRes,NeuralRes] world units from the camera
	Weight   *torch.Tensor // [B,1,NeuralRes,NeuralRes] accumulated opacity
}

// Planes runs the backbone: w+ → tri-plane [B,3,C,P,P].
func (g *Generator) Planes(wplus *torch.Tensor, mode stylegan2.NoiseMode) *torch.Tensor {
	x := g.Backbone.Synthesis(wplus, mode)
	s := x.Shape()
	return x.Reshape(s[0], 3, int64(g.Cfg.PlaneChannels), s[2], s[3])
}

// Field is the tri-plane radiance field of given planes (plus the shape
// prior's density when the config has one).
func (g *Generator) Field(planes *torch.Tensor) Field {
	return func(pts *torch.Tensor) (*torch.Tensor, *torch.Tensor) {
		sigma, feat := g.Decoder.Forward(SampleTriplane(planes, pts, g.Cfg.BoxWarp, g.Cfg.PlaneAxes))
		if g.Cfg.ShapePrior != 0 {
			shell := g.Cfg.ShapeShell
			if shell == 0 {
				shell = 0.3
			}
			sigma = WithCore(sigma, ShapePriorDensity(pts, g.Cfg.ShapePrior, g.Cfg.ShapeCentre, g.Cfg.ShapeRadii, shell))
		}
		return sigma, feat
	}
}

// WithCore floors raw densities [B,P,1] at the core's where the core has
// any (G may add density there, never remove it); elsewhere they pass.
func WithCore(sigma, core *torch.Tensor) *torch.Tensor {
	return torch.Where(core.GtScalar(0), sigma.Maximum(core), sigma)
}

// ShapePriorDensity is the core's raw density at points
// [B,P,3]: a·clamp((1 − d)/shell, 0, 1) with d the ellipsoidal radius, so
// it is 0 outside, ramps up through the outer shell and is a inside;
// [B,P,1].
func ShapePriorDensity(pts *torch.Tensor, a float64, centre, radii [3]float64, shell float64) *torch.Tensor {
	dev := pts.Device()
	c := torch.FromFloat32([]float32{float32(centre[0]), float32(centre[1]), float32(centre[2])}, 1, 1, 3).ToDevice(dev)
	r := torch.FromFloat32([]float32{float32(radii[0]), float32(radii[1]), float32(radii[2])}, 1, 1, 3).ToDevice(dev)
	d := pts.Sub(c).Div(r).Norm(2, []int64{2}, true)
	return d.RSubScalar(1).DivScalar(shell).Clamp(0, 1).MulScalar(a)
}

// Synthesis renders w+ [B,L,W] from cameras cam [B,25].
func (g *Generator) Synthesis(wplus, cam *torch.Tensor, mode stylegan2.NoiseMode) Output {
	b := wplus.Size(0)
	n := int64(g.Cfg.NeuralRes)
	planes := g.Planes(wplus, mode)
	o, d := Rays(cam, g.Cfg.NeuralRes)
	ro := RenderOpts{Start: g.Cfg.RayStart, End: g.Cfg.RayEnd, Samples: g.Cfg.DepthSamples, Importance: g.Cfg.ImportanceSamples, Rng: g.Rng, Rows: g.Rows, EG3D: g.Cfg.Sampling == "eg3d"}
	var r Rendered
	if torch.GradEnabled() {
		r = Render(g.Field(planes), o, d, ro)
	} else {
		r = RenderChunks(g.Field(planes), o, d, ro, renderChunk)
	}
	img := func(t *torch.Tensor) *torch.Tensor { return t.Permute(0, 2, 1).Reshape(b, t.Size(2), n, n) }
	feat := img(r.Feat)
	if g.Cfg.SRBlocks != nil {
		feat = feat.MulScalar(2).SubScalar(1) // NVlabs' marcher scales every feature channel
	}
	raw := feat.Narrow(1, 0, 3)
	if g.Cfg.SRBlocks == nil {
		raw = raw.MulScalar(2).SubScalar(1)
	}
	w := wplus.Select(1, int64(g.NumWS()-1))
	return Output{Image: g.SR.Forward(feat, raw, w), ImageRaw: raw, Depth: img(r.Depth), Weight: img(r.Weight)}
}

// renderChunk is the number of rays rendered at once without gradients:
// 4,096 rays × 96 samples decode in ~100 MB, where EG3D-512's 2×128² rays
// at once took GBs. Training renders whole batches (autograd keeps them).
const renderChunk = 4096

// Forward is Mapping (conditioned on cam) then Synthesis from cam.
func (g *Generator) Forward(z, cam *torch.Tensor, psi float64, mode stylegan2.NoiseMode) Output {
	return g.Synthesis(g.Mapping(z, cam, psi), cam, mode)
}

// Camera is the camera at (yaw, pitch) degrees on orbit o as a [1,25] label.
func Camera(o camera.Orbit, yawDeg, pitchDeg float64) *torch.Tensor {
	c := o.Label(yawDeg, pitchDeg)
	return torch.FromFloat32(c[:], 1, CameraDim)
}

// ComputeMeanLatent sets w̄ from n mapping samples at the frontal camera.
func (g *Generator) ComputeMeanLatent(n int, seed uint64) {
	g.Backbone.ComputeMeanLatent(n, seed, g.Camera(0, 0))
}

// Camera is the model's orbit camera at (yaw, pitch) degrees as a [1,25]
// label: the orbit its caller handed in (Orbit) unless the config names
// another pivot or radius, as a converted NVlabs model does.
func (g *Generator) Camera(yawDeg, pitchDeg float64) *torch.Tensor {
	o := g.Orbit
	if g.Cfg.CameraPivot != nil {
		o.Pivot = *g.Cfg.CameraPivot
	}
	if g.Cfg.CameraRadius > 0 {
		o.Radius = g.Cfg.CameraRadius
	}
	if !(o.Radius > 0 && o.Focal > 0) {
		panic(&torch.Error{Op: "eg3d camera", Msg: "no camera orbit: the caller must hand in its data's (Generator.Orbit, eg3d.Load)"})
	}
	return Camera(o, yawDeg, pitchDeg)
}
