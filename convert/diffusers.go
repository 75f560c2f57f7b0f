package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"ddgi/diffusion"
	"ddgi/diffusion/vae"
	"ddgi/internal/imageio"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/text"
)

// DiffusersUNetTable is the layout of diffusers' UNet2DConditionModel and
// ControlNetModel. ddgi took its U-Net names from diffusers, so only the
// attention output differs: a ModuleList(Linear, Dropout) there (to_out.0),
// a Linear in ddgi.
var DiffusersUNetTable = Table{Name: "diffusers-unet", Rules: []Rule{
	rule(`(.+\.to_out)\.0\.(weight|bias)`, "$1.$2", false),
	rule(`(.+)`, "$1", false),
}}

// DiffusersVAETable is the layout of diffusers' AutoencoderKL: ddgi's names
// but for the mid-block attention, whose output is to_out.0, or, in files
// written before diffusers 0.14 (the deprecated attention block),
// query/key/value/proj_attn.
var DiffusersVAETable = Table{Name: "diffusers-vae", Rules: []Rule{
	rule(`(.+\.attentions\.0)\.to_out\.0\.(weight|bias)`, "$1.to_out.$2", false),
	{From: regexp.MustCompile(`^(.+\.attentions\.0)\.(query|key|value)\.(weight|bias)$`), To: func(m []string) string {
		return m[1] + ".to_" + m[2][:1] + "." + m[3]
	}},
	rule(`(.+\.attentions\.0)\.proj_attn\.(weight|bias)`, "$1.to_out.$2", false),
	rule(`(.+)`, "$1", false),
}}

// diffusersFixed lists config.json fields whose values change the maths,
// with the values ddgi implements (SD1.x's; an absent field takes
// diffusers' default, which is the first value). Any other value is
// refused by name rather than converted into a different network.
var diffusersFixed = map[string][]any{
	"act_fn": {"silu"}, "flip_sin_to_cos": {true}, "freq_shift": {0.0}, "center_input_sample": {false},
	"use_linear_projection": {false}, "class_embed_type": {nil}, "addition_embed_type": {nil}, "num_class_embeds": {nil},
	"encoder_hid_dim": {nil}, "encoder_hid_dim_type": {nil}, "time_cond_proj_dim": {nil}, "time_embedding_type": {"positional"},
	"time_embedding_dim": {nil}, "time_embedding_act_fn": {nil}, "timestep_post_act": {nil},
	"resnet_time_scale_shift": {"default"}, "only_cross_attention": {false}, "dual_cross_attention": {false},
	"downsample_padding": {1.0}, "mid_block_scale_factor": {1.0}, "mid_block_type": {"UNetMidBlock2DCrossAttn", nil},
	"norm_eps": {1e-5}, "conv_in_kernel": {3.0}, "conv_out_kernel": {3.0}, "resnet_out_scale_factor": {1.0},
	"resnet_skip_time_act": {false}, "attention_type": {"default"}, "cross_attention_norm": {nil},
	"class_embeddings_concat": {false}, "mid_block_only_cross_attention": {nil}, "upcast_attention": {false, true},
	"controlnet_conditioning_channel_order": {"rgb"}, "global_pool_conditions": {false},
	// AutoencoderKL
	"mid_block_add_attention": {true}, "use_quant_conv": {true}, "use_post_quant_conv": {true},
	"shift_factor": {nil}, "latents_mean": {nil}, "latents_std": {nil},
}

// diffusersConfig is a model folder's config.json: the fields ddgi reads,
// and all of them (raw) for the checks.
type diffusersConfig struct {
	raw  map[string]any
	path string
}

