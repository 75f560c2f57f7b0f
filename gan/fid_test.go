package gan

import (
	"math"
	"testing"

	"ddgi/torch"
)

// TestPixelFeatures: a constant image gives 192 features equal to it.
func TestPixelFeatures(t *testing.T) {
	torch.Scoped(func() {
		f := PixelFeatures(torch.Full([]int64{2, 3, 64, 64}, 0.25, torch.Float32, torch.CPU))
		if len(f) != 2 || len(f[0]) != 3*PixelFeatureSide*PixelFeatureSide {
			t.Fatalf("features %d×%d", len(f), len(f[0]))
		}
		for _, v := range f[1] {
			if math.Abs(v-0.25) > 1e-6 {
				t.Fatalf("feature %g, want 0.25", v)
			}
		}
	})
}
