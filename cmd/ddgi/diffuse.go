package main

import (
	"errors"
	"flag"
	"fmt"
	"image"
	"os"
	"strings"

	"ddgi/data"
	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/face"
	"ddgi/internal/imageio"
	"ddgi/internal/progress"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/safetensors"
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
	out := fs.String("out", "", "output PNG (with --output-type latent: the latents' .safetensors)")
	outType := fs.String("output-type", "png", "png, or latent: write the final latents (tensor latents [N,C,L,L], the U-Net's latent space, before the VAE) to --out instead of decoding them, as diffusers' output_type=\"latent\"")
	latentsPath := fs.String("latents", "", "initial noise: a .safetensors with tensor latents [N,C,L,L] at the U-Net's latent shape (N = --n; --n defaults to N) instead of the seeds' draw, as diffusers' latents=; the sampler noise of --eta > 0 or ddpm still comes from --seed")
	steps := fs.Int("steps", 20, "DDIM steps")
	seed := fs.Uint64("seed", 1, "noise seed")
	n := fs.Int("n", 1, "images to generate (seeds seed, seed+1, … side by side)")
	gText := fs.Float64("guidance", face.SampleGuidance.Text, "classifier-free guidance scale on the text: how strongly the prompt's attributes are drawn (1 = off; higher follows the prompt more, at some cost in variety; one extra U-Net pass per step)")
	gCond := fs.Float64("cond-guidance", face.SampleGuidance.Cond, "guidance scale on the mask/scribble: how closely the face follows the condition (1 = off, which leaves faces fragmented on the shipped branches; one extra pass per step); the defaults are the ControlNet baseline's settings in every table of docs/eval.md")
	eta := fs.Float64("eta", 0, "DDIM η (0 deterministic, 1 DDPM-like)")
	sampler := fs.String("sampler", "ddim", "ddim or ddpm (DDPM ignores --steps: 1000 steps)")
	unet := fs.String("unet", "weights/diffusion_small64.safetensors", "base U-Net weights")
	maskNet := fs.String("mask-net", "weights/diffusion_small64_mask.safetensors", "mask ControlNet branch")
	scribbleNet := fs.String("scribble-net", "weights/diffusion_small64_scribble.safetensors", "scribble ControlNet branch")
	maskScale := fs.Float64("mask-scale", 1, "mask branch residual scale")
	scribbleScale := fs.Float64("scribble-scale", 1, "scribble branch residual scale")
	lw := addEncoderFlags(fs)
	devName := fs.String("device", "cpu", "cpu, cuda or cuda:N: where every network of the sampler runs")
	precision := precisionFlag(fs, "")
	weights := fs.String("weights", "", "model-set folder (e.g. `ddgi convert --from ldm` output): the files --unet, --mask-net, --scribble-net, --vae, --text-weights and --tokenizer leave unset come from its manifest, else its shipped names")
	applyLimits := imageLimitFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := applyLimits(); err != nil {
		return err
	}
	if *weights == "" {
		if err := weightsDefaults(fs, "unet", "tokenizer"); err != nil {
			return err
		}
	} else {
		if _, err := face.ReadManifest(*weights); err != nil {
			return err
		}
		mask := face.Options{Weights: *weights, Cond: kinds.Mask}.Files()
		scribble := face.Options{Weights: *weights, Cond: kinds.Scribble}.Files()
		for flagName, v := range map[string]struct {
			dst *string
			val string
		}{
			"unet": {unet, mask["unet"]}, "mask-net": {maskNet, mask["branch"]}, "scribble-net": {scribbleNet, scribble["branch"]},
			"vae": {&lw.VAE, mask["vae"]}, "text-weights": {&lw.Text, mask["text"]}, "tokenizer": {&lw.Tokenizer, mask["tokenizer"]},
		} {
			if !flagSet(fs, flagName) {
				*v.dst = v.val
			}
		}
	}
	switch {
	case strings.TrimSpace(*prompt) == "":
		return errors.New("--text is required")
	case *out == "":
		return errors.New("--out is required")
	case *n < 1 || *n > 1024 || *steps < 1:
		return errors.New("--n must be 1…1024 and --steps ≥ 1")
	case *sampler != "ddim" && *sampler != "ddpm":
		return fmt.Errorf("--sampler %q: ddim or ddpm", *sampler)
	case *outType != "png" && *outType != "latent":
		return fmt.Errorf("--output-type %q: png or latent", *outType)
	}
	dev, err := torch.ParseDevice(*devName)
	if err != nil {
		return err
	}
	if err := makeParents(*out); err != nil {
		return err
	}
	prec, err := precision()
	if err != nil {
		return err
	}
	m, err := diffusion.LoadInference(*unet, dev, prec)
	if err != nil {
		return err
	}
	if T := m.Schedule.T(); *steps > T {
		return fmt.Errorf("--steps %d: the U-Net's schedule has %d steps", *steps, T)
	}
	size := int(m.Config.ImageSize())
	var zT *torch.Tensor
	if *latentsPath != "" {
		if zT, err = readLatents(*latentsPath, m.Config, fs, n); err != nil {
			return err
		}
		defer zT.Free()
	}
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
		if err := encoder.LoadBranch(m, *maskNet, kinds.Mask); err != nil {
			return err
		}
		cond.Mask, cond.MaskScale = encoder.MaskCondition(lab, size, *n).ToDevice(dev), *maskScale
	}
	if *scribblePath != "" {
		s, err := data.ReadScribble(*scribblePath, size)
		if err != nil {
			return err
		}
		if err := encoder.LoadBranch(m, *scribbleNet, kinds.Scribble); err != nil {
			return err
		}
		cond.Scribble, cond.ScribbleScale = encoder.ScribbleCondition(s, size, *n).ToDevice(dev), *scribbleScale
	}
	lw.Precision = prec
	te, _, err := encoder.LoadText(*lw, m.Config.ContextDim, false, dev)
	if err != nil {
		return err
	}
	ae, err := encoder.Autoencoder(m.Config, *lw, dev)
	if err != nil {
		return err
	}
	p := &diffusion.Pipeline{Model: m, Text: te, AE: ae, Sampler: diffusion.SamplerOpts{Sampler: *sampler, Eta: *eta}}
	var imgs []*torch.Tensor
	// One tick per sampler step: a full-size step takes seconds.
	per := p.StepsPerSample(*steps)
	bar := progress.NewLogged("diffuse", 0, int64(*n*per), "step")
	bar.Set(0, nil)
	for i := 0; i < *n; i++ {
		p.OnStep = func(done, _ int) { bar.Set(int64(i*per+done), nil) }
		one := cond.Slice(i)
		var z0 *torch.Tensor
		if zT != nil {
			if err := torch.Try(func() { z0 = zT.Narrow(0, int64(i), 1) }); err != nil {
				return err
			}
		}
		img, err := p.SampleFrom(texts[i:i+1], one, *steps, diffusion.Guidance{Text: *gText, Cond: *gCond}, *seed+uint64(i), z0, *outType == "png")
		if err != nil {
			return err
		}
		imgs = append(imgs, img.ToDevice(torch.CPU))
	}
	bar.Finish()
	// The PNG records how it was made, as generate's do.
	files := map[string]string{"unet": *unet, "text": lw.Text, "tokenizer": lw.Tokenizer, "vae": lw.VAE}
	if zT != nil {
		files["latents"] = *latentsPath
	}
	if *maskPath != "" {
		files["mask-net"] = *maskNet
	}
	if *scribblePath != "" {
		files["scribble-net"] = *scribbleNet
	}
	prov, err := diffuseProvenance(files, map[string]string{"mask": *maskPath, "scribble": *scribblePath}, *prompt, map[string]string{
		"seed": fmt.Sprint(*seed), "steps": fmt.Sprint(*steps), "sampler": *sampler, "guidance": fmt.Sprint(*gText),
		"cond-guidance": fmt.Sprint(*gCond), "eta": fmt.Sprint(*eta), "mask-scale": fmt.Sprint(*maskScale), "scribble-scale": fmt.Sprint(*scribbleScale),
		"precision": string(prec),
	})
	if err != nil {
		return err
	}
	if *outType == "latent" {
		return writeLatents(*out, imgs, prov)
	}
	var tiles []image.Image
	if err := torch.Try(func() { tiles, err = imageio.FromTensor(torch.Cat(imgs, 0)) }); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if err := imageio.SavePNGText(*out, imageio.Grid(tiles, nil, *n, 2), prov); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", *out)
	return nil
}

