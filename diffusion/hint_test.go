package diffusion

import (
	"encoding/json"
	"strings"
	"testing"

	"ddgi/kinds"
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
	n, err := m.AddControl(kinds.Mask, 2)
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

// TestHintImage: a one-hot mask becomes its classes' palette colours and a
// scribble three equal channels, so ddgi's conditions drive public
// ControlNets; a 3-channel branch takes them directly.
func TestHintImage(t *testing.T) {
	torch.NoGrad(func() {
		torch.Scoped(func() {
			labels := torch.FromInt64([]int64{0, 1, 13, 18}, 1, 2, 2)
			oneHot := torch.OneHot(labels, 19).Permute(0, 3, 1, 2).To(torch.Float32)
			rgb := HintImage(oneHot, nil)
			got := rgb.MulScalar(255).Round().Float32s()
			// channel-major [1,3,2,2]: R of the 4 pixels, then G, then B
			want := []float32{0, 204, 0, 0, 0, 0, 0, 204, 0, 0, 204, 0}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("palette image %v, want %v", got, want)
				}
			}
			scr := torch.Rand(torch.NewGenerator(1), []int64{2, 1, 4, 4}, torch.Float32, torch.CPU)
			if d := HintImage(scr, nil).Narrow(1, 2, 1).Sub(scr).Abs().MaxAll().Item(); d != 0 {
				t.Fatalf("scribble channels differ by %g", d)
			}
		})
	})
}