// readJSONConfig reads a small JSON object file (config.json,
// scheduler_config.json).
func readJSONConfig(path string) (diffusersConfig, error) {
	b, err := readSmall(path)
	if err != nil {
		return diffusersConfig{}, err
	}
	c := diffusersConfig{path: path}
	if err := json.Unmarshal(b, &c.raw); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// readDiffusersConfig reads a model folder's config.json and refuses the
// values of diffusersFixed ddgi does not implement.
func readDiffusersConfig(dir string) (diffusersConfig, error) {
	c, err := readJSONConfig(filepath.Join(dir, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return c, fmt.Errorf("%s: no config.json: not a diffusers model folder", dir)
	}
	if err != nil {
		return c, err
	}
	for k, ok := range diffusersFixed {
		if v, present := c.raw[k]; present && !containsValue(ok, v) {
			return c, fmt.Errorf("%s: %s %v is not supported (ddgi implements %v)", c.path, k, v, ok[0])
		}
	}
	return c, nil
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func containsValue(vals []any, v any) bool {
	for _, w := range vals {
		if reflect.DeepEqual(v, w) {
			return true
		}
	}
	return false
}

// readSmall reads a config file, refusing one larger than 1 MB (they are
// a few KB; anything bigger is not a config).
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%s: over 1 MB, not a config file", path)
	}
	return b, nil
}

// str, ints and integer read typed fields; def is taken when the field is
// absent or null.
func (c diffusersConfig) str(k, def string) (string, error) {
	v, ok := c.raw[k]
	if !ok || v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: %s is %v, want a string", c.path, k, v)
	}
	return s, nil
}

func (c diffusersConfig) strs(k string) ([]string, error) {
	v, _ := c.raw[k].([]any)
	out := make([]string, len(v))
	for i, x := range v {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("%s: %s[%d] is %v, want a string", c.path, k, i, x)
		}
		out[i] = s
	}
	if len(out) == 0 || len(out) > maxIndex {
		return nil, fmt.Errorf("%s: %s is %v, want a list of block names", c.path, k, c.raw[k])
	}
	return out, nil
}

func (c diffusersConfig) ints(k string, def []int64) ([]int64, error) {
	v, ok := c.raw[k]
	if !ok || v == nil {
		return def, nil
	}
	l, _ := v.([]any)
	if len(l) == 0 || len(l) > maxIndex {
		return nil, fmt.Errorf("%s: %s is %v, want a list of whole numbers", c.path, k, v)
	}
	out := make([]int64, len(l))
	for i, x := range l {
		n, err := wholeNumber(x)
		if err != nil {
			return nil, fmt.Errorf("%s: %s[%d]: %w", c.path, k, i, err)
		}
		out[i] = n
	}
	return out, nil
}

// integer reads a whole number, or a list of equal ones (diffusers allows
// per-level lists; ddgi has one value for every level); def when absent or
// null, and set reports whether it was there.
func (c diffusersConfig) integer(k string, def int64) (n int64, set bool, err error) {
	v, ok := c.raw[k]
	if !ok || v == nil {
		return def, false, nil
	}
	if l, isList := v.([]any); isList {
		for i, x := range l {
			m, err := wholeNumber(x)
			if err != nil {
				return 0, false, fmt.Errorf("%s: %s[%d]: %w", c.path, k, i, err)
			}
			if i > 0 && m != n {
				return 0, false, fmt.Errorf("%s: %s %v differs per level: ddgi has one value for every level", c.path, k, v)
			}
			n = m
		}
		if len(l) == 0 {
			return 0, false, fmt.Errorf("%s: %s is an empty list", c.path, k)
		}
		return n, true, nil
	}
	n, err = wholeNumber(v)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %s: %w", c.path, k, err)
	}
	return n, true, nil
}

func wholeNumber(v any) (int64, error) {
	f, ok := v.(float64)
	if !ok || f != float64(int64(f)) || f < 0 || f > 1<<31 {
		return 0, fmt.Errorf("%v is not a whole number", v)
	}
	return int64(f), nil
}

func (c diffusersConfig) float(k string, def float64) (float64, error) {
	v, ok := c.raw[k]
	if !ok || v == nil {
		return def, nil
	}
	f, ok := v.(float64)
	if !ok {
		return 0, fmt.Errorf("%s: %s is %v, want a number", c.path, k, v)
	}
	return f, nil
}

