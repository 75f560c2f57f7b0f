package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"ddgi/nn"
	"ddgi/safetensors"
)

func init() {
	register(command{name: "blend", summary: "interpolate two weight files of one model, (1−t)·from + t·to (WiSE-FT: keep what a fine-tune gave up)", run: runBlend})
}

func runBlend(args []string) error {
	fs := newFlags("blend", "--from old.safetensors --to finetuned.safetensors --t 0.5 --out blended.safetensors [--quantize]")
	from := fs.String("from", "", "the weights a fine-tune started from (ddgi safetensors, fp16/fp32 or int8)")
	to := fs.String("to", "", "the fine-tuned weights of the same model")
	t := fs.Float64("t", 0.5, "share of --to in [0, 1]: 0 gives --from, 1 gives --to")
	out := fs.String("out", "", "output file (written atomically)")
	only := fs.String("only", "", "comma-separated tensor name prefixes to blend (e.g. mapping. for an inversion's M); the rest is --to's")
	quantize := fs.Bool("quantize", false, "store the result's large tensors as int8, as ddgi quantize does")
	force := fs.Bool("force", false, "overwrite --out if it exists")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" || *out == "" {
		return fmt.Errorf("--from, --to and --out are required")
	}
	if err := refuseOverwrite(*out, *force); err != nil {
		return err
	}
	if err := makeParents(*out); err != nil {
		return err
	}
	a, err := safetensors.Open(*from)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := safetensors.Open(*to)
	if err != nil {
		return err
	}
	defer b.Close()
	if ca, cb := trainedCondition(a.Metadata), trainedCondition(b.Metadata); ca != "" && cb != "" && ca != cb {
		return fmt.Errorf("blend %s and %s: trained for different conditions (%q vs %q)", *from, *to, ca, cb)
	}
	var prefixes []string
	for _, p := range strings.Split(*only, ",") {
		if p = strings.TrimSpace(p); p != "" {
			prefixes = append(prefixes, p)
		}
	}
	f, err := nn.Interpolate(a, b, *t, prefixes...)
	if err != nil {
		return fmt.Errorf("blend %s and %s: %w", *from, *to, err)
	}
	if *quantize {
		if _, err := nn.Quantize(f); err != nil {
			return fmt.Errorf("quantize: %w", err)
		}
	}
	if err := safetensors.Save(*out, f); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %.3g·%s + %.3g·%s\n", *out, 1-*t, *from, *t, *to)
	return nil
}

// trainedCondition is the visual condition an inversion file was trained
// on ("" for other files): a mask and a scribble inversion share one shape
// but read different ControlNet features, so blending them is refused.
func trainedCondition(meta map[string]string) string {
	var c struct{ Train struct{ Cond string } }
	if json.Unmarshal([]byte(meta["config"]), &c) != nil {
		return ""
	}
	return c.Train.Cond
}
