package convert

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"ddgi/diffusion"
	"ddgi/internal/golden"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/torch"
)

// The fixtures were written by lllyasviel/ControlNet's own cldm code: a
// UNetModel in SD1.5's structure (model_channels 32, channel_mult
// [1,1,1], attention_resolutions [1,2] so both upsampler positions occur,
// num_res_blocks 1, num_heads 2, context_dim 32) and its cldm.ControlNet
// with hint_channels 3, random fp16-stored weights, zero convs included.
var ldmTiny = LDMOptions{Heads: 2, LatentSize: 8}

func openLDM(t *testing.T, name string) map[string]Source {
	t.Helper()
	src, cl, err := OpenSources(filepath.Join("testdata", "ldm_unet", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return src
}

// TestLDMUNetParity converts the U-Net from the LDM single-file .ckpt and
// .safetensors and the ControlNet from a v1.1-style .pth and from a v1.0
// single file (both networks in one map), and reproduces the reference ε,
// every residual and the controlled ε.
func TestLDMUNetParity(t *testing.T) {
	io := golden.Load(t, filepath.Join("testdata", "ldm_unet", "io.safetensors"))
	x, ts, ctx, hint := io["x"], io["t"], io["context"], io["hint"]
	ckpt := openLDM(t, "ldm_tiny.ckpt")
	pth := openLDM(t, "control_tiny.pth")
	single := map[string]Source{} // what control_sd15_seg.pth (v1.0) holds
	for _, m := range []map[string]Source{ckpt, pth} {
		for k, v := range m {
			single[k] = v
		}
	}
	for _, file := range []string{"ldm_tiny.ckpt"} {
		t.Run(file, func(t *testing.T) {
			m, err := LDMUNet(openLDM(t, file), ldmTiny)
			if err != nil {
				t.Fatal(err)
			}
			c := m.Config
			if !reflect.DeepEqual(c.Channels, []int64{32, 32, 32}) || !reflect.DeepEqual(c.Attention, []bool{true, true, false}) ||
				c.LayersPerBlock != 1 || c.ContextDim != 32 || c.TransformerDepth != 1 || c.LatentChannels != 4 || c.Spacing != "leading" || c.StepsOffset != 1 {
				t.Fatalf("inferred config %+v", c)
			}
			torch.NoGrad(func() {
				torch.Scoped(func() {
					checkClose(t, "eps", m.Predict(x, ts, ctx, diffusion.Conditions{}), io["eps"])
				})
			})
		})
	}
	m, err := LDMUNet(ckpt, ldmTiny)
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]map[string]Source{"v1.1 pth": pth, "v1.0 single file": single} {
		t.Run(name, func(t *testing.T) {
			n, err := ControlNet(src, kinds.Mask, ldmTiny)
			if err != nil {
				t.Fatal(err)
			}
			if c := n.Enc.Config; c.HintChannels != 3 || !reflect.DeepEqual(c.CondEmbedChannels, []int64{16, 32, 96, 256}) {
				t.Fatalf("hint %d, embedding widths %v", c.HintChannels, c.CondEmbedChannels)
			}
			torch.NoGrad(func() {
				torch.Scoped(func() {
					r := n.Forward(x, ts, ctx, hint, 1)
					if len(r.Down) != 6 {
						t.Fatalf("%d down residuals, want 6", len(r.Down))
					}
					for i, d := range r.Down {
						checkClose(t, fmt.Sprintf("residual_%d", i), d, io[fmt.Sprintf("residual_%d", i)])
					}
					checkClose(t, "residual_mid", r.Mid, io["residual_mid"])
				})
			})
		})
	}
	n, err := ControlNet(pth, kinds.Mask, ldmTiny)
	if err != nil {
		t.Fatal(err)
	}
	if err := AttachControl(m, kinds.Mask, n); err != nil {
		t.Fatal(err)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			eps := m.Predict(x, ts, ctx, diffusion.Conditions{Mask: hint})
			checkClose(t, "eps_control", eps, io["eps_control"])
			if d := io["eps_control"].Sub(io["eps"]).Abs().MaxAll().Item(); d < 1e-2 {
				t.Fatalf("the control changes ε by only %g: the fixture tests nothing", d)
			}
		})
	})
	// What ddgi convert writes: ddgi safetensors that diffusion loads.
	dir := t.TempDir()
	unetPath, ctrlPath := filepath.Join(dir, "unet.safetensors"), filepath.Join(dir, "seg.safetensors")
	if err := m.Save(unetPath, false); err != nil {
		t.Fatal(err)
	}
	if err := m.SaveControl(kinds.Mask, ctrlPath, false); err != nil {
		t.Fatal(err)
	}
	back, err := diffusion.Load(unetPath, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := back.LoadControl(ctrlPath); err != nil {
		t.Fatal(err)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			checkClose(t, "eps_control after save/load", back.Predict(x, ts, ctx, diffusion.Conditions{Mask: hint}), io["eps_control"])
		})
	})
}

