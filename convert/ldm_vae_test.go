package convert

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/diffusion/vae"
	"ddgi/internal/golden"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

// TestLDMVAEParity converts an LDM AutoencoderKL on random weights (small
// ddconfig: ch 32, ch_mult [1,1], one res block, z 4), saved by the
// reference as a Lightning .ckpt and as LDM-named safetensors, and
// reproduces the reference's posterior mean/logvar, decode of a given z and
// reconstruction.
func TestLDMVAEParity(t *testing.T) {
	io := golden.Load(t, filepath.Join("testdata", "ldm_vae", "io.safetensors"))
	for _, file := range []string{"model.safetensors"} {
		t.Run(file, func(t *testing.T) {
			src, cl, err := OpenSources(filepath.Join("testdata", "ldm_vae", file))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			a, _, err := LDMVAE(src, LDMVAEOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c := a.Config
			if c.Channels != 32 || len(c.Mult) != 2 || c.Mult[1] != 1 || c.ResBlocks != 1 || c.ZChannels != 4 || !c.AttnBias || c.DownPad != "asym" || c.NormEps != 1e-6 || c.Scale != 0.18215 {
				t.Fatalf("config %+v", c)
			}
			torch.NoGrad(func() {
				torch.Scoped(func() {
					m, lv := a.Encode(io["x"])
					checkClose(t, "mean", m, io["mean"])
					checkClose(t, "logvar", lv, io["logvar"])
					checkClose(t, "decoded", a.Decode(io["z"]), io["decoded"])
					checkClose(t, "reconstructed", a.Decode(m), io["reconstructed"])
				})
			})
		})
	}
}

// TestLDMVAEHalfParity converts fp16 files (as most SD VAEs ship) of an
// autoencoder whose widths change both ways (ch_mult [2,1]: nin_shortcut in
// encoder and decoder, distinct shapes per decoder level, so a wrong up
// order cannot load); the reference ran in fp32 on the same rounded values.
func TestLDMVAEHalfParity(t *testing.T) {
	io := golden.Load(t, filepath.Join("testdata", "ldm_vae", "io_fp16.safetensors"))
	for _, file := range []string{"model_fp16.ckpt"} {
		t.Run(file, func(t *testing.T) {
			src, cl, err := OpenSources(filepath.Join("testdata", "ldm_vae", file))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			a, _, err := LDMVAE(src, LDMVAEOptions{Scale: 0.5, Resolution: 16})
			if err != nil {
				t.Fatal(err)
			}
			if c := a.Config; len(c.Mult) != 2 || c.Mult[0] != 2 || c.Mult[1] != 1 || c.Scale != 0.5 || c.Resolution != 16 {
				t.Fatalf("config %+v", c)
			}
			torch.NoGrad(func() {
				torch.Scoped(func() {
					m, lv := a.Encode(io["x"])
					checkClose(t, "mean", m, io["mean"])
					checkClose(t, "logvar", lv, io["logvar"])
					checkClose(t, "decoded", a.Decode(io["z"]), io["decoded"])
				})
			})
		})
	}
}

// TestLDMVAEFullSizeKeyList places every first_stage_model key of SD1.5
// (written by LDM's Encoder/Decoder at v1-inference.yaml's ddconfig) on
// ddgi's sd preset, with 83,653,863 parameters on both sides.
func TestLDMVAEFullSizeKeyList(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "ldm_vae", "keys_sd15.json"))
	if err != nil {
		t.Fatal(err)
	}
	var keys struct {
		Parameters int64
		Keys       map[string][]int64
	}
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	src := map[string][]int64{}
	for n, s := range keys.Keys {
		src[strings.TrimPrefix(n, ldmVAEPrefix)] = s
	}
	c, err := InferLDMVAE(src, LDMVAEOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sd, _ := vae.Preset("sd")
	if c.Channels != sd.Channels || c.ResBlocks != sd.ResBlocks || len(c.Mult) != len(sd.Mult) || c.AttnBias != sd.AttnBias || c.DownPad != sd.DownPad || c.NormEps != sd.NormEps || c.Groups != sd.Groups || c.Scale != sd.Scale {
		t.Fatalf("inferred %+v, sd preset %+v", c, sd)
	}
	for i := range c.Mult {
		if c.Mult[i] != sd.Mult[i] {
			t.Fatalf("channel_mult %v, sd preset %v", c.Mult, sd.Mult)
		}
	}
	store := nn.NewStore(torch.CPU, 0)
	store.SkipInit = true
	vae.New(store.Root(), c)
	if n := store.NumParams(); n != keys.Parameters || n != 83653863 {
		t.Errorf("ddgi %d parameters, reference %d", n, keys.Parameters)
	}
	if _, err := LDMVAETable(len(c.Mult)).Plan(src, storeShapes(store)); err != nil {
		t.Fatal(err)
	}
}

