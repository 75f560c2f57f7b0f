package face

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/gan/eg3d"
	"ddgi/imagebatch"
	"ddgi/internal/imageio"
	"ddgi/inversion"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/torch"
)

// Options choose the shipped networks to load.
type Options struct {
	// Weights is the folder holding the shipped weights (weights/).
	Weights string
	// GAN is StyleGAN2 (2D) or EG3D (3D-aware).
	GAN kinds.GANArch
	// Cond is the visual input: a mask or a scribble.
	Cond   kinds.Cond
	Device torch.Device
	// Precision is what the diffusion U-Net, its ControlNets and the text
	// tower compute in: "" or nn.FP32 as the reference, nn.BF16 for CPUs
	// with bf16 matrix units (full-size sets: taps 1.5–2× faster at
	// bf16's rounding). The VAE, M, T and the GAN stay fp32.
	Precision nn.Precision
	// Step is the denoising step t of the tapped U-Net pass at inference;
	// negative means T−1 (one pass on pure noise: the prompt and condition
	// alone decide). Below T−1 the 20-step guided DDIM sampler first runs
	// from z_T down to t (each grid step above t costs one U-Net pass per
	// guidance term: three with SampleGuidance).
	Step int
	// Variant selects weights trained another way (an ablation such as
	// "m-only"): inversion_<gan>_<cond>_<variant>.safetensors.
	Variant string
	// Art selects the style-transfer models (paper Sec. 4.4): the text
	// encoder that learned the style words (text_small64_art: photo
	// captions encode as with the base one), the U-Net fine-tuned on
	// SynthFace artworks (diffusion_small64_art) and M, T
	// trained against its I^d_0 (inversion_<gan>_<cond>_art). The prompt
	// names the style ("A marble statue. The man …").
	Art bool
	// Generator and Inversion, when set, replace the model set's GAN and
	// inversion files: a `ddgi convert`ed public generator (any resolution)
	// and M, T trained on it. GAN must name the generator's architecture.
	Generator, Inversion string
	// Guidance is E's classifier-free guidance for full samples and for
	// the denoising before Step < T−1; zero means SampleGuidance.
	Guidance diffusion.Guidance
	// PromptStrength scales how far the prompt moves the code through M's
	// text path (inversion.MappingNetwork.GuidedCode: guidance on the text
	// offset): 1 is the model as trained, > 1 follows the prompt more. 0
	// means DefaultPromptStrength where the inversion has a text path and 1
	// where it has none; any other value needs a text path.
	PromptStrength float64
	// Spread is ψ of the truncation trick on M's code
	// (inversion.SpreadCode): above 1 pushes faces away from the GAN's
	// average face. 0 means 1 (as trained).
	Spread float64
	// Variation is β of inversion.VaryStyles: the style layers from
	// VariationFrom on move by β times the request seed's own GAN code
	// (less w̄), so colour, light and background vary with the seed. 0:
	// none (as trained).
	Variation float64
	// VariationFrom is the first style layer Variation moves; 0 means
	// DefaultVariationFrom of the GAN.
	VariationFrom int
}

// DefaultPromptStrength is the prompt strength of inversions with a text
// path when Options leave it 0, chosen on SynthFace's val split
// (docs/inversion.md, "Prompt strength").
const DefaultPromptStrength = 1.5

// Files lists the weight files Options select, in load order: by the
// model set's manifest where it names them (ManifestName), else by the
// shipped names. A manifest that cannot be read is reported by CheckFiles.
func (o Options) Files() map[string]string {
	m, _ := ReadManifest(o.Weights)
	w := func(role, shipped string) string { return m.file(o.Weights, role, shipped) }
	unet, text, variant, art := "diffusion_small64.safetensors", "text_small64.safetensors", o.Variant, ""
	if o.Art {
		unet, text, variant, art = "diffusion_small64_art.safetensors", "text_small64_art.safetensors", "art", ".art"
	}
	gan, cond := string(o.GAN), string(o.Cond)
	inv := "inversion." + gan + "." + cond
	if variant != "" {
		inv += "." + variant
	}
	files := map[string]string{
		"tokenizer": w("tokenizer", "tokenizer.json"),
		"text":      w("text"+art, text),
		"vae":       w("vae", "vae_small64.safetensors"),
		"unet":      w("unet"+art, unet),
		"branch":    w("branch."+cond, "diffusion_small64_"+cond+".safetensors"),
		"gan":       w("gan."+gan, gan+"_small64.safetensors"),
		"inversion": w(inv, "inversion_"+gan+"_"+cond+variantSuffix(variant)+".safetensors"),
	}
	// The art U-Net may keep the branch it was trained with when the photo
	// branch moves on to a newer base ("branch.mask.art").
	if _, ok := m.role("branch." + cond + art); ok && art != "" {
		files["branch"] = w("branch."+cond+art, "")
	}
	if o.Generator != "" {
		files["gan"] = o.Generator
	}
	if o.Inversion != "" {
		files["inversion"] = o.Inversion
	}
	return files
}

