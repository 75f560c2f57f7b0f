package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"ddgi/data"
	"ddgi/diffusion"
	"ddgi/diffusion/vae"
	"ddgi/imagebatch"
	"ddgi/internal/imageio"
	"ddgi/nn"
	"ddgi/text"
	"ddgi/torch"
)

func init() {
	register(command{name: "diffuse", summary: "generate a face with the diffusion model itself (the ControlNet baseline, I^d_0)", run: runDiffuse})
}

func runDiffuse(args []string) error {
	fs := newFlags("diffuse", `--text "…" [--mask m.png | --scribble s.png] --out img.png [flags]`)
	prompt := fs.String("text", "", "caption (free English text)")
	maskPath := fs.String("mask", "", "semantic mask PNG (labels or palette), any size")
	scribblePath := fs.String("scribble", "", "scribble PNG (white strokes on black or the inverse), any size")
	out := fs.String("out", "", "output PNG")
	steps := fs.Int("steps", 20, "DDIM steps")
	seed := fs.Uint64("seed", 1, "noise seed")
	n := fs.Int("n", 1, "images to generate (seeds seed, seed+1, … side by side)")
	gText := fs.Float64("guidance", 3, "classifier-free guidance scale on the text (1 = off)")
	gCond := fs.Float64("cond-guidance", 1, "guidance scale on the mask/scribble (1 = off)")
	eta := fs.Float64("eta", 0, "DDIM η (0 deterministic, 1 DDPM-like)")
	sampler := fs.String("sampler", "ddim", "ddim or ddpm (DDPM ignores --steps: 1000 steps)")
	unet := fs.String("unet", "weights/diffusion_small64.safetensors", "base U-Net weights")
	maskNet := fs.String("mask-net", "weights/diffusion_small64_mask.safetensors", "mask ControlNet branch")
	scribbleNet := fs.String("scribble-net", "weights/diffusion_small64_scribble.safetensors", "scribble ControlNet branch")
	maskScale := fs.Float64("mask-scale", 1, "mask branch residual scale")
	scribbleScale := fs.Float64("scribble-scale", 1, "scribble branch residual scale")
	lw := addLatentFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(*prompt) == "":
		return errors.New("--text is required")
	case *out == "":
		return errors.New("--out is required")
	case *n < 1 || *steps < 1:
		return errors.New("--n and --steps must be ≥ 1")
	case *sampler != "ddim" && *sampler != "ddpm":
		return fmt.Errorf("--sampler %q: ddim or ddpm", *sampler)
	}
	m, err := diffusion.Load(*unet, torch.CPU)
	if err != nil {
		return err
	}
	size := int(m.Config.ImageSize())
	texts := make([]string, *n)
	for i := range texts {
		texts[i] = *prompt
	}
	var cond diffusion.Conditions
	if *maskPath != "" {
		lab, err := data.ReadMask(*maskPath, size)
		if err != nil {
			return err
		}
		if err := loadBranch(m, *maskNet, diffusion.CondMask); err != nil {
			return err
		}
		cond.Mask, cond.MaskScale = maskCondition(lab, size, *n), *maskScale
	}
	if *scribblePath != "" {
		s, err := data.ReadScribble(*scribblePath, size)
		if err != nil {
			return err
		}
		if err := loadBranch(m, *scribbleNet, diffusion.CondScribble); err != nil {
			return err
		}
		cond.Scribble, cond.ScribbleScale = scribbleCondition(s, size, *n), *scribbleScale
	}
	te, _, err := loadText(lw, m.Config.ContextDim, false)
	if err != nil {
		return err
	}
	ae, err := autoencoderFor(m.Config, lw)
	if err != nil {
		return err
	}
	p := &diffusion.Pipeline{Model: m, Text: te, AE: ae, Sampler: diffusion.SamplerOpts{Sampler: *sampler, Eta: *eta}}
	var imgs []*torch.Tensor
	for i := 0; i < *n; i++ {
		one := cond.Slice(i)
		img, err := p.Sample(texts[i:i+1], one, *steps, diffusion.Guidance{Text: *gText, Cond: *gCond}, *seed+uint64(i))
		if err != nil {
			return err
		}
		imgs = append(imgs, img)
	}
	err = torch.Try(func() { err = imageio.SaveTensorGrid(*out, torch.Cat(imgs, 0), *n) })
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", *out)
	return nil
}

// loadBranch attaches the ControlNet branch for kind from path.
func loadBranch(m *diffusion.Model, path, kind string) error {
	n, err := m.LoadControl(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no %s branch at %s (train one with `ddgi train diffusion --stage control --cond %s`)", kind, path, kind)
	case err != nil:
		return err
	case n.Kind != kind:
		return fmt.Errorf("%s holds a %s branch, not %s", path, n.Kind, kind)
	}
	return nil
}

// maskCondition one-hot encodes a size² label map, repeated n times.
func maskCondition(lab []uint8, size, n int) *torch.Tensor {
	ids := make([]int64, len(lab))
	for i, v := range lab {
		ids[i] = int64(v)
	}
	t := imagebatch.OneHot(torch.FromInt64(ids, 1, int64(size), int64(size)))
	return t.Expand(int64(n), t.Size(1), t.Size(2), t.Size(3))
}

