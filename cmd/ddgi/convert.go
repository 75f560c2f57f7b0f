package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"ddgi/convert"
	"ddgi/diffusion"
	"ddgi/face"
	"ddgi/internal/progress"
	"ddgi/kinds"
	"ddgi/safetensors"
)

func init() {
	register(command{name: "convert", summary: "convert public checkpoints (StyleGAN2, EG3D, SD1.x, ControlNet, SD VAE, CLIP) to ddgi safetensors, running none of their code", run: runConvert})
}

func runConvert(args []string) error {
	fs := newFlags("convert", "--from rosinality|nvlabs|eg3d --in FILE --out G.safetensors [--half]\n\n"+
		"Reads torch.save files (zip or legacy), Lightning .ckpt and NVlabs network pickles with a\n"+
		"pickle reader that runs no code, renames every tensor by the layout's table (unknown or missing\n"+
		"keys are listed) and writes a ddgi generator with its config in the metadata. Examples:\n"+
		"  ddgi convert --in stylegan2-ffhq-config-f.pt --out sg2_ffhq1024.safetensors\n"+
		"  ddgi convert --from nvlabs --in ffhq.pkl --out sg2.safetensors --half\n"+
		"  ddgi convert --from eg3d --in ffhqrebalanced512-128.pkl --out eg3d_ffhq512.safetensors\n"+
		"  ddgi convert --from ldm --in v1-5-pruned-emaonly.safetensors --out models/sd15\n"+
		"  ddgi convert --from controlnet --cond mask --in control_v11p_sd15_seg.pth --out models/sd15/\n"+
		"  ddgi convert --from diffusers --in stable-diffusion-v1-5/ --out models/sd15   (a diffusers pipeline folder)\n"+
		"  ddgi convert --from controlnet --cond mask --in sd-controlnet-seg/ --out models/sd15/   (a diffusers ControlNetModel folder)\n"+
		"then: ddgi sample gan --generator sg2_ffhq1024.safetensors --seeds 0-3 --out faces.png")
	from := fs.String("from", "", "layout: "+strings.Join(append(append([]string(nil), convert.Formats...), "ldm", "diffusers", "controlnet", "vae", "clip"), ", ")+" (GANs: detected from the file when empty; a folder with model_index.json is diffusers)")
	cond := fs.String("cond", "mask", "controlnet: the condition the branch serves (mask for a segmentation ControlNet, scribble)")
	heads := fs.Int64("heads", 0, "ldm, controlnet: the U-Net's attention heads, which the weights do not record (0: SD1.5's 8)")
	ldmConfig := fs.String("config", "", "ldm, controlnet: the model's LDM .yaml (v1-inference.yaml, cldm_v15.yaml): heads and latent size from it, every other value checked against the weights")
	textHeads := fs.Int64("text-heads", 0, "ldm, clip: the text tower's attention heads (0: width/64, OpenAI's rule: 12 for ViT-L/14)")
	in := fs.String("in", "", "the public checkpoint (.pt, .pth, .ckpt, .pkl or .safetensors), or a diffusers folder")
	out := fs.String("out", "", "ddgi safetensors to write (atomically)")
	key := fs.String("key", "", "the network inside the file (default: g_ema / G_ema, else g / G, else the file's own state dict)")
	half := fs.Bool("half", false, "store fp16 (half the file; computation stays fp32)")
	clamp := fs.Float64("conv-clamp", -1, "override conv_clamp (NVlabs; < 0: as the pickle says, 0: none)")
	force := fs.Bool("force", false, "overwrite --out if it exists")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return fmt.Errorf("--in and --out are required")
	}
	if *from != "" && !slices.Contains(convert.Formats, *from) && !sd[*from] {
		return fmt.Errorf("--from %q: want one of %s, ldm, diffusers, controlnet, vae, clip", *from, strings.Join(convert.Formats, ", "))
	}
	if _, err := os.Stat(filepath.Join(*in, "model_index.json")); err == nil && *from == "" {
		*from = "diffusers"
	}
	if err := refuseOverwrite(*out, *force); err != nil {
		return err
	}
	if sd[*from] {
		o := convert.LDMOptions{Heads: *heads}
		if *ldmConfig != "" {
			var err error
			if o, err = convert.ReadLDMConfig(*ldmConfig, *from == "controlnet"); err != nil {
				return err
			}
			if *heads > 0 {
				o.Heads = *heads
			}
		}
		return convertSD(*from, *in, *out, *cond, *half, o, *textHeads)
	}
	g, rep, err := convert.GAN(*in, convert.GANOptions{From: *from, Key: *key, ConvClamp: *clamp})
	if err != nil {
		return err
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(os.Stderr, "convert: "+n)
	}
	if err := g.Save(*out, *half); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%s layout, %s, %d tensors read)\n", *out, rep.From, rep.Key, rep.Tensors)
	return nil
}