// diffusersUNetConfig reads a UNet2DConditionModel or ControlNetModel
// config.json (control: the latter) into a diffusion.Config. Schedule
// fields come from sched (a scheduler_config.json) or, without one,
// SD1.5's (scaled-linear β 0.00085–0.012, 1000 steps, ε, leading+1).
func diffusersUNetConfig(c diffusersConfig, sched *diffusersConfig, control bool) (diffusion.Config, error) {
	d, err := diffusion.Preset("sd15")
	if err != nil {
		return d, err
	}
	d.Name = "diffusers"
	d.Spacing, d.StepsOffset = "leading", 1
	fail := func(format string, args ...any) (diffusion.Config, error) {
		return d, fmt.Errorf("%s: "+format, append([]any{c.path}, args...)...)
	}
	if d.Channels, err = c.ints("block_out_channels", []int64{320, 640, 1280, 1280}); err != nil {
		return d, err
	}
	down, err := c.strs("down_block_types")
	if err != nil {
		return d, err
	}
	if len(down) != len(d.Channels) {
		return fail("%d down blocks for %d block_out_channels", len(down), len(d.Channels))
	}
	d.Attention = make([]bool, len(down))
	for i, t := range down {
		switch t {
		case "CrossAttnDownBlock2D":
			d.Attention[i] = true
		case "DownBlock2D":
		default:
			return fail("down_block_types has %q, not SD1.x's CrossAttnDownBlock2D or DownBlock2D", t)
		}
	}
	if !control {
		up, err := c.strs("up_block_types")
		if err != nil {
			return d, err
		}
		for i, t := range up {
			if lvl := len(up) - 1 - i; len(up) != len(down) || t != map[bool]string{true: "CrossAttnUpBlock2D", false: "UpBlock2D"}[d.Attention[lvl]] {
				return fail("up_block_types %v do not mirror down_block_types %v", up, down)
			}
		}
		if out, _, err := c.integer("out_channels", 4); err != nil {
			return d, err
		} else if in, _, _ := c.integer("in_channels", 4); out != in {
			return fail("out_channels %d ≠ in_channels %d (ddgi predicts in the latent's width)", out, in)
		}
	}
	var layers, depth int64
	for _, f := range []struct {
		key string
		dst *int64
		def int64
	}{
		{"in_channels", &d.LatentChannels, 4}, {"sample_size", &d.LatentSize, 64}, {"layers_per_block", &layers, 2},
		{"transformer_layers_per_block", &depth, 1}, {"cross_attention_dim", &d.ContextDim, 1280},
		{"norm_num_groups", &d.NormGroups, 32},
	} {
		if *f.dst, _, err = c.integer(f.key, f.def); err != nil {
			return d, err
		}
	}
	d.LayersPerBlock, d.TransformerDepth = int(layers), int(depth)
	// SD1.x configs give the head count as attention_head_dim (a
	// misnomer diffusers keeps for compatibility); num_attention_heads,
	// when set, is the count.
	heads, set, err := c.integer("num_attention_heads", 0)
	if err != nil {
		return d, err
	}
	if !set {
		if heads, _, err = c.integer("attention_head_dim", 8); err != nil {
			return d, err
		}
	}
	d.Heads = heads
	if control {
		if d.HintChannels, _, err = c.integer("conditioning_channels", 3); err != nil {
			return d, err
		}
		if d.CondEmbedChannels, err = c.ints("conditioning_embedding_out_channels", sd15CondEmb); err != nil {
			return d, err
		}
	} else {
		d.HintChannels = 3 // public ControlNets; a branch says its own
		d.CondEmbedChannels = append([]int64(nil), sd15CondEmb...)
	}
	if sched != nil {
		if err := diffusersSchedule(&d, *sched); err != nil {
			return d, err
		}
	}
	return d, nil
}

// diffusersSchedule reads a scheduler_config.json's β schedule,
// parameterisation and DDIM grid into d (diffusers' defaults for the
// fields it lacks: timestep_spacing "leading", steps_offset 0).
func diffusersSchedule(d *diffusion.Config, s diffusersConfig) error {
	if tb, ok := s.raw["trained_betas"]; ok && tb != nil {
		return fmt.Errorf("%s: trained_betas are not supported", s.path)
	}
	// ddgi's DDIM neither clips nor thresholds x̂_0, and its leading grid
	// lands the last step on ᾱ_0 (set_alpha_to_one false), as SD1.5's
	// pipelines sample; other choices are refused, not approximated.
	for k, want := range map[string]bool{"clip_sample": false, "thresholding": false, "set_alpha_to_one": false} {
		if v, ok := s.raw[k]; ok && v != want {
			return fmt.Errorf("%s: %s %v is not supported (ddgi samples with %v)", s.path, k, v, want)
		}
	}
	var err error
	if d.Schedule, err = s.str("beta_schedule", "linear"); err != nil {
		return err
	}
	if d.BetaStart, err = s.float("beta_start", 0.0001); err != nil {
		return err
	}
	if d.BetaEnd, err = s.float("beta_end", 0.02); err != nil {
		return err
	}
	steps, _, err := s.integer("num_train_timesteps", 1000)
	if err != nil {
		return err
	}
	d.TrainSteps = int(steps)
	if d.Prediction, err = s.str("prediction_type", "epsilon"); err != nil {
		return err
	}
	if d.Spacing, err = s.str("timestep_spacing", "leading"); err != nil {
		return err
	}
	off, _, err := s.integer("steps_offset", 0)
	if err != nil {
		return err
	}
	d.StepsOffset = int(off)
	if d.Spacing == "trailing" { // ddgi's zero value: keep configs comparable
		d.Spacing = ""
	}
	if _, err := diffusion.NewSchedule(*d); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	return nil
}