func variantSuffix(v string) string {
	if v == "" {
		return ""
	}
	return "_" + v
}

// Pipeline is the loaded method: E → M, T → G.
type Pipeline struct {
	Opts  Options
	E     *encoder.E
	G     GAN
	Model *inversion.Model
}

// MaxPromptBytes bounds a prompt; captions are a sentence or three.
const MaxPromptBytes = 1000

// CheckPrompt rejects prompts the text encoder cannot use.
func CheckPrompt(s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return errors.New("the prompt is empty")
	case !utf8.ValidString(s):
		return errors.New("the prompt is not valid UTF-8")
	case len(s) > MaxPromptBytes:
		return fmt.Errorf("the prompt has %d bytes; at most %d are accepted", len(s), MaxPromptBytes)
	}
	return nil
}

// LoadEncoder builds E from the shipped diffusion weights for one condition kind.
func LoadEncoder(o Options) (*encoder.E, error) {
	f := o.Files()
	m, err := diffusion.LoadInference(f["unet"], o.Device, o.Precision)
	if err != nil {
		return nil, fmt.Errorf("diffusion U-Net: %w", err)
	}
	if err := encoder.LoadBranch(m, f["branch"], o.Cond); err != nil {
		return nil, err
	}
	files := encoder.Files{Tokenizer: f["tokenizer"], Text: f["text"], TextPreset: "small64", VAE: f["vae"], Precision: o.Precision}
	te, _, err := encoder.LoadText(files, m.Config.ContextDim, false, o.Device)
	if err != nil {
		return nil, err
	}
	ae, err := encoder.Autoencoder(m.Config, files, o.Device)
	if err != nil {
		return nil, err
	}
	used := []string{f["unet"], f["branch"], f["text"]}
	if m.Config.Latent == "vae" {
		used = append(used, f["vae"])
	}
	id, err := inversion.FileID(used...)
	if err != nil {
		return nil, err
	}
	g := o.Guidance
	if g == (diffusion.Guidance{}) {
		g = SampleGuidance
	}
	p := &diffusion.Pipeline{Model: m, Text: te, AE: ae, Sampler: diffusion.SamplerOpts{Sampler: "ddim"}}
	return &encoder.E{Pipeline: p, Text: te, Steps: 20, Guidance: g, WeightsID: id}, nil
}

// SampleGuidance is the default classifier-free guidance of full diffusion
// samples (Options.Guidance): I^d_0 for training T and the ControlNet
// baseline of Table 1 (the same images). Part of the I^d_0 cache key.
var SampleGuidance = diffusion.Guidance{Text: 3, Cond: 2}

// LoadInversion reads M and T saved by the trainer (config in metadata),
// frozen.
func LoadInversion(path string, dev torch.Device) (*inversion.Model, error) {
	m, _, err := inversion.Load(path, dev)
	if err != nil {
		return nil, err
	}
	m.Store.Freeze("")
	return m, nil
}

// ErrMissingWeights marks a weight file Load needs that does not exist (a
// server answers it differently from a broken file).
var ErrMissingWeights = errors.New("missing weights")

// CheckFiles reports the first weight file Load needs that is absent,
// wrapping ErrMissingWeights; nil when all are there.
func (o Options) CheckFiles() error {
	if _, err := ReadManifest(o.Weights); err != nil {
		return err
	}
	for _, name := range []string{"tokenizer", "unet", "branch", "gan", "inversion"} {
		if _, err := os.Stat(o.Files()[name]); err != nil {
			return fmt.Errorf("%w %s (see weights/README.md for the command that trains them)", ErrMissingWeights, o.Files()[name])
		}
	}
	return nil
}

