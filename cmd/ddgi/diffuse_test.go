package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/diffusion"
	"ddgi/diffusion/vae"
	"ddgi/encoder"
	"ddgi/face"
	"ddgi/internal/imageio"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

// vaeSet is the tiny model set with its U-Net in a KL VAE's latent space
// (untrained tiny U-Net and VAE, factor 2), as a converted SD set is.
func vaeSet(t *testing.T) (dir, set string) {
	dir, set = tinyWeights(t)
	err := torch.Try(func() {
		c, err := diffusion.Preset("tiny")
		if err == nil {
			var dm *diffusion.Model
			if dm, err = diffusion.New(c, torch.CPU, 2); err == nil {
				err = dm.Save(filepath.Join(set, "diffusion_small64.safetensors"), false)
			}
		}
		if err != nil {
			panic(&torch.Error{Op: "vae set", Msg: err.Error()})
		}
		vc, err := vae.Preset("tiny")
		if err != nil {
			panic(&torch.Error{Op: "vae set", Msg: err.Error()})
		}
		store := nn.NewStore(torch.CPU, 3)
		vae.New(store.Root(), vc)
		if err := store.Save(filepath.Join(set, "vae_small64.safetensors"), nn.SaveOptions{Config: vc}); err != nil {
			panic(&torch.Error{Op: "vae set", Msg: err.Error()})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir, set
}

// TestDiffuseLatentsInAndOut runs diffuse on a set in a KL VAE's latent
// space: the seed's own noise given as --latents reproduces the
// seed's image, and --output-type latent writes latents that the set's VAE
// decodes to the very PNG diffuse writes for that seed.
func TestDiffuseLatentsInAndOut(t *testing.T) {
	dir, set := vaeSet(t)
	args := []string{"diffuse", "--weights", set, "--text", "A man.", "--steps", "2", "--seed", "5"}
	png, lat := filepath.Join(dir, "seed.png"), filepath.Join(dir, "z0.safetensors")
	for _, extra := range [][]string{{"--out", png}, {"--output-type", "latent", "--out", lat}} {
		if code := run(append(append([]string(nil), args...), extra...)); code != 0 {
			t.Fatalf("diffuse %v exited %d", extra, code)
		}
	}
	files := face.Options{Weights: set, Cond: kinds.Mask}.Files()
	u, err := diffusion.Load(files["unet"], torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	c := u.Config
	if c.Latent != "vae" {
		t.Fatalf("the fixture set's latent space is %q; the test needs a VAE", c.Latent)
	}
	ae, err := encoder.Autoencoder(c, encoder.Files{VAE: files["vae"]}, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	z0, meta, err := readTensorFile(lat, "latents")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, c.LatentChannels, c.LatentSize, c.LatentSize}; !equalShape(z0.Shape(), want) || meta["ddgi:seed"] != "5" {
		t.Fatalf("latents %v (metadata %v); want %v and the seed recorded", z0.Shape(), meta, want)
	}
	decoded := filepath.Join(dir, "decoded.png")
	torch.NoGrad(func() {
		if err := imageio.SaveTensorGrid(decoded, (&diffusion.Pipeline{AE: ae}).Decode(z0), 1); err != nil {
			t.Fatal(err)
		}
	})
	if !bytes.Equal(pngPixels(t, decoded), pngPixels(t, png)) {
		t.Error("the written latents decode to another image than diffuse's PNG for the same seed")
	}

	// The seed's noise, given as a file under another seed: the same image (DDIM, η = 0).
	noise := filepath.Join(dir, "noise.safetensors")
	writeNamed(t, noise, "latents", torch.Randn(torch.NewGenerator(5), []int64{1, c.LatentChannels, c.LatentSize, c.LatentSize}, torch.Float32, torch.CPU))
	again := filepath.Join(dir, "again.png")
	if code := run([]string{"diffuse", "--weights", set, "--text", "A man.", "--steps", "2", "--seed", "77", "--latents", noise, "--out", again}); code != 0 {
		t.Fatalf("diffuse --latents exited %d", code)
	}
	if !bytes.Equal(pngPixels(t, again), pngPixels(t, png)) {
		t.Error("--latents with seed 5's noise gives another image than --seed 5")
	}

	// Bad files and shapes: one line, exit 1, nothing written.
	wrong := filepath.Join(dir, "wrong.safetensors")
	writeNamed(t, wrong, "latents", torch.Zeros([]int64{1, c.LatentChannels + 1, c.LatentSize, c.LatentSize}, torch.Float32, torch.CPU))
	other := filepath.Join(dir, "other.safetensors")
	writeNamed(t, other, "noise", torch.Zeros([]int64{1, c.LatentChannels, c.LatentSize, c.LatentSize}, torch.Float32, torch.CPU))
	nan := filepath.Join(dir, "nan.safetensors")
	writeNamed(t, nan, "latents", torch.Full([]int64{1, c.LatentChannels, c.LatentSize, c.LatentSize}, 0, torch.Float32, torch.CPU).Div(torch.Scalar(0, torch.CPU)))
	bad := filepath.Join(dir, "bad.png")
	for _, extra := range [][]string{
		{"--latents", wrong}, {"--latents", other}, {"--latents", nan}, {"--latents", noise, "--n", "2"},
		{"--latents", filepath.Join(dir, "missing.safetensors")}, {"--latents", png}, {"--output-type", "jpeg"},
	} {
		code, _, stderr := captureRun(t, append(append([]string(nil), args...), append(extra, "--out", bad)...)...)
		if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("diffuse %v: exit %d, stderr %q; want 1 and one line", extra, code, stderr)
		}
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("a refused run wrote its output")
	}
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// writeNamed saves x as the only tensor of a safetensors file.
func writeNamed(t *testing.T, path, name string, x *torch.Tensor) {
	t.Helper()
	st, err := nn.ToSafetensors(x, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := safetensors.Save(path, &safetensors.File{Tensors: map[string]safetensors.Tensor{name: st}}); err != nil {
		t.Fatal(err)
	}
}
