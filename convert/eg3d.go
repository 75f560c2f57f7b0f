package convert

import (
	"fmt"
	"regexp"
	"strings"

	"ddgi/convert/torchfile"
	"ddgi/gan/eg3d"
	"ddgi/nn"
)

// EG3DTable is the layout of NVlabs' TriPlaneGenerator (eg3d/training/
// triplane.py): a StyleGAN2 backbone writing the planes, the OSGDecoder's
// two layers as decoder.net.{0,2}, and the super-resolution module's
// synthesis blocks as superresolution.block{0,1}. The SR's noise maps are
// dropped: NVlabs' FFHQ models render it with noise mode "none".
var EG3DTable = Table{Name: "eg3d", Rules: append(nvlabsRules("backbone."),
	rule(`decoder\.net\.0\.(weight|bias)`, "decoder.fc0.$1", false),
	rule(`decoder\.net\.2\.(weight|bias)`, "decoder.fc1.$1", false),
	Rule{From: regexp.MustCompile(`^superresolution\.block(\d+)\.(conv0|conv1|torgb)\.(weight|bias|affine\.weight|affine\.bias|noise_strength)$`),
		To: func(m []string) string { return srLayer(atoi(m[1]), m[2], m[3]) }, Reshape: true},
	drop(`superresolution\.(block\d+\.((conv0|conv1)\.)?)?(resample_filter|noise_const)|renderer\.plane_axes`),
)}

// srLayer names the ddgi tensor of an NVlabs SR block's layer: block b's
// conv0/conv1 are superres.convs.2b/2b+1, its torgb superres.torgbs.b.
func srLayer(block int, layer, param string) string {
	var name string
	switch layer {
	case "conv0":
		name = fmt.Sprintf("superres.convs.%d", 2*block)
	case "conv1":
		name = fmt.Sprintf("superres.convs.%d", 2*block+1)
	default:
		name = fmt.Sprintf("superres.torgbs.%d", block)
	}
	return nvlabsParam(name, param)
}

// EG3DOptions tune an EG3D conversion.
type EG3DOptions struct {
	// ConvClamp overrides the backbone's conv_clamp (< 0: as the pickle).
	ConvClamp float64
}

// nvlabsPlaneAxes is the plane_axes buffer of NVlabs' renderer: the third
// plane projects (x, y, z) to (z, x), the quirk the released models keep.
var nvlabsPlaneAxes = []float32{1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0}