// CondKind is the condition of a request that has a mask and/or a
// scribble: exactly one is required.
func CondKind(hasMask, hasScribble bool) (kinds.Cond, error) {
	switch {
	case hasMask && hasScribble:
		return "", errors.New("give a mask or a scribble, not both")
	case hasMask:
		return kinds.Mask, nil
	case hasScribble:
		return kinds.Scribble, nil
	}
	return "", errors.New("a mask or a scribble is required")
}

// CheckRender rejects output settings the chosen GAN cannot honour: an
// unknown GAN, views outside 0..maxViews, non-finite angles, and any camera
// for the 2D StyleGAN2.
func CheckRender(gan kinds.GANArch, views, maxViews int, yaw, pitch float64) error {
	switch {
	case gan != kinds.StyleGAN2 && gan != kinds.EG3D:
		return fmt.Errorf("unknown GAN %q (want stylegan2 or eg3d)", gan)
	case views < 0 || views > maxViews:
		return fmt.Errorf("views must be between 0 and %d", maxViews)
	case math.IsNaN(yaw) || math.IsInf(yaw, 0) || math.IsNaN(pitch) || math.IsInf(pitch, 0):
		return errors.New("yaw and pitch must be finite numbers of degrees")
	case (views > 0 || yaw != 0 || pitch != 0) && gan != kinds.EG3D:
		return errors.New("views, yaw and pitch need the eg3d GAN (StyleGAN2 is 2D)")
	case math.Abs(yaw) > 180 || math.Abs(pitch) >= 90:
		return fmt.Errorf("yaw %g°, pitch %g°: want |yaw| ≤ 180 and |pitch| < 90", yaw, pitch)
	}
	return nil
}

// TrainedYaw and TrainedPitch bound the camera angles the shipped EG3D saw
// in training: SynthFace samples yaw within ±50° and pitch within ±20°
// (synthface/params.go).
const (
	TrainedYaw   = 50.0
	TrainedPitch = 20.0
)

// RenderWarning says when a possible camera lies outside what the 3D
// GAN was trained on (the image is a guess there); "" when it does not.
func RenderWarning(yaw, pitch float64) string {
	if math.Abs(yaw) > TrainedYaw || math.Abs(pitch) > TrainedPitch {
		return fmt.Sprintf("yaw %g°, pitch %g° are outside the ±%g° / ±%g° the 3D model was trained on: expect a smeared or broken head", yaw, pitch, TrainedYaw, TrainedPitch)
	}
	return ""
}

// Load builds the whole pipeline from the shipped weights.
func Load(o Options) (*Pipeline, error) {
	if o.Cond != kinds.Mask && o.Cond != kinds.Scribble {
		return nil, fmt.Errorf("condition %q: want mask or scribble", o.Cond)
	}
	if err := o.CheckFiles(); err != nil {
		return nil, err
	}
	e, err := LoadEncoder(o)
	if err != nil {
		return nil, err
	}
	if T := e.Timesteps(); o.Step >= T {
		return nil, fmt.Errorf("step %d: the U-Net has T = %d steps; want -1 (T−1) or 0…%d", o.Step, T, T-1)
	}
	g, err := LoadGAN(o.GAN, o.Files()["gan"], o.Device)
	if err != nil {
		return nil, err
	}
	m, err := LoadInversion(o.Files()["inversion"], o.Device)
	if err != nil {
		return nil, err
	}
	if m.Config.Styles != g.Styles() || m.Config.StyleDim != g.StyleDim() {
		return nil, fmt.Errorf("inversion weights expect W+ %d×%d, %s has %d×%d", m.Config.Styles, m.Config.StyleDim, o.GAN, g.Styles(), g.StyleDim())
	}
	s := o.PromptStrength
	if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("prompt strength %g: want ≥ 0 (1: as trained, 0: the default)", s)
	}
	if s == 0 {
		s = 1
		if m.Mapping.Text != nil {
			s = DefaultPromptStrength
		}
	}
	if s != 1 {
		if m.Mapping.Text == nil {
			return nil, fmt.Errorf("prompt strength %g: %s has no text path to scale (retrain it with --text-path)", s, o.Files()["inversion"])
		}
		m.PromptStrength, e.EmptyPooled = s, true
	}
	if psi := o.Spread; psi < 0 || math.IsNaN(psi) || math.IsInf(psi, 0) || psi > 4 {
		return nil, fmt.Errorf("spread %g: want a ψ in (0, 4] (1: as trained, 0: the default 1)", psi)
	}
	m.Spread = o.Spread
	if b := o.Variation; b < 0 || math.IsNaN(b) || b > 4 {
		return nil, fmt.Errorf("variation %g: want a β in [0, 4] (0: none)", b)
	}
	if l := int(g.Styles()); o.VariationFrom < 0 || o.VariationFrom >= l {
		return nil, fmt.Errorf("variation layers from %d: %s has style layers 0…%d", o.VariationFrom, o.GAN, l-1)
	}
	e.Pipeline.Model.Concurrent, m.AbSMNet.Concurrent = true, true
	return &Pipeline{Opts: o, E: e, G: g, Model: m}, nil
}