// TestLDMVAEBadInput: a file that is not an LDM VAE, or one whose tensors do
// not fit, is an error naming the problem, never a panic.
func TestLDMVAEBadInput(t *testing.T) {
	f32 := func(shape ...int64) Source { return shapeOnly(shape) }
	if _, _, err := LDMVAE(map[string]Source{"model.diffusion_model.x": f32(3)}, LDMVAEOptions{}); err == nil || !strings.Contains(err.Error(), "not an LDM autoencoder") {
		t.Errorf("non-VAE file: %v", err)
	}
	src := map[string]Source{
		"encoder.conv_in.weight":              f32(32, 3, 3, 3),
		"decoder.conv_in.weight":              f32(32, 4, 3, 3),
		"encoder.down.0.block.0.conv1.weight": f32(48, 32, 3, 3),
	}
	if _, _, err := LDMVAE(src, LDMVAEOptions{}); err == nil {
		t.Error("channel widths that are no multiple accepted")
	}
	src["encoder.down.99999999999999999999.block.0.conv1.weight"] = f32(32, 32, 3, 3)
	if _, _, err := LDMVAE(src, LDMVAEOptions{}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("huge level number: %v", err)
	}
	// A decoder level beyond the encoder's is named, not a panic.
	tab := LDMVAETable(2)
	if _, err := tab.Plan(map[string][]int64{"decoder.up.7.upsample.conv.bias": {4}}, map[string][]int64{}); err == nil || !strings.Contains(err.Error(), "no such level") {
		t.Errorf("decoder level 7 of 2: %v", err)
	}
}

// memTensor is a Source already in memory.
type memTensor struct{ t safetensors.Tensor }

func (s memTensor) Shape() []int64                    { return s.t.Shape }
func (s memTensor) Read() (safetensors.Tensor, error) { return s.t, nil }

// shapeOnly is a Source whose data is never read.
type shapeOnly []int64

func (s shapeOnly) Shape() []int64 { return s }
func (s shapeOnly) Read() (safetensors.Tensor, error) {
	return safetensors.Tensor{}, os.ErrInvalid
}

// TestLDMVAESavedLoads saves a converted VAE as ddgi safetensors (the
// config with its switches in the metadata) and loads it with vae.Load:
// same outputs, so the rest of ddgi needs no converter.
func TestLDMVAESavedLoads(t *testing.T) {
	io := golden.Load(t, filepath.Join("testdata", "ldm_vae", "io.safetensors"))
	src, cl, err := OpenSources(filepath.Join("testdata", "ldm_vae", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	conv, store, err := LDMVAE(src, LDMVAEOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vae.safetensors")
	if err := store.Save(path, nn.SaveOptions{Config: conv.Config}); err != nil {
		t.Fatal(err)
	}
	a, _, err := vae.Load(path, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if c := a.Config; !c.AttnBias || c.DownPad != "asym" || c.NormEps != 1e-6 {
		t.Fatalf("loaded config %+v", c)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			m, _ := a.Encode(io["x"])
			checkClose(t, "mean after save/load", m, io["mean"])
			checkClose(t, "decoded after save/load", a.Decode(io["z"]), io["decoded"])
		})
	})
}
