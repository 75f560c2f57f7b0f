package testweights

import (
	"fmt"
	"os"
	"path/filepath"

	"ddgi/diffusion"
	"ddgi/diffusion/vae"
	"ddgi/face"
	"ddgi/gan/stylegan2"
	"ddgi/internal/imageio"
	"ddgi/inversion"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/text"
	"ddgi/torch"
)

// FullSize says what WriteFullSize writes.
type FullSize struct {
	// Latent is the U-Net's latent side (SD1.5: 64, for 512² images); the
	// networks are the same at every size, only the default resolution
	// of diffuse and generate follows it.
	Latent int64
	// GAN is the StyleGAN2 preset (ffhq256, ffhq512, ffhq1024).
	GAN string
	// Width is M's and T's hidden width.
	Width int64
	// Tokenizer is a CLIP tokenizer folder (vocab.json + merges.txt) or a
	// ddgi tokenizer.json, copied into the set.
	Tokenizer string
}

// WriteFullSize fills dir with a model set of SD1.5's shapes and random
// fp16 weights — U-Net, mask ControlNet (3-channel hints), SD's VAE,
// CLIP ViT-L/14's text tower, a public-size StyleGAN2 and M and T sized
// from the U-Net's taps — and its manifest. Nothing is initialised or
// held: the stores are shapes only (nn.Store.Placeholders) and every
// tensor is written from one shared random buffer, so writing the 2.6 GB
// set takes about the largest tensor's memory. For memory and timing
// only; its images are noise.
func WriteFullSize(dir string, o FullSize) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tokName, err := copyTokenizer(o.Tokenizer, dir)
	if err != nil {
		return err
	}
	store := func() *nn.Store {
		s := nn.NewStore(torch.CPU, 0)
		s.Placeholders(1)
		return s
	}
	err = torch.Try(func() {
		must := func(err error) {
			if err != nil {
				panic(&torch.Error{Op: "full-size set", Msg: err.Error()})
			}
		}
		uc, err := diffusion.Preset("sd15")
		must(err)
		uc.LatentSize = o.Latent
		uc.HintChannels = 3
		u, err := diffusion.NewIn(store(), uc)
		must(err)
		must(u.Save(filepath.Join(dir, "unet.safetensors"), true))
		branch, err := diffusion.NewControlNetIn(store(), uc, kinds.Mask)
		must(err)
		must(branch.Save(filepath.Join(dir, "controlnet_mask.safetensors"), kinds.Mask, true))

		vc, err := vae.Preset("sd")
		must(err)
		vs := store()
		vae.New(vs.Root(), vc)
		must(vs.Save(filepath.Join(dir, "vae.safetensors"), nn.SaveOptions{Config: vc, Half: true}))

		tc, err := text.EncoderPreset("clip-vit-l14")
		must(err)
		ts := store()
		text.NewEncoder(ts.Root(), tc)
		must(ts.Save(filepath.Join(dir, "text.safetensors"), nn.SaveOptions{Config: map[string]any{"encoder": tc}, Half: true}))

		gc, err := stylegan2.Preset(o.GAN)
		must(err)
		g, err := stylegan2.NewGenerator(store().Root(), gc)
		must(err)
		must(g.Save(filepath.Join(dir, "stylegan2.safetensors"), true))

		h, f := uc.TapShapes()
		ic := inversion.Config{Styles: int64(g.NumWS()), StyleDim: int64(gc.WDim), HChannels: h[0], HSize: h[1],
			Width: o.Width, AlphaBuckets: 10, Timesteps: uc.TrainSteps, UseAttention: true}
		for _, fi := range f {
			ic.FChannels = append(ic.FChannels, fi[0])
			ic.Size = max(ic.Size, fi[1])
		}
		im, err := inversion.NewModelIn(store(), ic)
		must(err)
		must(im.Save(filepath.Join(dir, "inversion_stylegan2_mask.safetensors"), inversion.TrainConfig{}, true))
	})
	if err != nil {
		return err
	}
	return face.AddToManifest(dir, map[string]string{
		"unet": "unet.safetensors", "branch.mask": "controlnet_mask.safetensors", "vae": "vae.safetensors",
		"text": "text.safetensors", "tokenizer": tokName, "gan.stylegan2": "stylegan2.safetensors",
		"inversion.stylegan2.mask": "inversion_stylegan2_mask.safetensors",
	})
}

// copyTokenizer copies a tokenizer file or folder (its regular files) into
// dir under its own base name and returns that name.
func copyTokenizer(src, dir string) (string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	name := filepath.Base(src)
	if !st.IsDir() {
		b, err := os.ReadFile(src)
		if err != nil {
			return "", err
		}
		return name, imageio.WriteAtomic(filepath.Join(dir, name), b)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
		return "", err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return "", err
		}
		if err := imageio.WriteAtomic(filepath.Join(dir, name, e.Name()), b); err != nil {
			return "", fmt.Errorf("tokenizer: %w", err)
		}
	}
	return name, nil
}
