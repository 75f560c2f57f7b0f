// Package testweights writes model sets of untrained networks under the
// shipped file names: fixtures for tests and benchmarks of the code that
// loads them (face, server, eval methods, cmd/ddgi).
package testweights

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"ddgi/diffusion"
	"ddgi/face"
	"ddgi/gan/eg3d"
	"ddgi/gan/stylegan2"
	"ddgi/internal/imageio"
	"ddgi/inversion"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/text"
	"ddgi/torch"
)

// Tiny is WriteTiny into a temporary folder of tb, failing tb on error.
func Tiny(tb testing.TB, tokenizerPath string) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := WriteTiny(dir, tokenizerPath); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// WriteTiny fills dir with untrained tiny networks under the shipped file
// names (tokenizer copied from tokenizerPath): a fixture for tests and
// smoke runs of every command, never a model to look at.
func WriteTiny(dir, tokenizerPath string) error {
	return WriteRandom(dir, tokenizerPath, "tiny")
}

// WriteRandom is WriteTiny for any preset ("tiny" or
// "small64"): random networks of the shipped shapes, for timing. The
// diffusion model uses patch latents (no VAE to train).
func WriteRandom(dir, tokenizerPath, preset string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tok, err := os.ReadFile(tokenizerPath)
	if err != nil {
		return err
	}
	if err := imageio.WriteAtomic(filepath.Join(dir, "tokenizer.json"), tok); err != nil {
		return err
	}
	return torch.Try(func() {
		must := func(err error) {
			if err != nil {
				panic(&torch.Error{Op: "tiny weights", Msg: err.Error()})
			}
		}
		tc, err := text.EncoderPreset(preset)
		must(err)
		ts := nn.NewStore(torch.CPU, 1)
		text.NewEncoder(ts.Root(), tc)
		must(ts.Save(filepath.Join(dir, "text_small64.safetensors"), nn.SaveOptions{Config: map[string]any{"encoder": tc}}))
		dc, err := diffusion.Preset(preset)
		must(err)
		if preset == "tiny" {
			dc.LatentSize = 16 // 32² conditions: SynthFace renders ≥ 32
		}
		dm, err := diffusion.New(diffusion.PatchConfig(dc), torch.CPU, 2)
		must(err)
		must(dm.Save(filepath.Join(dir, "diffusion_small64.safetensors"), false))
		for i, kind := range kinds.Conds {
			_, err = dm.AddControl(kind, uint64(3+i))
			must(err)
			must(dm.SaveControl(kind, filepath.Join(dir, "diffusion_small64_"+string(kind)+".safetensors"), false))
		}
		gc, err := stylegan2.Preset(preset)
		must(err)
		g, err := stylegan2.NewGenerator(nn.NewStore(torch.CPU, 4).Root(), gc)
		must(err)
		must(g.Save(filepath.Join(dir, "stylegan2_small64.safetensors"), false))
		ec, err := eg3d.Preset(preset)
		must(err)
		g3, err := eg3d.NewGenerator(nn.NewStore(torch.CPU, 5).Root(), ec)
		must(err)
		must(g3.Save(filepath.Join(dir, "eg3d_small64.safetensors"), false))
		for _, gan := range []face.GAN{face.StyleGAN2{G: g}, face.EG3D{G: g3}} {
			for _, cond := range kinds.Conds {
				name := map[bool]kinds.GANArch{false: kinds.StyleGAN2, true: kinds.EG3D}[gan.Is3D()]
				e, err := face.LoadEncoder(face.Options{Weights: dir, GAN: name, Cond: cond, Device: torch.CPU})
				must(err)
				width := map[string]int64{"tiny": 16}[preset]
				if width == 0 {
					width = 128
				}
				ic, err := e.InversionConfig(gan.Styles(), gan.StyleDim(), width, cond)
				must(err)
				im, err := inversion.NewModel(ic, torch.CPU, 6)
				must(err)
				must(im.Mapping.SetMeanLatent(gan.MeanLatent()))
				must(im.Save(filepath.Join(dir, fmt.Sprintf("inversion_%s_%s.safetensors", name, cond)), inversion.TrainConfig{}, true))
			}
		}
	})
}
