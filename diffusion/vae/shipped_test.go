package vae

import (
	"os"
	"path/filepath"
	"testing"

	"ddgi/internal/golden"
	"ddgi/torch"
)

// TestShippedOutputsUnchanged encodes and decodes with the shipped small64
// autoencoder and compares with its outputs when it was shipped: the
// switches for public checkpoints (attention biases, padding, eps) keep
// today's behaviour at their zero values.
func TestShippedOutputsUnchanged(t *testing.T) {
	path := filepath.Join("..", "..", "weights", "vae_small64.safetensors")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not present", path)
	}
	a, _, err := Load(path, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			x := torch.Rand(torch.NewGenerator(0), []int64{2, 3, 64, 64}, torch.Float32, torch.CPU).MulScalar(2).SubScalar(1)
			z := torch.Randn(torch.NewGenerator(1), []int64{2, 4, 16, 16}, torch.Float32, torch.CPU)
			m, lv := a.Encode(x)
			golden.Check(t, filepath.Join("testdata", "shipped_small64.safetensors"),
				map[string]*torch.Tensor{"mean": m, "logvar": lv, "decoded": a.Decode(z)}, 1e-5)
		})
	})
}
