package convert

import (
	"fmt"
	"math/bits"
	"regexp"
	"runtime/debug"
	"sort"

	"ddgi/gan/stylegan2"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

// Rosinality is the layout of rosinality/stylegan2-pytorch's Generator
// (`g_ema` in its checkpoints; `latent_avg` is taken from the top level).
// ddgi's StyleGAN2 follows model.py, so most names keep their shape; the
// modulated conv weights carry a leading 1, the ToRGB bias is [1,3,1,1],
// and the FIR filters are fixed buffers ddgi recomputes.
var Rosinality = Table{Name: "rosinality", Rules: []Rule{
	{From: regexp.MustCompile(`^style\.(\d+)\.(weight|bias)$`), To: func(m []string) string {
		return fmt.Sprintf("mapping.fc%d.%s", atoi(m[1])-1, m[2]) // style.0 is the pixel norm
	}},
	rule(`input\.input`, "synthesis.input.const", false),
	rule(`(conv1|convs\.\d+)\.conv\.weight`, "synthesis.$1.conv.weight", true),
	rule(`(conv1|convs\.\d+)\.conv\.modulation\.(weight|bias)`, "synthesis.$1.conv.affine.$2", false),
	rule(`(conv1|convs\.\d+)\.noise\.weight`, "synthesis.$1.noise.weight", false),
	rule(`(conv1|convs\.\d+)\.activate\.bias`, "synthesis.$1.bias", false),
	rule(`to_rgb(1|s\.\d+)\.conv\.weight`, "synthesis.torgb$1.conv.weight", true),
	rule(`to_rgb(1|s\.\d+)\.conv\.modulation\.(weight|bias)`, "synthesis.torgb$1.conv.affine.$2", false),
	rule(`to_rgb(1|s\.\d+)\.bias`, "synthesis.torgb$1.bias", true),
	rule(`noises\.noise_(\d+)`, "synthesis.noise_const.$1", false),
	rule(`latent_avg`, "mapping.w_avg", false),
	drop(`convs\.\d+\.conv\.blur\.kernel|to_rgbs\.\d+\.upsample\.kernel`),
}}

// NVlabs is the layout of the generator in NVlabs' stylegan2-ada-pytorch
// and stylegan3 (networks_stylegan2) pickles: a SynthesisBlock per
// resolution (b4: const, conv1, torgb; b8…: conv0 (up), conv1, torgb),
// per-layer noise_const buffers and scalar noise strengths.
var NVlabs = Table{Name: "nvlabs", Rules: nvlabsRules("")}

// nvlabsRules maps an NVlabs StyleGAN2 generator under prefix (EG3D's
// backbone lives under "backbone.") onto a ddgi stylegan2.Generator under
// the same prefix.
func nvlabsRules(prefix string) []Rule {
	p := regexp.QuoteMeta(prefix)
	return []Rule{
		rule(p+`mapping\.(fc\d+|embed)\.(weight|bias)`, prefix+"mapping.$1.$2", false),
		rule(p+`mapping\.w_avg`, prefix+"mapping.w_avg", false),
		rule(p+`synthesis\.b4\.const`, prefix+"synthesis.input.const", true),
		{From: regexp.MustCompile(`^` + p + `synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(weight|bias|affine\.weight|affine\.bias|noise_strength|noise_const)$`),
			To: func(m []string) string { return prefix + nvlabsLayer(atoi(m[1]), m[2], m[3]) }, Reshape: true},
		drop(p + `synthesis\.b\d+\.((conv0|conv1|torgb)\.)?resample_filter`),
	}
}

// nvlabsLayer names the ddgi tensor of one NVlabs synthesis-layer tensor:
// block b{res}'s conv0/conv1 are convs 2k/2k+1 (conv1 at 4²), its torgb is
// torgbs.k (torgb1 at 4²), with k = log₂(res) − 3; noise maps are numbered
// in layer order.
func nvlabsLayer(res int, layer, param string) string {
	k := bits.Len(uint(res)) - 4 // log₂(res) − 3
	var name string
	noise := 0
	switch {
	case res == 4 && layer == "torgb":
		name = "synthesis.torgb1"
	case res == 4:
		name = "synthesis.conv1"
	case layer == "torgb":
		name = fmt.Sprintf("synthesis.torgbs.%d", k)
	case layer == "conv0":
		name, noise = fmt.Sprintf("synthesis.convs.%d", 2*k), 1+2*k
	default:
		name, noise = fmt.Sprintf("synthesis.convs.%d", 2*k+1), 2+2*k
	}
	if param == "noise_const" {
		return fmt.Sprintf("synthesis.noise_const.%d", noise)
	}
	return nvlabsParam(name, param)
}

// nvlabsParam names a parameter of an NVlabs synthesis or ToRGB layer on
// ddgi's StyledConv/ToRGB called name: the modulated weight and its style
// affine live under .conv, the noise strength is noise.weight.
func nvlabsParam(name, param string) string {
	switch param {
	case "weight":
		return name + ".conv.weight"
	case "affine.weight", "affine.bias":
		return name + ".conv." + param
	case "noise_strength":
		return name + ".noise.weight"
	}
	return name + "." + param // bias
}

// StyleGAN2Options are what a StyleGAN2 file may not say about itself.
type StyleGAN2Options struct {
	// ConvClamp is NVlabs' conv_clamp (0 = none); the converter reads it
	// from a pickle's init kwargs where they exist.
	ConvClamp float64
	// MappingLRMul is the mapping network's learning-rate multiplier, which
	// scales its stored weights at run time (0.01 in every public model).
	MappingLRMul float64
}

// StyleGAN2 converts a generator's tensors in layout t (Rosinality or
// NVlabs) to a ddgi generator, its config inferred from the tensors. A file
// without a mean latent (a rosinality checkpoint lacking latent_avg) gets
// w̄ from 10,000 mapping samples, as rosinality's own generate.py does.
func StyleGAN2(t Table, src map[string]Source, o StyleGAN2Options) (*stylegan2.Generator, error) {
	cfg, err := InferStyleGAN2(t, shapesOf(src))
	if err != nil {
		return nil, err
	}
	cfg.ConvClamp = o.ConvClamp
	if o.MappingLRMul > 0 {
		cfg.MappingLRMul = o.MappingLRMul
	}
	var computed []string
	if !producesName(t, src, "mapping.w_avg") {
		computed = append(computed, "mapping.w_avg")
	}
	g, store, err := fill(t, src, func(p nn.Path) (*stylegan2.Generator, error) { return stylegan2.NewGenerator(p, cfg) }, computed...)
	if err != nil {
		return nil, err
	}
	if len(computed) > 0 {
		if err := torch.Try(func() { g.ComputeMeanLatent(10000, 12345, nil) }); err != nil {
			return nil, err
		}
	}
	store.Freeze("")
	return g, nil
}

// producesName reports whether a tensor of src is renamed to name by t.
func producesName(t Table, src map[string]Source, name string) bool {
	for n := range src {
		if r, m := t.match(n); m != nil && r.To(m) == name {
			return true
		}
	}
	return false
}

// fill builds a network on a store that skips random initialisation and
// loads every tensor from src through t, except the computed ones (left
// at zero for the caller to compute).
func fill[M any](t Table, src map[string]Source, build func(nn.Path) (M, error), computed ...string) (M, *nn.Store, error) {
	var m M
	store := nn.NewStore(torch.CPU, 0)
	store.SkipInit = true
	var err error
	if terr := torch.Try(func() { m, err = build(store.Root()) }); terr != nil {
		return m, nil, terr
	}
	if err != nil {
		return m, nil, err
	}
	want := storeShapes(store)
	for _, n := range computed {
		delete(want, n)
	}
	tensors, err := Apply(t, src, want)
	if err != nil {
		return m, nil, err
	}
	for _, n := range computed {
		shape := store.Get(n).Shape()
		if tensors[n], err = safetensors.FromFloat32(shape, make([]float32, store.Get(n).Numel())); err != nil {
			return m, nil, err
		}
	}
	if err := store.LoadFile(&safetensors.File{Tensors: tensors}); err != nil {
		return m, nil, err
	}
	if store.NumParams()*4 > 64<<20 {
		// The read bytes are as big as the network: give them back now,
		// not after saving has allocated the output beside them.
		tensors = nil
		debug.FreeOSMemory()
	}
	return m, store, nil
}

// storeShapes lists a store's tensor names and shapes.
func storeShapes(s *nn.Store) map[string][]int64 {
	out := map[string][]int64{}
	for _, n := range s.Names() {
		out[n] = s.Get(n).Shape()
	}
	return out
}

// shapesOf lists the shapes of src.
func shapesOf(src map[string]Source) map[string][]int64 {
	out := make(map[string][]int64, len(src))
	for n, s := range src {
		out[n] = s.Shape()
	}
	return out
}

// InferStyleGAN2 reads the architecture off the tensor shapes of a layout:
// mapping depth and widths, the camera/label width, the resolution from the
// last block, and the channel widths per resolution, which must follow
// min(base/res, max). What shapes cannot say (conv_clamp, the mapping's
// lr multiplier) keeps the public models' defaults.
func InferStyleGAN2(t Table, src map[string][]int64) (stylegan2.Config, error) {
	shape := func(name string) []int64 { return src[name] }
	c := stylegan2.Config{MappingLRMul: 0.01, MbstdGroup: 4, MeanLatentN: 10000, WAvgBeta: 0.995}
	channels := map[int]int64{} // resolution → width
	var fc0 []int64
	switch t.Name {
	case Rosinality.Name:
		c.Preset = "rosinality"
		for name := range src {
			if m := regexp.MustCompile(`^style\.(\d+)\.weight$`).FindStringSubmatch(name); m != nil {
				c.MappingLayers = max(c.MappingLayers, atoi(m[1]))
			}
			if m := regexp.MustCompile(`^convs\.(\d+)\.conv\.weight$`).FindStringSubmatch(name); m != nil && atoi(m[1])%2 == 0 {
				if s := shape(name); len(s) == 5 {
					channels[8<<(atoi(m[1])/2)] = s[1]
				}
			}
		}
		fc0 = shape("style.1.weight")
		if s := shape("input.input"); len(s) == 4 {
			channels[4] = s[1]
		}
		if s := shape("to_rgb1.conv.weight"); len(s) == 5 {
			c.ImgChannels = int(s[1])
		}
	case NVlabs.Name:
		c.Preset = "nvlabs"
		for name := range src {
			if m := regexp.MustCompile(`^mapping\.fc(\d+)\.weight$`).FindStringSubmatch(name); m != nil {
				c.MappingLayers = max(c.MappingLayers, atoi(m[1])+1)
			}
			if m := regexp.MustCompile(`^synthesis\.b(\d+)\.conv0\.weight$`).FindStringSubmatch(name); m != nil {
				if s := shape(name); len(s) == 4 {
					channels[atoi(m[1])] = s[0]
				}
			}
		}
		fc0 = shape("mapping.fc0.weight")
		if s := shape("synthesis.b4.const"); len(s) == 3 {
			channels[4] = s[0]
		}
		if s := shape("synthesis.b4.torgb.weight"); len(s) == 4 {
			c.ImgChannels = int(s[0])
		}
		if s := shape("mapping.embed.weight"); len(s) == 2 {
			c.CDim = int(s[1])
		}
	default:
		return c, fmt.Errorf("convert: %s is not a StyleGAN2 layout", t.Name)
	}
	if len(fc0) != 2 || c.MappingLayers == 0 || channels[4] == 0 || c.ImgChannels == 0 {
		return c, fmt.Errorf("%s layout: not a StyleGAN2 generator (no mapping network, constant input or ToRGB found)", t.Name)
	}
	c.WDim = int(fc0[0])
	c.ZDim = int(fc0[1])
	if c.CDim > 0 {
		c.ZDim -= c.WDim // NVlabs feeds [z, embed(c)] to fc0
	}
	res := 4
	for r := range channels {
		res = max(res, r)
	}
	for r := 8; r <= res; r *= 2 {
		if channels[r] == 0 {
			return c, fmt.Errorf("%s layout: no layers at %d² (found %v)", t.Name, r, sortedRes(channels))
		}
	}
	c.Resolution = res
	c.ChannelMax = int(channels[4])
	c.ChannelBase = c.ChannelMax * res
	for r := 8; r <= res; r *= 2 {
		if w := int(channels[r]); w < c.ChannelMax {
			c.ChannelBase = w * r // the largest resolution below the cap decides
		}
	}
	for r, w := range channels {
		if c.Channels(r) != w {
			return c, fmt.Errorf("%s layout: channel widths %v do not follow min(base/res, max) for any base (max %d)", t.Name, sortedRes(channels), c.ChannelMax)
		}
	}
	c.DChannelBase, c.DChannelMax = c.ChannelBase, c.ChannelMax
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}

func sortedRes(m map[int]int64) []string {
	rs := make([]int, 0, len(m))
	for r := range m {
		rs = append(rs, r)
	}
	sort.Ints(rs)
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = fmt.Sprintf("%d²:%d", r, m[r])
	}
	return out
}
