package eg3d

import (
	"path/filepath"
	"testing"

	"ddgi/gan/stylegan2"
	"ddgi/internal/golden"
	"ddgi/torch"
)

// TestShippedRendersUnchanged renders the shipped small64 EG3D for two
// seeds from two cameras and compares image, raw image and depth with what
// the model gave when it was shipped: switches added for NVlabs' EG3D
// (plane axes, sampling, super-resolution blocks) must not change them.
func TestShippedRendersUnchanged(t *testing.T) {
	g, _ := shippedEG3D(t)
	torch.NoGrad(func() {
		torch.Scoped(func() {
			z := torch.Cat([]*torch.Tensor{
				torch.Randn(torch.NewGenerator(0), []int64{1, int64(g.Cfg.Backbone.ZDim)}, torch.Float32, torch.CPU),
				torch.Randn(torch.NewGenerator(1), []int64{1, int64(g.Cfg.Backbone.ZDim)}, torch.Float32, torch.CPU),
			}, 0)
			cam := torch.Cat([]*torch.Tensor{orbitCam(-25, 0), orbitCam(20, 5)}, 0)
			o := g.Synthesis(g.Mapping(z, orbitCam(0, 0).Repeat(2, 1), 0.7), cam, stylegan2.NoiseConst)
			golden.Check(t, filepath.Join("testdata", "shipped_small64.safetensors"),
				map[string]*torch.Tensor{"image": o.Image, "image_raw": o.ImageRaw, "depth": o.Depth}, 1e-5)
		})
	})
}