// diffusersWeights finds the weights of a diffusers / transformers model
// folder: the first of names present (plain before fp16 variants). Sharded
// weights are refused.
func diffusersWeights(dir string, names ...string) (string, error) {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if _, err := os.Stat(p + ".index.json"); err == nil {
			return "", fmt.Errorf("%s.index.json: sharded weights are not supported", p)
		}
	}
	return "", fmt.Errorf("%s: no weights (%s)", dir, strings.Join(names, ", "))
}

var (
	diffusersModelFiles = []string{"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin"}
	hfModelFiles        = []string{"model.safetensors", "pytorch_model.bin", "model.fp16.safetensors", "pytorch_model.fp16.bin"}
)

// openDiffusersPart opens a model folder's config.json and weights; the
// config's class (diffusers' _class_name, transformers' architectures)
// must be one of classes when it names one.
func openDiffusersPart(dir string, files []string, classes ...string) (diffusersConfig, map[string]Source, io.Closer, error) {
	c, err := readDiffusersConfig(dir)
	if err != nil {
		return c, nil, nil, err
	}
	class, _ := c.raw["_class_name"].(string)
	if a, ok := c.raw["architectures"].([]any); ok && len(a) > 0 {
		class, _ = a[0].(string)
	}
	if class != "" && !containsValue(anySlice(classes), class) {
		return c, nil, nil, fmt.Errorf("%s: class %s, want %s", c.path, class, strings.Join(classes, " or "))
	}
	path, err := diffusersWeights(dir, files...)
	if err != nil {
		return c, nil, nil, err
	}
	src, cl, err := OpenSources(path)
	if err != nil {
		return c, nil, nil, err
	}
	return c, src, cl, nil
}