// TestLDMBadInput: wrong files say what is wrong instead of panicking.
func TestLDMBadInput(t *testing.T) {
	ckpt := openLDM(t, "ldm_tiny.ckpt")
	if _, err := ControlNet(ckpt, kinds.Mask, ldmTiny); err == nil {
		t.Error("a U-Net without a hint block converted as a ControlNet")
	} else {
		t.Log(err)
	}
	pth := openLDM(t, "control_tiny.pth")
	if _, err := LDMUNet(pth, ldmTiny); err == nil {
		t.Error("a ControlNet converted as a U-Net")
	} else {
		t.Log(err)
	}
	if _, err := LDMUNet(map[string]Source{}, ldmTiny); err == nil {
		t.Error("an empty file converted")
	}
	delete(ckpt, "model.diffusion_model.output_blocks.2.0.skip_connection.weight")
	if _, err := LDMUNet(ckpt, ldmTiny); err == nil {
		t.Error("a U-Net missing a tensor converted")
	} else {
		t.Log(err)
	}
}

// readKeyList reads a names → shapes JSON written by the reference code.
func readKeyList(t *testing.T, name string) map[string][]int64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "ldm_unet", name))
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string][]int64
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestLDMFullSizeKeyLists places every key of SD1.5's U-Net
// (v1-inference.yaml) and control_sd15_seg's ControlNet (cldm_v15.yaml),
// with the config inferred from their shapes. The ddgi shapes come from
// sd15Shapes (computed from the config, nothing allocated); without -short
// that table is first checked against SkipInit stores of the sd15 preset
// (3.4 GB + 1.4 GB of zeros).
func TestLDMFullSizeKeyLists(t *testing.T) {
	sd15, err := diffusion.Preset("sd15")
	if err != nil {
		t.Fatal(err)
	}
	unet := withoutPrefixShapes(readKeyList(t, "sd15_unet_keys.json"), LDMUNetPrefix)
	ctrl := withoutPrefixShapes(readKeyList(t, "control_sd15_seg_keys.json"), LDMControlPrefix)
	if len(unet) != 686 || len(ctrl) != 340 {
		t.Fatalf("%d U-Net and %d ControlNet keys", len(unet), len(ctrl))
	}
	c, err := inferLDM(unet, LDMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Channels, sd15.Channels) || !reflect.DeepEqual(c.Attention, sd15.Attention) || c.LayersPerBlock != 2 ||
		c.Heads != 8 || c.ContextDim != 768 || c.TransformerDepth != 1 || c.LatentSize != 64 {
		t.Fatalf("inferred %+v", c)
	}
	uwant, cwant := sd15Shapes(c, false), sd15Shapes(c, true)
	if !testing.Short() {
		for _, control := range []bool{false, true} {
			s := nn.NewStore(torch.CPU, 0)
			s.SkipInit = true
			if control {
				_, err = diffusion.NewControlNetIn(s, c, kinds.Mask)
			} else {
				_, err = diffusion.NewUNet(s.Root(), c)
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := sd15Shapes(c, control); !reflect.DeepEqual(storeShapes(s), want) {
				t.Fatalf("sd15Shapes(control %v) is not the network's shape table", control)
			}
		}
	}
	if _, err := LDMUNetTable(2).Plan(unet, uwant); err != nil {
		t.Fatal(err)
	}
	hint, widths, convs, err := hintWidths(ctrl)
	if err != nil || hint != 3 || convs != 8 || !reflect.DeepEqual(widths, sd15.CondEmbedChannels) {
		t.Fatalf("hint block: %d channels, widths %v, %d convs, %v", hint, widths, convs, err)
	}
	if _, err := CLDMControlNetTable(2, convs).Plan(ctrl, cwant); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range uwant {
		p := int64(1)
		for _, d := range s {
			p *= d
		}
		n += p
	}
	if n != 859520964 {
		t.Errorf("placed %d U-Net parameters, SD1.5 has 859,520,964", n)
	}
}

func withoutPrefixShapes(m map[string][]int64, prefix string) map[string][]int64 {
	src := map[string]Source{}
	for k, v := range m {
		src[k] = shapeOnly(v)
	}
	return shapesOf(withPrefix(src, prefix))
}

// sd15Shapes is ddgi's name → shape table for config c, computed from the
// architecture (diffusion/unet.go, controlnet.go) without allocating: the
// U-Net's, or a ControlNet branch's (control) reading c.HintChannels.
func sd15Shapes(c diffusion.Config, control bool) map[string][]int64 {
	out := map[string][]int64{}
	temb := c.TimeEmbedDim()
	vec := func(n string, ch int64) { out[n+".weight"], out[n+".bias"] = []int64{ch}, []int64{ch} }
	conv := func(n string, o, i, k int64) { out[n+".weight"], out[n+".bias"] = []int64{o, i, k, k}, []int64{o} }
	lin := func(n string, o, i int64, bias bool) {
		out[n+".weight"] = []int64{o, i}
		if bias {
			out[n+".bias"] = []int64{o}
		}
	}
	res := func(p string, in, o int64) {
		vec(p+".norm1", in)
		conv(p+".conv1", o, in, 3)
		lin(p+".time_emb_proj", o, temb, true)
		vec(p+".norm2", o)
		conv(p+".conv2", o, o, 3)
		if in != o {
			conv(p+".conv_shortcut", o, in, 1)
		}
	}
	tr := func(p string, d int64) {
		vec(p+".norm", d)
		conv(p+".proj_in", d, d, 1)
		conv(p+".proj_out", d, d, 1)
		for k := 0; k < c.TransformerDepth; k++ {
			b := fmt.Sprintf("%s.transformer_blocks.%d", p, k)
			for _, a := range []struct {
				name string
				ctx  int64
			}{{"attn1", d}, {"attn2", c.ContextDim}} {
				lin(b+"."+a.name+".to_q", d, d, false)
				lin(b+"."+a.name+".to_k", d, a.ctx, false)
				lin(b+"."+a.name+".to_v", d, a.ctx, false)
				lin(b+"."+a.name+".to_out", d, d, true)
			}
			vec(b+".norm1", d)
			vec(b+".norm2", d)
			vec(b+".norm3", d)
			lin(b+".ff.net.0.proj", 8*d, d, true)
			lin(b+".ff.net.2", d, 4*d, true)
		}
	}
	conv("conv_in", c.Channels[0], c.LatentChannels, 3)
	lin("time_embedding.linear_1", temb, c.Channels[0], true)
	lin("time_embedding.linear_2", temb, temb, true)
	skips := []int64{c.Channels[0]}
	in := c.Channels[0]
	for i, o := range c.Channels {
		for j := 0; j < c.LayersPerBlock; j++ {
			res(fmt.Sprintf("down_blocks.%d.resnets.%d", i, j), in, o)
			if c.Attention[i] {
				tr(fmt.Sprintf("down_blocks.%d.attentions.%d", i, j), o)
			}
			in = o
			skips = append(skips, o)
		}
		if i < len(c.Channels)-1 {
			conv(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i), o, o, 3)
			skips = append(skips, o)
		}
	}
	res("mid_block.resnets.0", in, in)
	tr("mid_block.attentions.0", in)
	res("mid_block.resnets.1", in, in)
	if control {
		e := c.CondEmbedChannels
		conv("controlnet_cond_embedding.conv_in", e[0], c.HintChannels, 3)
		for i := 0; i+1 < len(e); i++ {
			conv(fmt.Sprintf("controlnet_cond_embedding.blocks.%d", 2*i), e[i], e[i], 3)
			conv(fmt.Sprintf("controlnet_cond_embedding.blocks.%d", 2*i+1), e[i+1], e[i], 3)
		}
		conv("controlnet_cond_embedding.conv_out", c.Channels[0], e[len(e)-1], 3)
		for i, s := range skips {
			conv(fmt.Sprintf("controlnet_down_blocks.%d", i), s, s, 1)
		}
		conv("controlnet_mid_block", in, in, 1)
		return out
	}
	n := len(c.Channels)
	cur := in
	for i := 0; i < n; i++ {
		lvl := n - 1 - i
		o := c.Channels[lvl]
		for j := 0; j <= c.LayersPerBlock; j++ {
			s := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			res(fmt.Sprintf("up_blocks.%d.resnets.%d", i, j), cur+s, o)
			if c.Attention[lvl] {
				tr(fmt.Sprintf("up_blocks.%d.attentions.%d", i, j), o)
			}
			cur = o
		}
		if lvl > 0 {
			conv(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i), o, o, 3)
		}
	}
	vec("conv_norm_out", c.Channels[0])
	conv("conv_out", c.LatentChannels, c.Channels[0], 3)
	return out
}

