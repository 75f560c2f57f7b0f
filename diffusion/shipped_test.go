package diffusion

import (
	"os"
	"path/filepath"
	"testing"

	"ddgi/internal/golden"
	"ddgi/torch"
)

// TestShippedOutputsUnchanged runs the shipped small64 U-Net with its mask
// branch on fixed inputs and compares with the outputs the model gave
// before the config switches for public checkpoints (hint_channels, …):
// their zero values must keep ddgi's own models as they were.
func TestShippedOutputsUnchanged(t *testing.T) {
	base := filepath.Join("..", "weights", "diffusion_small64.safetensors")
	branch := filepath.Join("..", "weights", "diffusion_small64_mask.safetensors")
	for _, p := range []string{base, branch} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s not present", p)
		}
	}
	m, err := Load(base, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	n, err := m.LoadControl(branch)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	torch.NoGrad(func() {
		torch.Scoped(func() {
			zt, tt, ctx, mask := fixedInputs(c)
			res := n.Forward(zt, tt, ctx, mask, 1)
			got := map[string]*torch.Tensor{
				"eps":          m.Predict(zt, tt, ctx, Conditions{}),
				"eps_mask":     m.Predict(zt, tt, ctx, Conditions{Mask: mask}),
				"residual_mid": res.Mid,
				"residual_0":   res.Down[0],
			}
			golden.Check(t, filepath.Join("testdata", "shipped_small64.safetensors"), got, 1e-5)
		})
	})
}

// fixedInputs are seeded inputs for a batch of two controlled U-Net calls:
// latents z_t, timesteps 10 and 700, a text context of 8 tokens and a
// random 19-class one-hot mask at the image size.
func fixedInputs(c Config) (zt, tt, ctx, mask *torch.Tensor) {
	zt = torch.Randn(torch.NewGenerator(1), []int64{2, c.LatentChannels, c.LatentSize, c.LatentSize}, torch.Float32, torch.CPU)
	ctx = torch.Randn(torch.NewGenerator(2), []int64{2, 8, c.ContextDim}, torch.Float32, torch.CPU)
	s := c.ImageSize()
	cls := torch.Rand(torch.NewGenerator(3), []int64{2, s, s}, torch.Float32, torch.CPU).MulScalar(MaskClasses).To(torch.Int64)
	mask = torch.OneHot(cls, MaskClasses).Permute(0, 3, 1, 2).To(torch.Float32)
	tt = torch.FromInt64([]int64{10, 700}, 2)
	return zt, tt, ctx, mask
}