// smallBatch is the largest batch that runs faster with one intra-op
// thread per stream when the images are at most smallSide²: at batch 1
// most 64² ops are too small to split, and the ControlNet branch and the
// U-Net encoder take the two cores side by side instead
// (BenchmarkGenerate2D, docs/inversion.md). Full-size ops (SD1.5's 512²,
// a 1024² StyleGAN2) split well: one thread there made a 512² generate
// take 24.5 s for its codes instead of 21.2 s (bench/sd, 2 threads).
const (
	smallBatch = 2
	smallSide  = 128
)

// withBatchThreads runs f, a batch of n at side², with one intra-op thread
// for small batches of small images.
func withBatchThreads(n, side int, f func()) {
	if n > smallBatch || side > smallSide {
		f()
		return
	}
	torch.WithThreads(1, f)
}

// Size is the resolution conditions are read at.
func (p *Pipeline) Size() int { return SizeOf(p.E) }

// Request is one generation: a prompt and a condition at Size()².
type Request struct {
	Text     string
	Mask     []uint8 // labels 0..18 (Cond kinds.Mask)
	Scribble []uint8 // 0/255 strokes (Cond kinds.Scribble)
	Seed     int64
}

// Batch is a batch of generations as tensors (on any device): what Codes
// turns Requests into, and what a caller holding tensors already (the
// bench) hands to BatchCodes. Only the condition Options.Cond names is read.
type Batch struct {
	Texts    []string
	Seeds    []int64
	Mask     *torch.Tensor // [N,S,S] int64 labels 0..18
	Scribble *torch.Tensor // [N,1,S,S] float32, 1 on strokes
}

// Codes runs E once at step t, then M and T (Eqs. 2–4): the latent codes
// [B,L,dim] for the requests. The result is persistent.
func (p *Pipeline) Codes(reqs []Request) (*torch.Tensor, error) {
	if len(reqs) == 0 {
		return nil, errors.New("no requests")
	}
	size := p.Size()
	b := Batch{Texts: make([]string, len(reqs)), Seeds: make([]int64, len(reqs))}
	maps := make([][]uint8, len(reqs))
	for i, r := range reqs {
		if err := CheckPrompt(r.Text); err != nil { // a bad prompt is reported before a bad condition
			return nil, fmt.Errorf("request %d: %w", i+1, err)
		}
		b.Texts[i], b.Seeds[i], maps[i] = r.Text, r.Seed, r.Mask
		if p.Opts.Cond == kinds.Scribble {
			maps[i] = r.Scribble
		}
		if len(maps[i]) != size*size {
			return nil, fmt.Errorf("request %d: %s has %d pixels, want %d²", i+1, p.Opts.Cond, len(maps[i]), size)
		}
	}
	var w *torch.Tensor
	var err error
	if terr := torch.Try(func() {
		torch.Scoped(func() {
			if p.Opts.Cond == kinds.Mask {
				b.Mask = imagebatch.Labels(maps, size)
			} else {
				b.Scribble = imagebatch.Strokes(maps, size)
			}
			w, err = p.BatchCodes(b)
		})
	}); terr != nil {
		return nil, terr
	}
	return w, err
}

