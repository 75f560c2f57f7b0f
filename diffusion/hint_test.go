package diffusion

import (
	"encoding/json"
	"strings"
	"testing"

	"ddgi/torch"
)

// TestHintChannels: a branch with hint_channels 3 reads an RGB hint whatever
// its kind, and the zero value stays out of the config JSON (so shipped
// files' configs compare equal to the code's).
func TestHintChannels(t *testing.T) {
	c, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(c); strings.Contains(string(b), "hint_channels") {
		t.Fatalf("zero hint_channels written: %s", b)
	}
	c.HintChannels = 3
	m, err := New(c, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	n, err := m.AddControl(CondMask, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Store.Get("controlnet_cond_embedding.conv_in.weight").Shape(); got[1] != 3 {
		t.Fatalf("conv_in weight %v, want 3 input channels", got)
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			s := c.ImageSize()
			zt := torch.Randn(torch.NewGenerator(1), []int64{1, 4, c.LatentSize, c.LatentSize}, torch.Float32, torch.CPU)
			ctx := torch.Randn(torch.NewGenerator(2), []int64{1, 5, c.ContextDim}, torch.Float32, torch.CPU)
			hint := torch.Rand(torch.NewGenerator(3), []int64{1, 3, s, s}, torch.Float32, torch.CPU)
			eps := m.Predict(zt, torch.FromInt64([]int64{5}, 1), ctx, Conditions{Mask: hint})
			if eps.Size(1) != 4 {
				t.Fatalf("ε %v", eps.Shape())
			}
		})
	})
	c.HintChannels = -1
	if _, err := New(c, torch.CPU, 1); err == nil {
		t.Fatal("negative hint_channels accepted")
	}
}
