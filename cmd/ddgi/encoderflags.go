package main

import (
	"flag"
	"fmt"

	"ddgi/encoder"
	"ddgi/nn"
)

// addEncoderFlags registers the file flags of every command that runs the
// diffusion encoder (--tokenizer, --text-weights, --text-preset, --vae);
// the returned Files hold their values once fs is parsed.
func addEncoderFlags(fs *flag.FlagSet) *encoder.Files {
	f := &encoder.Files{}
	fs.StringVar(&f.Tokenizer, "tokenizer", "weights/tokenizer.json", "BPE vocabulary: ddgi's tokenizer.json, a CLIP tokenizer folder (vocab.json + merges.txt) or bpe_simple_vocab_16e6.txt.gz")
	fs.StringVar(&f.Text, "text-weights", "weights/text_small64.safetensors", "text encoder weights (absent: trained jointly with the U-Net)")
	fs.StringVar(&f.TextPreset, "text-preset", "small64", "text encoder preset when no weights exist")
	fs.StringVar(&f.VAE, "vae", "weights/vae_small64.safetensors", "KL autoencoder weights (latent space \"vae\")")
	return f
}

// precisionFlag adds --precision (note, if any, appended to its help) and
// returns its parser, whose error names the flag.
func precisionFlag(fs *flag.FlagSet, note string) func() (nn.Precision, error) {
	help := "what the diffusion U-Net, its ControlNets and the text tower compute in: fp32 (the reference's numbers) or bf16 (bfloat16: a full-size U-Net pass 1.5–2× faster on CPUs with AVX-512 BF16 or AMX, such as Zen 4/5 and Sapphire Rapids, at 8 bits of mantissa; slower than fp32 on others; docs/checkpoints.md)"
	if note != "" {
		help += "; " + note
	}
	s := fs.String("precision", "fp32", help)
	return func() (nn.Precision, error) {
		p, err := nn.ParsePrecision(*s)
		if err != nil {
			return "", fmt.Errorf("--precision: %w", err)
		}
		return p, nil
	}
}
