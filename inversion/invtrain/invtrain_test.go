package invtrain

import (
	"context"
	"strings"
	"testing"

	"ddgi/face"
	"ddgi/torch"
)

// TestCUDARefusedBeforeLoading hands Run a CUDA device without a GPU:
// it must refuse at once, naming the networks that load on the CPU only,
// rather than fail on mixed devices after loading the set.
func TestCUDARefusedBeforeLoading(t *testing.T) {
	err := Run(context.Background(), Options{Out: t.TempDir(), Face: face.Options{Weights: t.TempDir(), Device: torch.CUDA(0)}})
	if err == nil || !strings.Contains(err.Error(), "CPU only") || !strings.Contains(err.Error(), "cuda:0") {
		t.Fatalf("Run with cuda:0: %v", err)
	}
}
