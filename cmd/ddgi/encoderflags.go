package main

import (
	"flag"

	"ddgi/encoder"
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
