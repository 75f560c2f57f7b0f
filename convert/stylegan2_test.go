package convert

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ddgi/convert/torchfile"
	"ddgi/gan/stylegan2"
	"ddgi/internal/golden"
	"ddgi/nn"
	"ddgi/torch"
)

// parityTol is the bound on |ddgi − reference| after conversion.
const parityTol = 1e-4

// convertSG2 converts a fixture and returns the ddgi generator.
func convertSG2(t *testing.T, path string, o GANOptions) *stylegan2.Generator {
	t.Helper()
	g, rep, err := GAN(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s layout, key %s, %d tensors, notes %v", path, rep.From, rep.Key, rep.Tensors, rep.Notes)
	sg, ok := g.(*stylegan2.Generator)
	if !ok {
		t.Fatalf("%s: converted to a %T", path, g)
	}
	return sg
}

// TestRosinalityParity converts checkpoints written by rosinality's
// train.py layout (zip, legacy format, and with an argparse Namespace) and
// reproduces its generator's outputs on random weights: the mapping, z → image
// with and without truncation, and given w+.
func TestRosinalityParity(t *testing.T) {
	io := golden.Load(t, filepath.Join("testdata", "rosinality", "io.safetensors"))
	for _, file := range []string{"ckpt.pt", "ckpt_legacy.pt", "ckpt_namespace.pt"} {
		t.Run(file, func(t *testing.T) {
			g := convertSG2(t, filepath.Join("testdata", "rosinality", file), GANOptions{ConvClamp: -1})
			torch.NoGrad(func() {
				torch.Scoped(func() {
					checkClose(t, "w", g.Map.Forward(io["z"], nil), io["w"])
					checkClose(t, "latent_avg", g.WAvg(), io["latent_avg"])
					checkClose(t, "img_z", g.Forward(io["z"], nil, 1, stylegan2.NoiseConst), io["img_z"])
					checkClose(t, "img_z_trunc", g.Forward(io["z"], nil, 0.7, stylegan2.NoiseConst), io["img_z_trunc"])
					checkClose(t, "img_wplus", g.Synthesis(io["w_plus"], stylegan2.NoiseConst), io["img_wplus"])
					checkClose(t, "img_mix_inject3", g.Synthesis(io["latent_mix_inject3"], stylegan2.NoiseConst), io["img_mix_inject3"])
				})
			})
		})
	}
}

// TestNVlabsParity converts stylegan2-ada-pytorch network pickles (the
// training loop's snapshot layout) and reproduces G_ema, including a model
// whose conv_clamp really clips (read from the pickle's init kwargs).
func TestNVlabsParity(t *testing.T) {
	io := golden.Load(t, filepath.Join("testdata", "nvlabs", "io.safetensors"))
	torch.NoGrad(func() {
		torch.Scoped(func() {
			g := convertSG2(t, filepath.Join("testdata", "nvlabs", "network-snapshot.pkl"), GANOptions{ConvClamp: -1})
			if g.Cfg.ConvClamp != 0 {
				t.Errorf("conv_clamp %v, want none", g.Cfg.ConvClamp)
			}
			checkClose(t, "w", g.Map.Forward(io["z"], nil), io["w"])
			checkClose(t, "ws_z_trunc", g.Mapping(io["z"], nil, 0.7), io["ws_z_trunc"])
			checkClose(t, "img_z", g.Forward(io["z"], nil, 1, stylegan2.NoiseConst), io["img_z"])
			checkClose(t, "img_z_trunc", g.Forward(io["z"], nil, 0.7, stylegan2.NoiseConst), io["img_z_trunc"])
			checkClose(t, "img_ws", g.Synthesis(io["ws"], stylegan2.NoiseConst), io["img_ws"])
			checkClose(t, "img_ws_nonoise", g.Synthesis(io["ws"], stylegan2.NoiseNone), io["img_ws_nonoise"])

			c := convertSG2(t, filepath.Join("testdata", "nvlabs", "network-clamp.pkl"), GANOptions{ConvClamp: -1})
			if c.Cfg.ConvClamp != 0.5 {
				t.Fatalf("conv_clamp %v, want 0.5 from the pickle", c.Cfg.ConvClamp)
			}
			checkClose(t, "clamp_img_ws", c.Synthesis(io["ws"], stylegan2.NoiseConst), io["clamp_img_ws"])
			checkClose(t, "clamp_img_z", c.Forward(io["z"], nil, 1, stylegan2.NoiseConst), io["clamp_img_z"])
			// The clamp matters: without it the same weights miss the reference.
			u := convertSG2(t, filepath.Join("testdata", "nvlabs", "network-clamp.pkl"), GANOptions{ConvClamp: 0})
			if d := u.Synthesis(io["ws"], stylegan2.NoiseConst).Sub(io["clamp_img_ws"]).Abs().MaxAll().Item(); d < 1e-2 {
				t.Errorf("unclamped model within %.3g of the clamped reference: the fixture does not test the clamp", d)
			}
		})
	})
}

func checkClose(t *testing.T, name string, got, want *torch.Tensor) {
	t.Helper()
	if want == nil {
		t.Fatalf("%s: no reference tensor", name)
	}
	if g, w := got.Shape(), want.Shape(); !slices.Equal(g, w) {
		t.Fatalf("%s: shape %v, reference %v", name, g, w)
	}
	d := got.Sub(want).Abs().MaxAll().Item()
	t.Logf("%s: max |Δ| = %.3g", name, d)
	if !(d <= parityTol) {
		t.Errorf("%s: max |Δ| = %.3g > %g", name, d, parityTol)
	}
}

// TestFullSizeKeyLists plans the conversion of the public FFHQ
// generators' full key lists (written by the reference code): every key is
// placed and the inferred config is the public one.
func TestFullSizeKeyLists(t *testing.T) {
	cases := []struct {
		table         Table
		file          string
		res, base, mx int
	}{
		{Rosinality, "rosinality/keys_full_256.json", 256, 32768, 512},
		{Rosinality, "rosinality/keys_full_1024.json", 1024, 32768, 512},
		{NVlabs, "nvlabs/keys_full_256.json", 256, 32768, 512},
		{NVlabs, "nvlabs/keys_full_256_paper256_cbase16384.json", 256, 16384, 512},
		{NVlabs, "nvlabs/keys_full_1024.json", 1024, 32768, 512},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			var keys map[string]json.RawMessage // generator (rosinality) or G (NVlabs), D, _config
			if err := json.Unmarshal(raw, &keys); err != nil {
				t.Fatal(err)
			}
			var src map[string][]int64
			for _, k := range []string{"generator", "G"} {
				if keys[k] != nil {
					if err := json.Unmarshal(keys[k], &src); err != nil {
						t.Fatal(err)
					}
				}
			}
			if src == nil {
				t.Fatalf("no generator key list in %s", c.file)
			}
			cfg, err := InferStyleGAN2(c.table, src)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Resolution != c.res || cfg.ChannelBase != c.base || cfg.ChannelMax != c.mx || cfg.MappingLayers != 8 || cfg.WDim != 512 || cfg.ZDim != 512 {
				t.Fatalf("inferred %+v", cfg)
			}
			st := nn.NewStore(torch.CPU, 0)
			st.SkipInit = true
			if _, err := stylegan2.NewGenerator(st.Root(), cfg); err != nil {
				t.Fatal(err)
			}
			want := storeShapes(st)
			if c.table.Name == Rosinality.Name {
				src["latent_avg"] = []int64{512} // top level in the checkpoint
			}
			plan, err := c.table.Plan(src, want)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan) != len(want) {
				t.Fatalf("placed %d of %d tensors", len(plan), len(want))
			}
		})
	}
}