// sd are the Stable Diffusion layouts: they write ddgi files into a
// model-set folder (or, but for ldm, one file).
var sd = map[string]bool{"ldm": true, "diffusers": true, "controlnet": true, "vae": true, "clip": true}

// convertSD converts an SD single file into the model-set folder out (U-Net,
// VAE, text tower; the manifest records them), or one network: a
// ControlNet, VAE or CLIP text tower into a file, or into a folder whose
// manifest then records it (branch.<cond>, vae, text).
func convertSD(from, in, out, cond string, half bool, o convert.LDMOptions, textHeads int64) error {
	if from == "diffusers" {
		roles, err := convert.Diffusers(in, out, half)
		if err != nil {
			return err
		}
		if err := face.AddToManifest(out, roles); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s: %v (manifest.json records them)\n", out, roles)
		return nil
	}
	st, err := os.Stat(in)
	if err != nil {
		return err
	}
	if st.IsDir() && from == "ldm" {
		return fmt.Errorf("%s is a folder: --from ldm reads one file (a diffusers pipeline folder is --from diffusers)", in)
	}
	src, cl, err := openSDSource(in, st.IsDir())
	if err != nil {
		return err
	}
	defer cl.Close()
	if len(src) > 0 {
		bar := progress.NewLogged("convert", 0, int64(len(src)), "tensor")
		defer bar.Finish()
		src = counted(src, bar)
	}
	if from == "ldm" {
		roles, err := convert.SD(src, out, half, o, convert.CLIPTextOptions{Heads: textHeads})
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		if err := face.AddToManifest(out, roles); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s: %v (manifest.json records them; add a CLIP tokenizer folder as role tokenizer)\n", out, roles)
		return nil
	}
	// The model-set role and file name of the one network.
	t := map[string]struct{ role, name string }{
		"controlnet": {"branch." + cond, "branch_" + cond + ".safetensors"},
		"vae":        {"vae", "vae.safetensors"},
		"clip":       {"text", "text.safetensors"},
	}[from]
	role, name := t.role, t.name
	path, dir := out, ""
	if st, err := os.Stat(out); (err == nil && st.IsDir()) || strings.HasSuffix(out, "/") {
		dir = out
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		path = filepath.Join(dir, name)
	}
	// A folder is a diffusers / transformers model folder (a ControlNetModel,
	// a pipeline's vae/ or text_encoder/), read by its own converter, whose
	// errors name the folder.
	folder := st.IsDir()
	switch from {
	case "controlnet":
		var kind kinds.Cond
		if kind, err = convert.ControlKind(cond); err != nil {
			return err
		}
		if folder {
			var n *diffusion.ControlNet
			if n, err = convert.DiffusersControlNet(in, kind); err == nil {
				err = n.Save(path, kind, half)
			}
			break
		}
		err = convert.SaveControlNet(src, kind, path, half, o)
	case "vae":
		if folder {
			err = convert.SaveDiffusersVAE(in, path, half)
			break
		}
		err = convert.SaveVAE(src, path, half)
	case "clip":
		if folder {
			err = convert.SaveHFCLIPTextModel(in, path, half)
			break
		}
		err = convert.SaveCLIPText(src, path, half, convert.CLIPTextOptions{Heads: textHeads})
	}
	if err != nil && folder {
		return err
	}
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if dir != "" {
		if err := face.AddToManifest(dir, map[string]string{role: name}); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%s)\n", path, role)
	return nil
}

// openSDSource opens a checkpoint file's tensors; a folder (a diffusers
// model folder, read by its own converter) has none to open here.
// counted wraps every source so that reading it ticks bar: a multi-GB
// checkpoint takes minutes to convert. Tensors a layout drops are never
// read, so the bar may end short of its total.
func counted(src map[string]convert.Source, bar *progress.Bar) map[string]convert.Source {
	out := make(map[string]convert.Source, len(src))
	for k, v := range src {
		out[k] = countedSource{v, bar}
	}
	return out
}

type countedSource struct {
	convert.Source
	bar *progress.Bar
}

func (c countedSource) Read() (safetensors.Tensor, error) {
	t, err := c.Source.Read()
	c.bar.Add(1)
	return t, err
}

func openSDSource(in string, dir bool) (map[string]convert.Source, io.Closer, error) {
	if dir {
		return nil, io.NopCloser(nil), nil
	}
	return convert.OpenSources(in)
}
