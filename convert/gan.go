package convert

import (
	"fmt"
	"sort"
	"strings"

	"ddgi/convert/torchfile"
	"ddgi/safetensors"
)

// Formats lists the layouts `ddgi convert --from` takes for generators.
var Formats = []string{"rosinality", "nvlabs", "eg3d"}

// Generator is a converted GAN generator, ready to Save.
type Generator interface {
	Save(path string, half bool) error
}

// GANOptions tune a generator conversion.
type GANOptions struct {
	// From is rosinality, nvlabs or eg3d; "" detects it from the file.
	From string
	// Key picks the network inside the file (rosinality: g_ema, else g;
	// NVlabs pickles: G_ema, else G); "" takes the default.
	Key string
	// ConvClamp overrides the conv_clamp read from an NVlabs pickle (< 0:
	// keep what the file says).
	ConvClamp float64
}

// Report says what a conversion found and decided.
type Report struct {
	From, Key string
	Tensors   int
	Notes     []string
}

// GAN reads a public generator checkpoint and converts it to ddgi's
// StyleGAN2 (rosinality, nvlabs) or EG3D (eg3d) generator.
func GAN(path string, o GANOptions) (Generator, Report, error) {
	if strings.HasSuffix(strings.ToLower(path), ".safetensors") {
		return nil, Report{}, fmt.Errorf("%s: GAN checkpoints are PyTorch files (.pt, .pkl); for a Stable Diffusion .safetensors give --from ldm, controlnet, vae or clip", path)
	}
	f, err := torchfile.Open(path)
	if err != nil {
		return nil, Report{}, err
	}
	defer f.Close()
	rep := Report{From: o.From}
	root := unwrapStateDict(f.Root())
	if rep.From == "" {
		if rep.From, err = detectGAN(root); err != nil {
			return nil, rep, fmt.Errorf("%s: %w", path, err)
		}
		rep.Notes = append(rep.Notes, "layout detected: "+rep.From)
	}
	net, key, err := pickNetwork(root, rep.From, o.Key)
	if err != nil {
		return nil, rep, fmt.Errorf("%s: %w", path, err)
	}
	rep.Key = key
	ts, err := torchfile.Tensors(net)
	if err != nil {
		return nil, rep, fmt.Errorf("%s: %s: %w", path, key, err)
	}
	src := map[string]Source{}
	for n, t := range ts {
		src[n] = tensorSource{t}
	}
	if rep.From == "rosinality" {
		if d, ok := root.(*torchfile.Dict); ok {
			if la, ok := d.Get("latent_avg"); ok {
				if t, ok := la.(*torchfile.Tensor); ok {
					src["latent_avg"] = tensorSource{t}
				}
			}
		}
		if _, ok := src["latent_avg"]; !ok {
			rep.Notes = append(rep.Notes, "no latent_avg in the file: w̄ computed from 10,000 mapping samples")
		}
	}
	rep.Tensors = len(src)
	clamp := o.ConvClamp
	if clamp < 0 { // as the file says: NVlabs layers keep conv_clamp as an attribute
		clamp = 0
		if obj, ok := net.(*torchfile.Object); ok {
			if c, ok := number(moduleAttr(obj, "conv_clamp", "synthesis", "b4", "conv1")); ok {
				clamp = c
				rep.Notes = append(rep.Notes, fmt.Sprintf("conv_clamp %g (from the pickle)", c))
			}
		}
	}
	var g Generator
	switch rep.From {
	case "rosinality":
		g, err = StyleGAN2(Rosinality, src, StyleGAN2Options{ConvClamp: clamp})
	case "nvlabs":
		g, err = StyleGAN2(NVlabs, src, StyleGAN2Options{ConvClamp: clamp})
	case "eg3d":
		g, err = EG3D(src, net, EG3DOptions{ConvClamp: o.ConvClamp}) // reads its backbone's own
	default:
		err = fmt.Errorf("--from %q: want one of %s", rep.From, strings.Join(Formats, ", "))
	}
	if err != nil {
		return nil, rep, fmt.Errorf("%s: %w", path, err)
	}
	return g, rep, nil
}

// detectGAN tells the layouts apart by their top-level keys and classes.
func detectGAN(root torchfile.Value) (string, error) {
	d, ok := root.(*torchfile.Dict)
	if !ok {
		return "", fmt.Errorf("cannot tell the layout of a %T; give --from", root)
	}
	for _, k := range []string{"G_ema", "G"} {
		if v, ok := d.Get(k); ok {
			if obj, ok := v.(*torchfile.Object); ok && strings.Contains(obj.Class, "TriPlane") {
				return "eg3d", nil
			}
			return "nvlabs", nil
		}
	}
	for _, k := range []string{"g_ema", "g"} {
		if _, ok := d.Get(k); ok {
			return "rosinality", nil
		}
	}
	if _, ok := d.Get("style.1.weight"); ok {
		return "rosinality", nil
	}
	if _, ok := d.Get("synthesis.b4.const"); ok {
		return "nvlabs", nil
	}
	if _, ok := d.Get("backbone.synthesis.b4.const"); ok {
		return "eg3d", nil
	}
	return "", fmt.Errorf("no generator found (top-level keys %s); give --from and --key", keyList(d))
}

// pickNetwork returns the generator inside root: the given key, else the
// layout's EMA generator, else its training generator, else root itself
// when it is already a state dict.
func pickNetwork(root torchfile.Value, from, key string) (torchfile.Value, string, error) {
	d, ok := root.(*torchfile.Dict)
	if !ok {
		if key != "" {
			return nil, "", fmt.Errorf("--key %s: the file holds a %T, not a dict", key, root)
		}
		return root, "(root)", nil
	}
	candidates := []string{"G_ema", "G"}
	if from == "rosinality" {
		candidates = []string{"g_ema", "g"}
	}
	if key != "" {
		candidates = []string{key}
	}
	for _, k := range candidates {
		if v, ok := d.Get(k); ok {
			return v, k, nil
		}
	}
	if key != "" {
		return nil, "", fmt.Errorf("no entry %q (top-level keys %s)", key, keyList(d))
	}
	return root, "(root)", nil // a bare state dict
}

func keyList(d *torchfile.Dict) string {
	var ks []string
	for _, k := range d.Keys {
		if s, ok := k.(string); ok {
			ks = append(ks, s)
		}
	}
	sort.Strings(ks)
	return list(ks)
}

// tensorSource adapts a pickled tensor to Source.
type tensorSource struct{ t *torchfile.Tensor }

func (s tensorSource) Shape() []int64                    { return s.t.Shape }
func (s tensorSource) Read() (safetensors.Tensor, error) { return s.t.Read() }
