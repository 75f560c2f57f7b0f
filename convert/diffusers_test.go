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
	"ddgi/diffusion/vae"
	"ddgi/internal/golden"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/text"
	"ddgi/torch"
)

// The fixtures under testdata/diffusers were written by diffusers' own
// UNet2DConditionModel, ControlNetModel, AutoencoderKL and DDIMScheduler
// and transformers' CLIPTextModel (random fp16-rounded weights; U-Net
// block_out_channels [16,32,48], CrossAttn/CrossAttn/Down, 2 layers per
// block, 2 heads, cross_attention_dim 24, 8 groups; its ControlNetModel
// with SD's conditioning embedding; a 3-level VAE; a 2-layer text tower on
// the tiny CLIP BPE), laid out as a diffusers pipeline folder with SD1.5's
// scheduler_config.json.
var diffusersDir = filepath.Join("testdata", "diffusers")

// TestDiffusersParity converts the pipeline folder and the ControlNet
// folder as `ddgi convert --from diffusers` / `--from controlnet` do, loads
// the written ddgi files the way the pipeline does, and reproduces the
// reference's ε, every ControlNet residual, the controlled ε, the VAE
// posterior and decode, the text tower's hidden states and pooled output,
// the DDIM timesteps and one DDIM step at each end of the grid.
func TestDiffusersParity(t *testing.T) {
	io := golden.Load(t, filepath.Join(diffusersDir, "io.safetensors"))
	dir := t.TempDir()
	roles, err := Diffusers(filepath.Join(diffusersDir, "sd"), dir, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"unet": "unet.safetensors", "vae": "vae.safetensors", "text": "text.safetensors", "tokenizer": "tokenizer"}
	if !reflect.DeepEqual(roles, want) {
		t.Fatalf("roles %v", roles)
	}
	n, err := DiffusersControlNet(filepath.Join(diffusersDir, "controlnet"), kinds.Mask)
	if err != nil {
		t.Fatal(err)
	}
	branch := filepath.Join(dir, "branch_mask.safetensors")
	if err := n.Save(branch, kinds.Mask, false); err != nil {
		t.Fatal(err)
	}
	m, err := diffusion.Load(filepath.Join(dir, "unet.safetensors"), torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if !reflect.DeepEqual(c.Channels, []int64{16, 32, 48}) || !reflect.DeepEqual(c.Attention, []bool{true, true, false}) || c.LayersPerBlock != 2 ||
		c.Heads != 2 || c.ContextDim != 24 || c.NormGroups != 8 || c.LatentSize != 8 || c.Spacing != "leading" || c.StepsOffset != 1 {
		t.Fatalf("config %+v", c)
	}
	ctl, err := m.LoadControl(branch)
	if err != nil {
		t.Fatal(err)
	}
	x, ts, ctx, hint := io["x"], io["t"], io["context"], io["hint"]
	torch.NoGrad(func() {
		torch.Scoped(func() {
			checkClose(t, "eps", m.Predict(x, ts, ctx, diffusion.Conditions{}), io["eps"])
			r := ctl.Forward(x, ts, ctx, hint, 1)
			if len(r.Down) != 9 {
				t.Fatalf("%d down residuals, want 9", len(r.Down))
			}
			for i, d := range r.Down {
				checkClose(t, fmt.Sprintf("residual_%d", i), d, io[fmt.Sprintf("residual_%d", i)])
			}
			checkClose(t, "residual_mid", r.Mid, io["residual_mid"])
			checkClose(t, "eps_control", m.Predict(x, ts, ctx, diffusion.Conditions{Mask: hint}), io["eps_control"])
			if d := io["eps_control"].Sub(io["eps"]).Abs().MaxAll().Item(); d < 1e-2 {
				t.Fatalf("the control changes ε by only %g: the fixture tests nothing", d)
			}
		})
	})

	// The DDIM grid and steps come from scheduler_config.json through the
	// U-Net's config: no flags.
	got := m.Schedule.DDIMTimesteps(20)
	ref := io["ddim_timesteps"].Float32s()
	if fmt.Sprint(got) != fmt.Sprint(floatsToInts(ref)) {
		t.Fatalf("DDIM timesteps %v, diffusers %v", got, ref)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			s := m.Schedule
			checkClose(t, "ddim first step", s.DDIMStep(io["ddim_x_t"], io["ddim_eps"], got[0], got[1], 0, nil), io["ddim_prev_first"])
			checkClose(t, "ddim last step", s.DDIMStep(io["ddim_x_t"], io["ddim_eps"], got[19], -1, 0, nil), io["ddim_prev_last"])
		})
	})

	a, _, err := vae.Load(filepath.Join(dir, "vae.safetensors"), torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if c := a.Config; c.Channels != 16 || !reflect.DeepEqual(c.Mult, []int64{1, 2, 2}) || c.ResBlocks != 1 || c.Groups != 8 || c.Scale != 0.18215 || c.NormEps != 1e-6 || c.DownPad != "asym" || !c.AttnBias {
		t.Fatalf("vae config %+v", c)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			mean, logvar := a.Encode(io["image"])
			checkClose(t, "vae mean", mean, io["mean"])
			checkClose(t, "vae logvar", logvar, io["logvar"])
			checkClose(t, "vae decode", a.Decode(io["z"]), io["decoded"])
		})
	})

	e, _, err := text.LoadEncoder(filepath.Join(dir, "text.safetensors"), torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := text.LoadCLIP(filepath.Join(dir, "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.UseVocab(tok); err != nil {
		t.Fatal(err)
	}
	if ids := tok.Encode("The woman is smiling."); fmt.Sprint(ids) != "[513 517 518 525 269]" {
		t.Errorf("copied tokenizer: %v", ids)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			ids := io["ids"].To(torch.Int64)
			h := e.Forward(ids)
			checkClose(t, "text hidden", h, io["hidden"])
			checkClose(t, "text pooled", e.Pooled(ids, h), io["pooled"])
		})
	})
}

