package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"ddgi/convert"
)

func init() {
	register(command{name: "convert", summary: "convert a public checkpoint (rosinality / NVlabs StyleGAN2, NVlabs EG3D) to ddgi safetensors, running none of its code", run: runConvert})
}

func runConvert(args []string) error {
	fs := newFlags("convert", "--from rosinality|nvlabs|eg3d --in FILE --out G.safetensors [--half]\n\n"+
		"Reads torch.save files (zip or legacy), Lightning .ckpt and NVlabs network pickles with a\n"+
		"pickle reader that runs no code, renames every tensor by the layout's table (unknown or missing\n"+
		"keys are listed) and writes a ddgi generator with its config in the metadata. Examples:\n"+
		"  ddgi convert --in stylegan2-ffhq-config-f.pt --out sg2_ffhq1024.safetensors\n"+
		"  ddgi convert --from nvlabs --in ffhq.pkl --out sg2.safetensors --half\n"+
		"  ddgi convert --from eg3d --in ffhqrebalanced512-128.pkl --out eg3d_ffhq512.safetensors\n"+
		"then: ddgi sample gan --generator sg2_ffhq1024.safetensors --seeds 0-3 --out faces.png")
	from := fs.String("from", "", "layout: "+strings.Join(convert.Formats, ", ")+" (default: detected from the file)")
	in := fs.String("in", "", "the public checkpoint (.pt, .pth, .ckpt or .pkl)")
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
	if *from != "" && !slices.Contains(convert.Formats, *from) {
		return fmt.Errorf("--from %q: want one of %s", *from, strings.Join(convert.Formats, ", "))
	}
	if _, err := os.Stat(*out); err == nil && !*force {
		return fmt.Errorf("%s exists; pass --force to overwrite it", *out)
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