// EG3D converts NVlabs' TriPlaneGenerator (the G_ema object of an EG3D
// network pickle) to ddgi's EG3D with the NVlabs switches on; rendering
// options come from the pickle's rendering_kwargs and
// neural_rendering_resolution, the rest from the tensors.
func EG3D(src map[string]Source, net torchfile.Value, o EG3DOptions) (Generator, error) {
	obj, ok := net.(*torchfile.Object)
	if !ok {
		return nil, fmt.Errorf("eg3d: want NVlabs' pickled TriPlaneGenerator object (its rendering options are not in a bare state dict), got %T", net)
	}
	shapes := shapesOf(src)
	back := map[string][]int64{}
	for n, s := range shapes {
		if rest, ok := strings.CutPrefix(n, "backbone."); ok {
			back[rest] = s
		}
	}
	bb, err := InferStyleGAN2(NVlabs, back)
	if err != nil {
		return nil, fmt.Errorf("eg3d backbone: %w", err)
	}
	bb.Preset = "nvlabs-eg3d-backbone"
	bb.ConvClamp = o.ConvClamp
	if o.ConvClamp < 0 {
		bb.ConvClamp, _ = number(moduleAttr(obj, "conv_clamp", "backbone", "synthesis", "b4", "conv1"))
	}
	if bb.ImgChannels%3 != 0 {
		return nil, fmt.Errorf("eg3d: backbone writes %d channels, not three planes", bb.ImgChannels)
	}
	c := eg3d.Config{Preset: "nvlabs-eg3d", Backbone: bb, PlaneRes: bb.Resolution, PlaneChannels: bb.ImgChannels / 3,
		PlaneAxes: "zx", Sampling: "eg3d"}
	dec0, dec1 := shapes["decoder.net.0.weight"], shapes["decoder.net.2.weight"]
	if len(dec0) != 2 || len(dec1) != 2 {
		return nil, fmt.Errorf("eg3d: no OSGDecoder (decoder.net.0/2) in the file")
	}
	c.DecoderHidden, c.DecoderFeatures = int(dec0[0]), int(dec1[0])-1
	if err := eg3dRendering(obj, &c); err != nil {
		return nil, err
	}
	if err := eg3dSuperResolution(obj, shapes, &c); err != nil {
		return nil, err
	}
	if pa, ok := src["renderer.plane_axes"]; ok {
		t, err := pa.Read()
		if err != nil {
			return nil, err
		}
		v, err := t.Float32()
		if err != nil || fmt.Sprint(v) != fmt.Sprint(nvlabsPlaneAxes) {
			return nil, fmt.Errorf("eg3d: the renderer's plane_axes %v are not NVlabs' (only their layout is supported)", v)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	g, store, err := fill(EG3DTable, src, func(p nn.Path) (*eg3d.Generator, error) { return eg3d.NewGenerator(p, c) })
	if err != nil {
		return nil, err
	}
	store.Freeze("")
	return g, nil
}

// eg3dRendering copies the renderer's options, refusing those ddgi does not
// implement rather than rendering something else.
func eg3dRendering(obj *torchfile.Object, c *eg3d.Config) error {
	rk, ok := stateEntry(obj, "rendering_kwargs").(*torchfile.Dict)
	if !ok {
		return fmt.Errorf("eg3d: the pickle has no rendering_kwargs")
	}
	get := func(k string) torchfile.Value { v, _ := rk.Get(k); return v }
	num := func(k string) (float64, error) {
		v, ok := number(get(k))
		if !ok {
			return 0, fmt.Errorf("eg3d: rendering_kwargs[%q] = %v: want a number", k, get(k))
		}
		return v, nil
	}
	var err error
	var d, di float64
	if d, err = num("depth_resolution"); err != nil {
		return err
	}
	if di, err = num("depth_resolution_importance"); err != nil {
		return err
	}
	c.DepthSamples, c.ImportanceSamples = int(d), int(di)
	if c.RayStart, err = num("ray_start"); err != nil {
		return fmt.Errorf("%w (ray_start 'auto' is not supported)", err)
	}
	if c.RayEnd, err = num("ray_end"); err != nil {
		return err
	}
	if c.BoxWarp, err = num("box_warp"); err != nil {
		return err
	}
	c.DecoderLRMul = 1
	if v, ok := number(get("decoder_lr_mul")); ok {
		c.DecoderLRMul = v
	}
	if s, _ := get("clamp_mode").(string); s != "softplus" {
		return fmt.Errorf("eg3d: clamp_mode %v: only softplus is supported", get("clamp_mode"))
	}
	for _, k := range []string{"disparity_space_sampling", "white_back"} {
		if b, _ := get(k).(bool); b {
			return fmt.Errorf("eg3d: rendering_kwargs[%q] is on: not supported", k)
		}
	}
	if v, ok := number(get("density_noise")); ok && v != 0 {
		return fmt.Errorf("eg3d: density_noise %v: not supported", v)
	}
	if s, ok := get("superresolution_noise_mode").(string); ok && s != "none" {
		return fmt.Errorf("eg3d: superresolution_noise_mode %q: only 'none' (the FFHQ models') is supported", s)
	}
	// NVlabs multiplies the conditioning camera by c_scale, 0 when absent.
	cs, _ := number(get("c_scale"))
	zero, _ := get("c_gen_conditioning_zero").(bool)
	switch {
	case zero || cs == 0:
		c.ConditionZero = true
	case cs != 1:
		return fmt.Errorf("eg3d: c_scale %v: only 0 and 1 are supported", cs)
	}
	if r, ok := number(get("avg_camera_radius")); ok && r > 0 {
		c.CameraRadius = r
	}
	if l, ok := get("avg_camera_pivot").(*torchfile.List); ok && len(l.Items) == 3 {
		var p [3]float64
		for i, v := range l.Items {
			if p[i], ok = number(v); !ok {
				return fmt.Errorf("eg3d: avg_camera_pivot %v: want three numbers", l.Items)
			}
		}
		c.CameraPivot = &p
	}
	nr, ok := number(stateEntry(obj, "neural_rendering_resolution"))
	if !ok || nr < 1 {
		return fmt.Errorf("eg3d: the pickle has no neural_rendering_resolution")
	}
	c.NeuralRes = int(nr)
	return nil
}

// eg3dSuperResolution reads the SR blocks: widths from conv0's weight, the
// resolution of each from its noise map, upsampling from the block's class
// (SynthesisBlockNoUp keeps the resolution), conv_clamp from its layers.
func eg3dSuperResolution(obj *torchfile.Object, shapes map[string][]int64, c *eg3d.Config) error {
	for b := 0; ; b++ {
		w := shapes[fmt.Sprintf("superresolution.block%d.conv0.weight", b)]
		nz := shapes[fmt.Sprintf("superresolution.block%d.conv0.noise_const", b)]
		if w == nil {
			break
		}
		if len(w) != 4 || len(nz) != 2 {
			return fmt.Errorf("eg3d: super-resolution block %d: conv0 weight %v, noise map %v", b, w, nz)
		}
		blk, _ := moduleAttrObj(obj, "superresolution", fmt.Sprintf("block%d", b))
		up := blk == nil || !strings.HasSuffix(blk.Class, "NoUp")
		res := int(nz[0])
		if b == 0 {
			c.SRInputRes = res
			if up {
				c.SRInputRes = res / 2
			}
		}
		c.SRBlocks = append(c.SRBlocks, eg3d.SRBlock{Channels: int(w[0]), Up: up})
		c.ImgRes = res
	}
	if len(c.SRBlocks) == 0 {
		return fmt.Errorf("eg3d: no super-resolution blocks (superresolution.block0) in the file")
	}
	c.SRConvClamp, _ = number(moduleAttr(obj, "conv_clamp", "superresolution", "block0", "conv0"))
	return nil
}

// stateEntry is obj.__dict__[k].
func stateEntry(obj *torchfile.Object, k string) torchfile.Value {
	st, ok := obj.State.(*torchfile.Dict)
	if !ok {
		return nil
	}
	v, _ := st.Get(k)
	return v
}

// moduleAttrObj walks nn.Module children (_modules) from obj.
func moduleAttrObj(obj *torchfile.Object, path ...string) (*torchfile.Object, bool) {
	for _, name := range path {
		mods, ok := stateEntry(obj, "_modules").(*torchfile.Dict)
		if !ok {
			return nil, false
		}
		v, _ := mods.Get(name)
		if obj, ok = v.(*torchfile.Object); !ok {
			return nil, false
		}
	}
	return obj, true
}

// moduleAttr is attribute k of the child module at path.
func moduleAttr(obj *torchfile.Object, k string, path ...string) torchfile.Value {
	m, ok := moduleAttrObj(obj, path...)
	if !ok {
		return nil
	}
	return stateEntry(m, k)
}

// number reads a pickled int or float.
func number(v torchfile.Value) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