// TestLDMConfigYAML converts with the heads and latent size taken from an
// LDM .yaml instead of flags (parity needs the right heads), and refuses a
// config that disagrees with the weights, naming the field.
func TestLDMConfigYAML(t *testing.T) {
	yml := filepath.Join("testdata", "ldm_unet", "tiny.yaml")
	uo, err := ReadLDMConfig(yml, false)
	if err != nil {
		t.Fatal(err)
	}
	co, err := ReadLDMConfig(yml, true)
	if err != nil {
		t.Fatal(err)
	}
	if uo.Heads != 2 || uo.LatentSize != 8 || co.Heads != 2 {
		t.Fatalf("options %+v / %+v", uo, co)
	}
	io := golden.Load(t, filepath.Join("testdata", "ldm_unet", "io.safetensors"))
	m, err := LDMUNet(openLDM(t, "ldm_tiny.ckpt"), uo)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ControlNet(openLDM(t, "control_tiny.pth"), kinds.Mask, co)
	if err != nil {
		t.Fatal(err)
	}
	if err := AttachControl(m, kinds.Mask, n); err != nil {
		t.Fatal(err)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			eps := m.Predict(io["x"], io["t"], io["context"], diffusion.Conditions{Mask: io["hint"]})
			checkClose(t, "eps_control", eps, io["eps_control"])
		})
	})
	bad := uo
	wrong := *bad.Expect
	wrong.ChannelMult = []int64{1, 2, 1}
	bad.Expect = &wrong
	if _, err := LDMUNet(openLDM(t, "ldm_tiny.ckpt"), bad); err == nil || !strings.Contains(err.Error(), "channel_mult") {
		t.Errorf("a disagreeing config: %v", err)
	}
	if _, err := ReadLDMConfig(filepath.Join("testdata", "ldm_unet", "io.safetensors"), false); err == nil {
		t.Error("a binary file read as a config")
	}
}
