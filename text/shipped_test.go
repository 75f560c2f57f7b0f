package text

import (
	"os"
	"path/filepath"
	"testing"

	"ddgi/internal/golden"
	"ddgi/torch"
)

// TestShippedEncoderUnchanged runs the shipped small64 text encoder on
// fixed ids and compares with its outputs when it was shipped: the
// switches for public checkpoints (attention biases, quick_gelu) keep
// today's behaviour at their zero values.
func TestShippedEncoderUnchanged(t *testing.T) {
	path := filepath.Join("..", "weights", "text_small64.safetensors")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not present", path)
	}
	e, _, err := LoadEncoder(path, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			ids := torch.RandInt(torch.NewGenerator(0), 0, e.Config.Vocab, []int64{2, e.Config.Context}, torch.CPU)
			golden.Check(t, filepath.Join("testdata", "shipped_small64.safetensors"),
				map[string]*torch.Tensor{"hidden": e.Forward(ids)}, 1e-5)
		})
	})
}
