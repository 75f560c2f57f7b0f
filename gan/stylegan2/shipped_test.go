package stylegan2

import (
	"os"
	"path/filepath"
	"testing"

	"ddgi/internal/golden"
	"ddgi/torch"
)

// TestShippedRendersUnchanged renders the shipped small64 generator for
// two seeds (ψ 0.7, the stored noise) and compares with the images the
// model gave when it was shipped: config switches added for public
// checkpoints (conv_clamp, …) and memory work must not change them.
func TestShippedRendersUnchanged(t *testing.T) {
	path := filepath.Join("..", "..", "weights", "stylegan2_small64.safetensors")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not present", path)
	}
	g, err := Load(path, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			z := torch.Cat([]*torch.Tensor{
				torch.Randn(torch.NewGenerator(0), []int64{1, int64(g.Cfg.ZDim)}, torch.Float32, torch.CPU),
				torch.Randn(torch.NewGenerator(1), []int64{1, int64(g.Cfg.ZDim)}, torch.Float32, torch.CPU),
			}, 0)
			golden.Check(t, filepath.Join("testdata", "shipped_small64.safetensors"),
				map[string]*torch.Tensor{"image": g.Forward(z, nil, 0.7, NoiseConst)}, 1e-5)
		})
	})
}
