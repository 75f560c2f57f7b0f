package convert

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/gan/eg3d"
	"ddgi/gan/stylegan2"
	"ddgi/internal/golden"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

// TestEG3DParity converts an NVlabs EG3D network pickle (FFHQ rendering
// options, small sizes, written by eg3d's training-loop layout) and
// reproduces its forward stage by stage: mapping, tri-planes, importance
// depths, rendered features, raw image, depth and the super-resolved image.
// The reference ran with its renderer's randomness fixed to ddgi's
// deterministic placement (stratified jitter ½, importance quantiles
// (j+½)/K), which is ddgi's rendering without an Rng.
func TestEG3DParity(t *testing.T) {
	io := golden.Load(t, filepath.Join("testdata", "eg3d", "io.safetensors"))
	gen, rep, err := GAN(filepath.Join("testdata", "eg3d", "network-snapshot.pkl"), GANOptions{ConvClamp: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s layout, %d tensors, notes %v", rep.From, rep.Tensors, rep.Notes)
	g, ok := gen.(*eg3d.Generator)
	if !ok {
		t.Fatalf("converted to a %T", gen)
	}
	c := g.Cfg
	if c.PlaneAxes != "zx" || c.Sampling != "eg3d" || c.NeuralRes != 32 || c.ImgRes != 64 || c.DepthSamples != 12 || c.ImportanceSamples != 12 || len(c.SRBlocks) != 2 || c.SRBlocks[0].Up || !c.SRBlocks[1].Up || c.SRConvClamp != 256 {
		t.Fatalf("config %+v", c)
	}
	if c.CameraPivot == nil || *c.CameraPivot != [3]float64{0, 0, 0.2} || c.CameraRadius != 2.7 {
		t.Errorf("camera orbit %v at %v, want NVlabs FFHQ's (0, 0, 0.2) at 2.7", c.CameraPivot, c.CameraRadius)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			ws := g.Mapping(io["z"], io["c"], 1)
			checkClose(t, "ws", ws, io["ws"])
			checkClose(t, "planes", g.Backbone.Synthesis(io["ws"], stylegan2.NoiseConst), io["planes_raw"])
			o := g.Synthesis(io["ws"], io["c"], stylegan2.NoiseConst)
			checkClose(t, "image_depth", o.Depth, io["image_depth"])
			checkClose(t, "raw rgb", o.ImageRaw, io["rgb_raw_before_sr"])
			checkClose(t, "image", o.Image, io["image"])
		})
	})
}

// TestEG3DSuperResolutionParity runs NVlabs' 256² (Hybrid4X: a first
// block that does not upsample, input resized 16 → 32) and 512² (Hybrid8XDC)
// super-resolution modules, small, from their state dicts.
func TestEG3DSuperResolutionParity(t *testing.T) {
	cases := []struct {
		file, input string
		blocks      []eg3d.SRBlock
		neural, in  int
	}{
		{"sr4x_io.safetensors", "in16", []eg3d.SRBlock{{Channels: 32}, {Channels: 16, Up: true}}, 16, 32},
		{"sr8xdc_io.safetensors", "in32", []eg3d.SRBlock{{Channels: 32, Up: true}, {Channels: 16, Up: true}}, 32, 32},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			f, err := safetensors.Load(filepath.Join("testdata", "eg3d", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			io := golden.Load(t, filepath.Join("testdata", "eg3d", tc.file))
			src := map[string]Source{}
			for name, st := range f.Tensors {
				if rest, ok := strings.CutPrefix(name, "sd."); ok {
					src["superresolution."+rest] = memTensor{st}
				}
			}
			cfg := eg3d.Presets["tiny"]
			cfg.Backbone.WDim = 32
			cfg.DecoderFeatures, cfg.NeuralRes, cfg.SRInputRes, cfg.SRBlocks, cfg.SRConvClamp = 32, tc.neural, tc.in, tc.blocks, 256
			cfg.ImgRes = int(io[tc.input+".image"].Size(2))
			store := nn.NewStore(torch.CPU, 0)
			sr := eg3d.NewSuperResolution(store.Root().Sub("superres"), cfg)
			tensors, err := Apply(EG3DTable, src, storeShapes(store))
			if err != nil {
				t.Fatal(err)
			}
			if err := store.LoadFile(&safetensors.File{Tensors: tensors}); err != nil {
				t.Fatal(err)
			}
			torch.NoGrad(func() {
				torch.Scoped(func() {
					x, ws := io[tc.input+".x"], io[tc.input+".ws"]
					img := sr.Forward(x, x.Narrow(1, 0, 3), ws.Select(1, ws.Size(1)-1))
					checkClose(t, "image", img, io[tc.input+".image"])
				})
			})
		})
	}
}

// TestEG3DFullSizeKeyList places every key of NVlabs' ffhq512-128
// generator (TriPlaneGenerator, 256² planes, Hybrid8XDC) on ddgi's EG3D.
func TestEG3DFullSizeKeyList(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "eg3d", "keys_full_512.json"))
	if err != nil {
		t.Fatal(err)
	}
	var keys struct{ G map[string][]int64 }
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	back := map[string][]int64{}
	for n, s := range keys.G {
		if rest, ok := strings.CutPrefix(n, "backbone."); ok {
			back[rest] = s
		}
	}
	bb, err := InferStyleGAN2(NVlabs, back)
	if err != nil {
		t.Fatal(err)
	}
	if bb.Resolution != 256 || bb.ImgChannels != 96 || bb.MappingLayers != 2 || bb.CDim != 25 || bb.ChannelBase != 32768 {
		t.Fatalf("backbone %+v", bb)
	}
	c := eg3d.Config{Backbone: bb, PlaneRes: 256, PlaneChannels: 32, DecoderHidden: 64, DecoderFeatures: 32,
		NeuralRes: 128, ImgRes: 512, SRInputRes: 128, SRBlocks: []eg3d.SRBlock{{Channels: 256, Up: true}, {Channels: 128, Up: true}},
		DepthSamples: 48, ImportanceSamples: 48, RayStart: 2.25, RayEnd: 3.3, BoxWarp: 1, PlaneAxes: "zx", Sampling: "eg3d"}
	store := nn.NewStore(torch.CPU, 0)
	store.SkipInit = true
	if _, err := eg3d.NewGenerator(store.Root(), c); err != nil {
		t.Fatal(err)
	}
	want := storeShapes(store)
	plan, err := EG3DTable.Plan(keys.G, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != len(want) {
		t.Fatalf("placed %d of %d tensors", len(plan), len(want))
	}
}