// BatchCodes is Codes for a batch already in tensors.
func (p *Pipeline) BatchCodes(b Batch) (*torch.Tensor, error) {
	if len(b.Texts) == 0 || len(b.Seeds) != len(b.Texts) {
		return nil, fmt.Errorf("%d prompts and %d seeds: want as many of each, at least one", len(b.Texts), len(b.Seeds))
	}
	for i, t := range b.Texts {
		if err := CheckPrompt(t); err != nil {
			return nil, fmt.Errorf("request %d: %w", i+1, err)
		}
	}
	var w *torch.Tensor
	err := torch.Try(func() {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				withBatchThreads(len(b.Texts), p.Size(), func() { w = p.codes(b) })
				torch.Persist(w)
			})
		})
	})
	return w, err
}

func (p *Pipeline) codes(b Batch) *torch.Tensor {
	size, dev, n := int64(p.Size()), p.Opts.Device, int64(len(b.Texts))
	cond := inversion.Condition{Kind: p.Opts.Cond}
	want, dt, in := []int64{n, size, size}, torch.Int64, b.Mask
	if p.Opts.Cond == kinds.Scribble {
		want, dt, in = []int64{n, 1, size, size}, torch.Float32, b.Scribble
	}
	if in == nil || in.DType() != dt || !slices.Equal(in.Shape(), want) {
		panic(&torch.Error{Op: "generate", Msg: fmt.Sprintf("the %s condition must be a %v tensor of shape %v", p.Opts.Cond, dt, want)})
	}
	if p.Opts.Cond == kinds.Mask {
		cond.Mask = in.ToDevice(dev)
	} else {
		cond.Scribble = in.ToDevice(dev)
	}
	t := p.Opts.Step
	if t < 0 || t >= p.E.Timesteps() {
		t = p.E.Timesteps() - 1
	}
	steps := torch.Full([]int64{n}, float64(t), torch.Int64, dev)
	// At t < T−1 the sampler first denoises z_T to z_t (a few guided DDIM
	// steps), so the tap sees what training's q(z_t|z_0) looked like.
	zt := p.E.DenoiseTo(inversion.SeedPriors(p.E, b.Seeds), b.Texts, cond, t)
	h, f := p.E.Features(zt, steps, b.Texts, cond)
	w := p.Model.Invert(h, f, steps, p.Opts.Variant == string(inversion.MOnly)).W
	if p.Opts.Variation != 0 {
		from := p.Opts.VariationFrom
		if from == 0 {
			from = DefaultVariationFrom(p.G)
		}
		w = inversion.VaryStyles(w, p.G.SeedCodes(b.Seeds, dev), p.G.MeanLatent(), p.Opts.Variation, from)
	}
	return w
}

// DefaultVariationFrom is the first style layer Options.Variation moves
// when VariationFrom is 0: the styles of the synthesis's two finest
// resolutions (for a 64² StyleGAN2, layers 6–9 of 10: 32² and 64²).
func DefaultVariationFrom(g GAN) int {
	return max(int(g.Styles())-4, 1)
}

// Render draws codes w [B,L,dim] from cameras [B,25] (nil: frontal; a 2D
// GAN ignores cameras) as [B,3,H,W] in [-1,1].
func (p *Pipeline) Render(w, cams *torch.Tensor) (*torch.Tensor, error) {
	var img *torch.Tensor
	err := torch.Try(func() {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				n := int(w.Size(0))
				if cams != nil {
					n = max(n, int(cams.Size(0)))
				}
				withBatchThreads(n, int(p.G.Resolution()), func() { img = inversion.Render(p.G, w, cams).Clamp(-1, 1) })
				torch.Persist(img)
			})
		})
	})
	return img, err
}

// SizeOf is the image size an encoder reads conditions (and ground truth) at.
func SizeOf(e *encoder.E) int { return int(e.Pipeline.Model.Config.ImageSize()) }

// View renders code i of w [B,L,dim] from yaw and pitch in degrees (a 2D
// GAN ignores the camera) as an image.
func (p *Pipeline) View(w *torch.Tensor, i int, yaw, pitch float64) (image.Image, error) {
	return p.view(w, i, func() *torch.Tensor { return p.G.Camera(yaw, pitch) })
}

