package nn

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"ddgi/safetensors"
	"ddgi/torch"
)

// Interpolate returns the weights (1 − t)·from + t·to of two files of one
// model: WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot
// models"), where interpolating a fine-tuned model with the weights it
// started from keeps much of what the fine-tune gave up at little of what
// it gained. Both files must hold the same tensors with the same shapes
// (int8 ones are dequantized first) and, where both carry one, the same
// model config. Float tensors come out F16 unless both inputs store them
// wider; other tensors must be equal and are copied. The metadata is
// to's, without its quantization note and with the blend recorded. With
// prefixes, only tensors whose names start with one of them are blended;
// the others are to's (e.g. "mapping." blends an inversion's M alone).
// The inputs are read tensor by tensor, so a blend holds its output and
// two tensors, not both files.
func Interpolate(from, to *safetensors.Lazy, t float64, prefixes ...string) (*safetensors.File, error) {
	if math.IsNaN(t) || t < 0 || t > 1 {
		return nil, fmt.Errorf("interpolation weight %g: want 0 ≤ t ≤ 1", t)
	}
	if a, b := modelConfig(from.Metadata), modelConfig(to.Metadata); a != "" && b != "" && a != b {
		return nil, fmt.Errorf("the files configure different models (their config metadata differs)")
	}
	names := weightNames(to)
	if fn := weightNames(from); strings.Join(fn, "\n") != strings.Join(names, "\n") {
		return nil, fmt.Errorf("the files hold different tensors (%d vs %d names; first difference %q)", len(fn), len(names), firstDifference(fn, names))
	}
	out := &safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
	for k, v := range to.Metadata {
		if k != "quantized" {
			out.Metadata[k] = v
		}
	}
	out.Metadata["interpolated"] = fmt.Sprintf("WiSE-FT: %.4g·from + %.4g·to", 1-t, t)
	if len(prefixes) > 0 {
		out.Metadata["interpolated"] += " on " + strings.Join(prefixes, ", ") + "*"
	}
	fa, fb := &lazyFile{l: from}, &lazyFile{l: to}
	blended := 0
	for _, name := range names {
		da, sa, _ := from.Info(name)
		db, sb, _ := to.Info(name)
		if fmt.Sprint(sa) != fmt.Sprint(sb) {
			return nil, fmt.Errorf("tensor %s: shape %v vs %v", name, sa, sb)
		}
		if !blendable(from, name) || !blendable(to, name) {
			a, err := from.Tensor(name)
			if err != nil {
				return nil, err
			}
			b, err := to.Tensor(name)
			if err != nil {
				return nil, err
			}
			if a.DType != b.DType || string(a.Data) != string(b.Data) {
				return nil, fmt.Errorf("tensor %s: non-float values differ between the files", name)
			}
			out.Tensors[name] = b
			continue
		}
		share := 1.0 // outside prefixes: to's values, stored as the blended ones
		if hasAnyPrefix(name, prefixes) {
			share = t
			blended++
		}
		st, err := interpolated(fa, fb, name, share, wide(da) && wide(db))
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		out.Tensors[name] = st
	}
	if blended == 0 {
		return nil, fmt.Errorf("no tensor name starts with %s", strings.Join(prefixes, " or "))
	}
	return out, nil
}

func hasAnyPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return len(prefixes) == 0
}

// interpolated is one tensor of Interpolate.
// At t = 1 (to's tensor alone) from's copy is not read.
func interpolated(from, to *lazyFile, name string, t float64, keepWide bool) (safetensors.Tensor, error) {
	b, err := to.read(name)
	if err != nil {
		return safetensors.Tensor{}, err
	}
	defer b.Free()
	var a *torch.Tensor
	if t != 1 {
		if a, err = from.read(name); err != nil {
			return safetensors.Tensor{}, err
		}
		defer a.Free()
	}
	var st safetensors.Tensor
	var saveErr error
	err = torch.Try(func() {
		torch.Scoped(func() {
			mix := b.To(torch.Float32)
			if a != nil {
				mix = a.To(torch.Float32).MulScalar(1 - t).Add(mix.MulScalar(t))
			}
			st, saveErr = ToSafetensors(mix, !keepWide)
		})
	})
	if err == nil {
		err = saveErr
	}
	return st, err
}

// modelConfig is the part of a file's "config" metadata that shapes the
// network: its "model" entry where it has one (ddgi's inversions also
// record how they were trained), else the whole config.
func modelConfig(meta map[string]string) string {
	c := meta["config"]
	var parts map[string]json.RawMessage
	if json.Unmarshal([]byte(c), &parts) == nil && parts["model"] != nil {
		return string(parts["model"])
	}
	return c
}

// weightNames lists a file's tensors without the int8 scales.
func weightNames(f *safetensors.Lazy) []string {
	var out []string
	for _, n := range f.Names() {
		if !strings.HasSuffix(n, QuantScaleSuffix) {
			out = append(out, n)
		}
	}
	return out
}

func firstDifference(a, b []string) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] + " / " + b[i]
		}
	}
	if len(a) > len(b) {
		return a[len(b)]
	}
	if len(b) > len(a) {
		return b[len(a)]
	}
	return ""
}

// blendable: a float tensor, or an int8 one that Quantize wrote (it has a
// scale); other integer tensors (indices, counters) are copied, not mixed.
func blendable(f *safetensors.Lazy, name string) bool {
	d, _, _ := f.Info(name)
	_, _, scaled := f.Info(name + QuantScaleSuffix)
	return isFloat(d) || d == safetensors.I8 && scaled
}

func isFloat(d safetensors.DType) bool {
	return d == safetensors.F16 || d == safetensors.BF16 || d == safetensors.F32 || d == safetensors.F64
}

func wide(d safetensors.DType) bool { return d == safetensors.F32 || d == safetensors.F64 }