// DiffusersUNet converts a diffusers UNet2DConditionModel folder (unet/:
// config.json and weights) to a ddgi diffusion model; sched is the
// pipeline's scheduler/ folder ("" or absent: SD1.5's schedule). The
// config comes from config.json and every tensor is shape-checked against
// the network it describes.
func DiffusersUNet(dir, sched string) (*diffusion.Model, error) {
	cfg, src, cl, err := openDiffusersPart(dir, diffusersModelFiles, "UNet2DConditionModel")
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var sc *diffusersConfig
	if sched != "" {
		s, err := readSchedulerConfig(sched)
		if err != nil {
			return nil, err
		}
		sc = s
	}
	c, err := diffusersUNetConfig(cfg, sc, false)
	if err != nil {
		return nil, err
	}
	u, store, err := fill(DiffusersUNetTable, src, func(p nn.Path) (*diffusion.UNet, error) { return diffusion.NewUNet(p, c) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	store.Freeze("")
	sch, err := diffusion.NewSchedule(c)
	if err != nil {
		return nil, err
	}
	return &diffusion.Model{Config: c, Store: store, UNet: u, Controls: map[kinds.Cond]*diffusion.ControlNet{}, Schedule: sch}, nil
}

// readSchedulerConfig reads dir/scheduler_config.json; a missing folder or
// file gives nil (SD1.5's schedule is then assumed).
func readSchedulerConfig(dir string) (*diffusersConfig, error) {
	s, err := readJSONConfig(filepath.Join(dir, "scheduler_config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// DiffusersControlNet converts a diffusers ControlNetModel folder
// (config.json and weights, e.g. lllyasviel/sd-controlnet-seg,
// control_v11p_sd15_seg in diffusers format) to a ddgi branch for
// condition kind.
func DiffusersControlNet(dir string, kind kinds.Cond) (*diffusion.ControlNet, error) {
	cfg, src, cl, err := openDiffusersPart(dir, diffusersModelFiles, "ControlNetModel")
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	c, err := diffusersUNetConfig(cfg, nil, true)
	if err != nil {
		return nil, err
	}
	n, store, err := fill(DiffusersUNetTable, src, func(p nn.Path) (*diffusion.ControlNet, error) {
		return diffusion.NewControlNetIn(p.Store(), c, kind)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	store.Freeze("")
	return n, nil
}

// DiffusersVAE converts a diffusers AutoencoderKL folder (vae/) to ddgi's
// autoencoder: channels, levels, res blocks, latent width, groups, scale
// and sample size from config.json; diffusers' Encoder/Decoder fix ε 1e-6,
// biased attention and the (0,1,0,1) downsampling pad, as LDM's.
func DiffusersVAE(dir string) (*vae.Autoencoder, *nn.Store, error) {
	cfg, src, cl, err := openDiffusersPart(dir, diffusersModelFiles, "AutoencoderKL")
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	c := vae.Config{AttnBias: true, DownPad: "asym", NormEps: 1e-6}
	for _, k := range []string{"down_block_types", "up_block_types"} {
		types, err := cfg.strs(k)
		if err != nil {
			return nil, nil, err
		}
		for _, t := range types {
			if want := map[string]string{"down_block_types": "DownEncoderBlock2D", "up_block_types": "UpDecoderBlock2D"}[k]; t != want {
				return nil, nil, fmt.Errorf("%s: %s has %q, want %s", cfg.path, k, t, want)
			}
		}
	}
	boc, err := cfg.ints("block_out_channels", []int64{64})
	if err != nil {
		return nil, nil, err
	}
	c.Channels = boc[0]
	for i, ch := range boc {
		if c.Channels <= 0 || ch%c.Channels != 0 {
			return nil, nil, fmt.Errorf("%s: block_out_channels %v: level %d is not a multiple of the first", cfg.path, boc, i)
		}
		c.Mult = append(c.Mult, ch/c.Channels)
	}
	for _, k := range []string{"in_channels", "out_channels"} {
		if n, _, err := cfg.integer(k, 3); err != nil || n != 3 {
			return nil, nil, fmt.Errorf("%s: %s %d: ddgi's autoencoder is RGB (%v)", cfg.path, k, n, err)
		}
	}
	layers, _, err := cfg.integer("layers_per_block", 1)
	if err != nil {
		return nil, nil, err
	}
	c.ResBlocks = int(layers)
	if c.ZChannels, _, err = cfg.integer("latent_channels", 4); err != nil {
		return nil, nil, err
	}
	if c.Groups, _, err = cfg.integer("norm_num_groups", 32); err != nil {
		return nil, nil, err
	}
	if c.Resolution, _, err = cfg.integer("sample_size", 32); err != nil {
		return nil, nil, err
	}
	if c.Scale, err = cfg.float("scaling_factor", 0.18215); err != nil {
		return nil, nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cfg.path, err)
	}
	a, store, err := fill(DiffusersVAETable, src, func(p nn.Path) (*vae.Autoencoder, error) { return vae.New(p, c), nil })
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	store.Freeze("")
	return a, store, nil
}

// HFCLIPTextModel converts a transformers CLIPTextModel folder (a
// diffusers pipeline's text_encoder/: config.json and model.safetensors or
// pytorch_model.bin). Heads and activation come from config.json, and the
// sizes the weights show are checked against it.
func HFCLIPTextModel(dir string) (*text.Encoder, *nn.Store, error) {
	cfg, src, cl, err := openDiffusersPart(dir, hfModelFiles, "CLIPTextModel")
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	var o CLIPTextOptions
	if o.Heads, _, err = cfg.integer("num_attention_heads", 12); err != nil {
		return nil, nil, err
	}
	switch act, err := cfg.str("hidden_act", "quick_gelu"); {
	case err != nil:
		return nil, nil, err
	case act == "gelu":
		o.GELU = true
	case act != "quick_gelu":
		return nil, nil, fmt.Errorf("%s: hidden_act %q (quick_gelu, gelu)", cfg.path, act)
	}
	if eps, err := cfg.float("layer_norm_eps", 1e-5); err != nil || eps != 1e-5 {
		return nil, nil, fmt.Errorf("%s: layer_norm_eps %g: ddgi's text encoder uses 1e-5 (%v)", cfg.path, eps, err)
	}
	e, store, err := CLIPText(src, o)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	for _, f := range []struct {
		key string
		got int64
	}{
		{"vocab_size", e.Config.Vocab}, {"hidden_size", e.Config.Dim}, {"intermediate_size", e.Config.MLP},
		{"num_hidden_layers", int64(e.Config.Layers)}, {"max_position_embeddings", e.Config.Context},
	} {
		if want, set, err := cfg.integer(f.key, 0); err != nil {
			return nil, nil, err
		} else if set && want != f.got {
			return nil, nil, fmt.Errorf("%s: %s %d disagrees with the weights' %d", cfg.path, f.key, want, f.got)
		}
	}
	// transformers pools at eos_token_id, or (its legacy id 2, as SD1.5's
	// config says) at argmax(ids), CLIP's highest id: CLIPText's default.
	if eos, set, err := cfg.integer("eos_token_id", 0); err != nil {
		return nil, nil, err
	} else if set && eos != 2 && eos < e.Config.Vocab {
		e.EOS = eos
	}
	return e, store, nil
}

// SaveDiffusersVAE converts a diffusers AutoencoderKL folder and writes it
// as a ddgi VAE file.
func SaveDiffusersVAE(dir, path string, half bool) error {
	a, store, err := DiffusersVAE(dir)
	if err != nil {
		return err
	}
	return store.Save(path, nn.SaveOptions{Config: a.Config, Half: half})
}

// SaveHFCLIPTextModel converts a transformers CLIPTextModel folder and
// writes it as a ddgi text encoder file.
func SaveHFCLIPTextModel(dir, path string, half bool) error {
	e, store, err := HFCLIPTextModel(dir)
	if err != nil {
		return err
	}
	return store.Save(path, nn.SaveOptions{Config: text.CLIPConfig{Encoder: e.Config}, Half: half})
}

// Diffusers writes what a diffusers Stable Diffusion folder
// (model_index.json beside unet/, vae/, text_encoder/, tokenizer/,
// scheduler/) holds — each part where present — into the model-set folder
// out, and returns role → file (unet, vae, text, tokenizer). The U-Net
// takes the scheduler's β schedule and DDIM grid into its config; the
// tokenizer folder (vocab.json, merges.txt and its small configs) is
// checked by loading it and copied.
func Diffusers(dir, out string, half bool) (map[string]string, error) {
	part := func(name string) string {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		return ""
	}
	unet, vaeDir, textDir, tok := part("unet"), part("vae"), part("text_encoder"), part("tokenizer")
	if unet == "" && vaeDir == "" && textDir == "" {
		return nil, fmt.Errorf("%s: no unet/, vae/ or text_encoder/ folder: not a diffusers pipeline folder", dir)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	roles := map[string]string{}
	if unet != "" {
		m, err := DiffusersUNet(unet, filepath.Join(dir, "scheduler"))
		if err != nil {
			return nil, err
		}
		if err := m.Save(filepath.Join(out, "unet.safetensors"), half); err != nil {
			return nil, err
		}
		roles["unet"] = "unet.safetensors"
	}
	if vaeDir != "" {
		if err := SaveDiffusersVAE(vaeDir, filepath.Join(out, "vae.safetensors"), half); err != nil {
			return nil, err
		}
		roles["vae"] = "vae.safetensors"
	}
	if textDir != "" {
		if err := SaveHFCLIPTextModel(textDir, filepath.Join(out, "text.safetensors"), half); err != nil {
			return nil, err
		}
		roles["text"] = "text.safetensors"
	}
	if tok != "" {
		if _, err := text.LoadCLIP(tok); err != nil {
			return nil, fmt.Errorf("%s: %w", tok, err)
		}
		if err := copyTokenizer(tok, filepath.Join(out, "tokenizer")); err != nil {
			return nil, err
		}
		roles["tokenizer"] = "tokenizer"
	}
	return roles, nil
}

// tokenizerFiles are what text.LoadCLIP reads from a tokenizer folder.
var tokenizerFiles = []string{"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"}

// copyTokenizer copies a CLIP tokenizer folder's files (those present of
// tokenizerFiles), each written atomically.
func copyTokenizer(from, to string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, n := range tokenizerFiles {
		b, err := os.ReadFile(filepath.Join(from, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := imageio.WriteAtomic(filepath.Join(to, n), b); err != nil {
			return err
		}
	}
	return nil
}