// ViewCamera renders code i of w from an EG3D camera label (see
// ParseCamera); a 2D GAN ignores it.
func (p *Pipeline) ViewCamera(w *torch.Tensor, i int, cam [eg3d.CameraDim]float32) (image.Image, error) {
	return p.view(w, i, func() *torch.Tensor { return torch.FromFloat32(cam[:], 1, eg3d.CameraDim) })
}

func (p *Pipeline) view(w *torch.Tensor, i int, camera func() *torch.Tensor) (image.Image, error) {
	var pics []image.Image
	err := torch.Try(func() {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				var cam *torch.Tensor
				if p.G.Is3D() {
					cam = camera().ToDevice(p.Opts.Device)
				}
				img := inversion.Render(p.G, w.Narrow(0, int64(i), 1), cam).Clamp(-1, 1)
				var err error
				if pics, err = imageio.FromTensor(img); err != nil {
					panic(&torch.Error{Op: "view", Msg: err.Error()})
				}
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return pics[0], nil
}

// Views renders code i of w from n cameras swept evenly across yaw
// −45°…45° at one pitch: the turn of `ddgi generate --views`.
func (p *Pipeline) Views(w *torch.Tensor, i, n int, pitch float64) ([]image.Image, error) {
	return p.ViewsEach(w, i, n, pitch, nil)
}

// ViewsEach is Views calling done(k) after the k-th view (when not nil):
// progress for generators whose views take seconds each.
func (p *Pipeline) ViewsEach(w *torch.Tensor, i, n int, pitch float64, done func(k int)) ([]image.Image, error) {
	frames := make([]image.Image, 0, n)
	for v := 0; v < n; v++ {
		yaw := -45.0
		if n > 1 {
			yaw += 90 * float64(v) / float64(n-1)
		}
		pic, err := p.View(w, i, yaw, pitch)
		if err != nil {
			return nil, fmt.Errorf("view %d of %d: %w", v+1, n, err)
		}
		frames = append(frames, pic)
		if done != nil {
			done(v + 1)
		}
	}
	return frames, nil
}

// ParseCamera reads an EG3D camera label — 16 numbers of the row-major
// cam-to-world matrix (OpenCV axes), then the 9 of the normalised
// intrinsics — from 25 numbers separated by commas or spaces, a JSON
// array, or a file holding either. The rotation must be orthonormal and
// the focal lengths positive, so a mistyped camera fails here rather than
// rendering an empty image.
func ParseCamera(arg string) ([eg3d.CameraDim]float32, error) {
	var cam [eg3d.CameraDim]float32
	text := arg
	if st, err := os.Stat(arg); err == nil && st.Mode().IsRegular() {
		if st.Size() > 1<<16 {
			return cam, fmt.Errorf("camera file %s is %d bytes; a camera is 25 numbers", arg, st.Size())
		}
		b, err := os.ReadFile(arg)
		if err != nil {
			return cam, fmt.Errorf("camera: %w", err)
		}
		text = string(b)
	}
	var vals []float64
	if err := json.Unmarshal([]byte(text), &vals); err != nil {
		vals = vals[:0]
		for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || unicode.IsSpace(r) || r == '[' || r == ']' }) {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return cam, fmt.Errorf("camera: %q is not a number (want 25 numbers: 4×4 cam-to-world, 3×3 intrinsics)", f)
			}
			vals = append(vals, v)
		}
	}
	if len(vals) != eg3d.CameraDim {
		return cam, fmt.Errorf("camera has %d numbers, want %d (4×4 cam-to-world, 3×3 intrinsics)", len(vals), eg3d.CameraDim)
	}
	for i, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return cam, fmt.Errorf("camera number %d is not finite", i+1)
		}
		cam[i] = float32(v)
	}
	for a := 0; a < 3; a++ {
		for b := 0; b < 3; b++ {
			dot := 0.0
			for k := 0; k < 3; k++ {
				dot += vals[4*k+a] * vals[4*k+b]
			}
			want := 0.0
			if a == b {
				want = 1
			}
			if math.Abs(dot-want) > 1e-3 {
				return cam, errors.New("camera: the cam-to-world rotation (numbers 1–3, 5–7, 9–11) is not orthonormal")
			}
		}
	}
	if vals[16] <= 0 || vals[20] <= 0 {
		return cam, errors.New("camera: focal lengths (numbers 17 and 21) must be positive")
	}
	return cam, nil
}