// scribbleCondition turns 0/255 strokes into a [n,1,size,size] 0/1 map.
func scribbleCondition(s []uint8, size, n int) *torch.Tensor {
	v := make([]float32, len(s))
	for i, p := range s {
		if p > 127 {
			v[i] = 1
		}
	}
	return torch.FromFloat32(v, 1, 1, int64(size), int64(size)).Expand(int64(n), 1, int64(size), int64(size))
}

// latentFlags name the text and latent-space files shared by `diffuse` and
// `train diffusion`.
type latentFlags struct {
	tokenizer, text, textPreset, vae *string
}

func addLatentFlags(fs interface {
	String(name, value, usage string) *string
}) latentFlags {
	return latentFlags{
		tokenizer:  fs.String("tokenizer", "weights/tokenizer.json", "BPE vocabulary"),
		text:       fs.String("text-weights", "weights/text_small64.safetensors", "text encoder weights (absent: trained jointly with the U-Net)"),
		textPreset: fs.String("text-preset", "small64", "text encoder preset when no weights exist"),
		vae:        fs.String("vae", "weights/vae_small64.safetensors", "KL autoencoder weights (latent space \"vae\")"),
	}
}

// textEncoder adapts ddgi/text to diffusion.TextEncoder.
type textEncoder struct {
	tok *text.Tokenizer
	enc *text.Encoder
}

// ids tokenizes texts; "" is the empty prompt.
func (t textEncoder) ids(texts []string) (*torch.Tensor, error) {
	ctx := int(t.enc.Config.ContextLength())
	rows := make([]*torch.Tensor, len(texts))
	for i, s := range texts {
		if strings.TrimSpace(s) == "" {
			rows[i] = text.EmptyIDs(1, ctx)
			continue
		}
		r, err := t.tok.EncodeBatch([]string{s}, ctx)
		if err != nil {
			return nil, err
		}
		rows[i] = r
	}
	var out *torch.Tensor
	err := torch.Try(func() { out = torch.Cat(rows, 0) })
	return out, err
}

func (t textEncoder) Encode(texts []string) (*torch.Tensor, error) {
	ids, err := t.ids(texts)
	if err != nil {
		return nil, err
	}
	var out *torch.Tensor
	err = torch.Try(func() { out = t.enc.Forward(ids) })
	return out, err
}

// loadText loads the tokenizer and the text encoder; when the weights file
// is missing and allowFresh is set it builds a fresh encoder (trained
// jointly) and reports fresh = true.
func loadText(lw latentFlags, width int64, allowFresh bool) (te textEncoder, store *nn.Store, err error) {
	te.tok, err = text.LoadTokenizer(*lw.tokenizer)
	if err != nil {
		return te, nil, fmt.Errorf("tokenizer: %w (run `ddgi train tokenizer`)", err)
	}
	if _, serr := os.Stat(*lw.text); serr == nil {
		te.enc, store, err = text.LoadEncoder(*lw.text, torch.CPU)
		if err != nil {
			return te, nil, err
		}
	} else {
		if !allowFresh {
			return te, nil, fmt.Errorf("text encoder %s missing", *lw.text)
		}
		c, err := text.EncoderPreset(*lw.textPreset)
		if err != nil {
			return te, nil, err
		}
		store = nn.NewStore(torch.CPU, 7)
		te.enc = text.NewEncoder(store.Root(), c)
		return te, store, nil
	}
	if w := te.enc.Config.Width(); w != width {
		return te, nil, fmt.Errorf("text encoder width %d, U-Net context %d", w, width)
	}
	return te, store, nil
}

// autoencoderFor returns the latent space a config was trained in.
func autoencoderFor(c diffusion.Config, lw latentFlags) (diffusion.Autoencoder, error) {
	if c.Latent != "vae" {
		return diffusion.NewAutoencoder(c)
	}
	a, store, err := vae.Load(*lw.vae, torch.CPU)
	if err != nil {
		return nil, fmt.Errorf("latent space \"vae\": %w (train it with `ddgi train vae`)", err)
	}
	store.Freeze("")
	vc := a.Config
	if vc.LatentChannels() != c.LatentChannels || vc.Factor() != c.ImageSize()/c.LatentSize {
		return nil, fmt.Errorf("%s: %d latent channels at factor %d, the U-Net wants %d at %d", *lw.vae, vc.LatentChannels(), vc.Factor(), c.LatentChannels, c.ImageSize()/c.LatentSize)
	}
	return vaeLatent{a: a, scale: vc.ScaleFactor()}, nil
}

// vaeLatent is SD's latent space: scaled samples of the KL posterior.
type vaeLatent struct {
	a     *vae.Autoencoder
	scale float64
}

// ToLatent encodes and samples the posterior (its mean when g is nil).
func (v vaeLatent) ToLatent(x *torch.Tensor, g *torch.Generator) *torch.Tensor {
	mean, logvar := v.a.Encode(x)
	if g == nil {
		return mean.MulScalar(v.scale)
	}
	return v.a.Sample(mean, logvar, g).MulScalar(v.scale)
}

// FromLatent decodes unscaled latents (I^d_0).
func (v vaeLatent) FromLatent(z *torch.Tensor) *torch.Tensor {
	return v.a.Decode(z.DivScalar(v.scale))
}