func floatsToInts(f []float32) []int {
	out := make([]int, len(f))
	for i, v := range f {
		out[i] = int(v)
	}
	return out
}

// TestDiffusersFullSizeKeyLists places every key of SD1.5's diffusers
// U-Net, VAE and text encoder and of a diffusers SD1.5 ControlNetModel
// (written by the reference classes at the public configs) on ddgi's
// networks at the configs the converter reads: 859,520,964 U-Net and
// 361,279,120 ControlNet parameters, as the reference counted.
func TestDiffusersFullSizeKeyLists(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(diffusersDir, "keys_sd15.json"))
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]map[string][]int64
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	// SD1.5's unet/config.json fields (runwayml/stable-diffusion-v1-5).
	sd15 := diffusersConfig{path: "sd15 unet/config.json", raw: map[string]any{
		"sample_size": 64.0, "in_channels": 4.0, "out_channels": 4.0, "layers_per_block": 2.0, "cross_attention_dim": 768.0,
		"attention_head_dim": 8.0, "block_out_channels": []any{320.0, 640.0, 1280.0, 1280.0}, "norm_num_groups": 32.0,
		"down_block_types": []any{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"},
		"up_block_types":   []any{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"},
	}}
	c, err := diffusersUNetConfig(sd15, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := diffusersUNetConfig(sd15, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := diffusion.CheckBranchConfig(c, cc); err != nil {
		t.Fatalf("SD1.5 ControlNet config does not fit the U-Net's: %v", err)
	}
	for _, net := range []struct {
		name    string
		control bool
		params  int64
	}{{"unet", false, 859520964}, {"controlnet", true, 361279120}} {
		want := sd15Shapes(c, net.control)
		if _, err := DiffusersUNetTable.Plan(keys[net.name], want); err != nil {
			t.Fatalf("%s: %v", net.name, err)
		}
		if n := numParams(want); n != net.params {
			t.Errorf("%s: ddgi places %d parameters, the reference has %d", net.name, n, net.params)
		}
	}
	sdVAE, _ := vae.Preset("sd")
	clipL, _ := text.EncoderPreset("clip-vit-l14")
	for _, net := range []struct {
		name   string
		table  Table
		build  func(nn.Path)
		params int64
	}{
		{"vae", DiffusersVAETable, func(p nn.Path) { vae.New(p, sdVAE) }, 83653863},
		{"text_encoder", HFCLIPText, func(p nn.Path) { text.NewEncoder(p, clipL) }, 123060480},
	} {
		store := nn.NewStore(torch.CPU, 0)
		store.SkipInit = true
		net.build(store.Root())
		if _, err := net.table.Plan(keys[net.name], storeShapes(store)); err != nil {
			t.Fatalf("%s: %v", net.name, err)
		}
		if n := store.NumParams(); n != net.params {
			t.Errorf("%s: %d parameters, the reference has %d", net.name, n, net.params)
		}
	}
}

func numParams(shapes map[string][]int64) int64 {
	var n int64
	for _, s := range shapes {
		p := int64(1)
		for _, d := range s {
			p *= d
		}
		n += p
	}
	return n
}

// TestDiffusersBadInput: configs ddgi does not implement are refused by
// field name, and a folder that is not a pipeline says so.
func TestDiffusersBadInput(t *testing.T) {
	if _, err := Diffusers(t.TempDir(), t.TempDir(), false); err == nil || !strings.Contains(err.Error(), "not a diffusers pipeline") {
		t.Errorf("empty folder: %v", err)
	}
	base := map[string]any{"down_block_types": []any{"CrossAttnDownBlock2D", "DownBlock2D"}, "up_block_types": []any{"UpBlock2D", "CrossAttnUpBlock2D"},
		"block_out_channels": []any{32.0, 64.0}}
	for field, val := range map[string]any{
		"use_linear_projection": true, "attention_head_dim": []any{5.0, 10.0}, "down_block_types": []any{"CrossAttnDownBlock2D", "SimpleDownBlock2D"},
		"up_block_types": []any{"CrossAttnUpBlock2D", "UpBlock2D"}, "out_channels": 8.0, "act_fn": "gelu",
	} {
		cfg := map[string]any{}
		for k, v := range base {
			cfg[k] = v
		}
		cfg[field] = val
		d := t.TempDir()
		b, _ := json.Marshal(cfg)
		if err := os.WriteFile(filepath.Join(d, "config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := readDiffusersConfig(d)
		if err == nil {
			_, err = diffusersUNetConfig(c, nil, false)
		}
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s = %v: %v", field, val, err)
		}
	}
	if _, err := DiffusersUNet(filepath.Join(diffusersDir, "sd", "tokenizer"), ""); err == nil {
		t.Error("a tokenizer folder converted as a U-Net")
	}
	if _, err := DiffusersControlNet(filepath.Join(diffusersDir, "sd", "unet"), kinds.Mask); err == nil || !strings.Contains(err.Error(), "class UNet2DConditionModel") {
		t.Errorf("a U-Net folder as a ControlNet: %v", err)
	}
	if _, _, err := HFCLIPTextModel(filepath.Join(diffusersDir, "sd", "vae")); err == nil || !strings.Contains(err.Error(), "class AutoencoderKL") {
		t.Errorf("a VAE folder as a text encoder: %v", err)
	}
	// A diffusers weights file given alone to the cldm converter points at
	// its folder.
	src, cl, err := OpenSources(filepath.Join(diffusersDir, "controlnet", "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := ControlNet(src, kinds.Mask, LDMOptions{}); err == nil || !strings.Contains(err.Error(), "diffusers names") {
		t.Errorf("a diffusers ControlNet file as cldm: %v", err)
	}
}