// TestPlanNamesEveryProblem checks that a mismatched file is refused with
// each unknown, missing and mis-shaped key named.
func TestPlanNamesEveryProblem(t *testing.T) {
	src := map[string][]int64{
		"style.1.weight":     {8, 8},
		"style.1.bias":       {8},
		"input.input":        {1, 4, 4, 4},
		"mystery.tensor":     {3},
		"to_rgb1.bias":       {1, 3, 1, 1},
		"conv1.conv.weight":  {1, 5, 4, 3, 3}, // wrong out channels
		"noises.noise_0":     {1, 1, 4, 4},
		"conv1.noise.weight": {1},
	}
	want := map[string][]int64{
		"mapping.fc0.weight":           {8, 8},
		"mapping.fc0.bias":             {8},
		"synthesis.input.const":        {1, 4, 4, 4},
		"synthesis.torgb1.bias":        {3},
		"synthesis.conv1.conv.weight":  {4, 4, 3, 3},
		"synthesis.noise_const.0":      {1, 1, 4, 4},
		"synthesis.conv1.noise.weight": {1},
		"synthesis.conv1.bias":         {4},
	}
	_, err := Rosinality.Plan(src, want)
	if err == nil {
		t.Fatal("a mismatched file was accepted")
	}
	for _, s := range []string{"mystery.tensor", "conv1.conv.weight [1 5 4 3 3]", "synthesis.conv1.bias"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not name %q: %v", s, err)
		}
	}
}

// TestRosinalityWithoutLatentAvg converts a checkpoint lacking latent_avg:
// w̄ is then the mean of the mapping network, as rosinality computes it.
func TestRosinalityWithoutLatentAvg(t *testing.T) {
	f, err := torchfile.Open(filepath.Join("testdata", "rosinality", "ckpt.pt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gEMA, _ := f.Root().(*torchfile.Dict).Get("g_ema")
	ts, err := torchfile.Tensors(gEMA)
	if err != nil {
		t.Fatal(err)
	}
	src := map[string]Source{}
	for n, x := range ts {
		src[n] = tensorSource{x}
	}
	g, err := StyleGAN2(Rosinality, src, StyleGAN2Options{})
	if err != nil {
		t.Fatal(err)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			z := torch.Randn(torch.NewGenerator(99), []int64{20000, int64(g.Cfg.ZDim)}, torch.Float32, torch.CPU)
			mean := g.Map.Forward(z, nil).Mean([]int64{0}, false)
			scale := mean.Abs().MaxAll().Item()
			if d := g.WAvg().Sub(mean).Abs().MaxAll().Item(); scale == 0 || d > 0.05*scale {
				t.Errorf("w̄ differs from the mapping's mean by %g (scale %g)", d, scale)
			}
		})
	})
}