// readLatents reads diffuse's initial noise: tensor latents [N,C,L,L]
// (finite) at c's latent shape, with N = *n, or *n set to N when --n was
// not given.
func readLatents(path string, c diffusion.Config, fs *flag.FlagSet, n *int) (*torch.Tensor, error) {
	z, _, err := readTensorFile(path, "latents")
	if err != nil {
		return nil, err
	}
	sh := z.Shape()
	if len(sh) != 4 || sh[1] != c.LatentChannels || sh[2] != c.LatentSize || sh[3] != c.LatentSize || sh[0] < 1 || sh[0] > 1024 {
		z.Free()
		return nil, fmt.Errorf("%s: latents are %v; this U-Net needs [N,%d,%d,%d] with 1 ≤ N ≤ 1024", path, sh, c.LatentChannels, c.LatentSize, c.LatentSize)
	}
	if !flagSet(fs, "n") {
		*n = int(sh[0])
	} else if int64(*n) != sh[0] {
		z.Free()
		return nil, fmt.Errorf("%s: %d latents for --n %d", path, sh[0], *n)
	}
	return z, nil
}

// writeLatents saves the final latents of each image, in order, as one
// tensor latents [N,C,L,L] (atomically), with the PNG's provenance as
// metadata.
func writeLatents(path string, zs []*torch.Tensor, prov map[string]string) error {
	var st safetensors.Tensor
	var err error
	if terr := torch.Try(func() { st, err = nn.ToSafetensors(torch.Cat(zs, 0).To(torch.Float32).Contiguous(), false) }); terr != nil {
		return terr
	}
	if err != nil {
		return err
	}
	meta := map[string]string{"format": "ddgi", "note": "final latents z_0 [N,C,L,L] of `ddgi diffuse`, before the autoencoder's decoder"}
	for k, v := range prov {
		meta[k] = v
	}
	if err := safetensors.Save(path, &safetensors.File{Metadata: meta, Tensors: map[string]safetensors.Tensor{"latents": st}}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (latents %v)\n", path, st.Shape)
	return nil
}
