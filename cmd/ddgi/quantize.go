package main

import (
	"fmt"
	"os"

	"ddgi/nn"
	"ddgi/safetensors"
)

func init() {
	register(command{name: "quantize", summary: "store a weights file's large float tensors as int8 with per-row scales (half an fp16 file; loads transparently)", run: runQuantize})
}

func runQuantize(args []string) error {
	fs := newFlags("quantize", "--in weights/inversion_eg3d_mask.safetensors --out small.safetensors")
	in := fs.String("in", "", "safetensors weights written by ddgi")
	out := fs.String("out", "", "output file (may equal --in with --force; written atomically)")
	force := fs.Bool("force", false, "overwrite --out if it exists")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return fmt.Errorf("--in and --out are required")
	}
	if err := refuseOverwrite(*out, *force); err != nil {
		return err
	}
	if err := makeParents(*out); err != nil {
		return err
	}
	f, err := safetensors.Load(*in)
	if err != nil {
		return err
	}
	n, err := nn.Quantize(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: no float tensor of ≥ 2 dims and ≥ %d elements to quantize", *in, nn.QuantizeMin)
	}
	before, err := os.Stat(*in)
	if err != nil {
		return err
	}
	if err := safetensors.Save(*out, f); err != nil {
		return err
	}
	after, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "quantized %d tensors: %s (%.2f MB) → %s (%.2f MB)\n", n, *in, float64(before.Size())/1e6, *out, float64(after.Size())/1e6)
	return nil
}
