package nn

import (
	"testing"

	"ddgi/torch"
)

// BenchmarkSelfAttention64Latent is one of SD1.5's self-attention layers at
// a 64² latent (4,096 tokens, width 320, 8 heads) without gradients: the
// layer generate runs seven times (U-Net and ControlNet). Its two 537 MB
// maps are what torch.HugePages was measured on: DDGI_MALLOC=default
// (4 KiB pages) against the default.
func BenchmarkSelfAttention64Latent(b *testing.B) {
	s := NewStore(torch.CPU, 1)
	a := NewMultiHeadAttention(s.Root().Sub("attn"), 320, 320, 320, 8)
	x := torch.Randn(torch.NewGenerator(2), []int64{1, 4096, 320}, torch.Float32, torch.CPU)
	torch.NoGrad(func() {
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			torch.Scoped(func() { a.Forward(x, nil, nil, false) })
		}
	})
}
