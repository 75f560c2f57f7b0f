package torch

import (
	"fmt"
	"testing"
)

// TestAttentionTiles: Attention equals softmax(q·kᵀ)·v made whole, per
// head, for maps smaller and larger than one tile, and refuses what it
// cannot serve.
func TestAttentionTiles(t *testing.T) {
	g := NewGenerator(2)
	for _, c := range []struct{ b, n, m, heads, d int64 }{{1, 5, 7, 1, 3}, {2, 77, 77, 4, 8}, {1, 300, 500, 2, 16}, {2, 33, 1, 3, 5}} {
		Scoped(func() {
			q := Randn(g, []int64{c.b, c.n, c.heads * c.d}, Float32, CPU)
			k := Randn(g, []int64{c.b, c.m, c.heads * c.d}, Float32, CPU)
			v := Randn(g, []int64{c.b, c.m, c.heads * c.d}, Float32, CPU)
			if !FusedAttention(q, k, v) {
				t.Skip("no cblas_sgemm for Attention")
			}
			got, none := Attention(q, k, v, c.heads, false)
			withMaps, probs := Attention(q, k, v, c.heads, true)
			if none != nil {
				t.Error("probabilities returned unasked")
			}
			if d := got.Sub(withMaps).Abs().MaxAll().Item(); d != 0 {
				t.Errorf("%+v: keeping the maps changes the output by %g", c, d)
			}
			split := func(x *Tensor, l int64) *Tensor { return x.Reshape(c.b, l, c.heads, c.d).Permute(0, 2, 1, 3) }
			p := split(q, c.n).Matmul(split(k, c.m).Transpose(2, 3)).Softmax(-1)
			want := p.Matmul(split(v, c.m)).Permute(0, 2, 1, 3).Reshape(c.b, c.n, c.heads*c.d)
			if d := got.Sub(want).Abs().MaxAll().Item(); d > 1e-5 {
				t.Errorf("%+v: max diff %g", c, d)
			}
			if d := probs.Sub(p).Abs().MaxAll().Item(); d > 1e-6 {
				t.Errorf("%+v: probabilities off by %g", c, d)
			}
		})
	}
	Scoped(func() {
		q := Randn(g, []int64{1, 4, 6}, Float32, CPU)
		if err := Try(func() { Attention(q, q, q, 4, false) }); err == nil {
			t.Error("6 wide over 4 heads: no error")
		}
		if err := Try(func() { Attention(q, q.Narrow(1, 0, 2), q, 2, false) }); err == nil {
			t.Error("k and v of different lengths: no error")
		}
		w := q.Clone().SetRequiresGrad(true)
		if FusedAttention(w, q, q) {
			t.Error("FusedAttention on a recorded tensor")
		}
	})
}

// TestLinearKernels: Linear on ddgi's own kernels — dot tiles (where the
// CPU has AVX-512) and the few-row split over OpenBLAS calls — equals
// x·wᵀ + b as libtorch computes it, with and without bias, for shapes that
// do and do not fill the tiles and blocks evenly (k not a multiple of 16,
// n not of 6); and leaves what they do not serve to libtorch.
func TestLinearKernels(t *testing.T) {
	defer SetThreads(Threads())
	defer setLinearKernel(setLinearKernel(-1))
	SetThreads(2)
	g := NewGenerator(3)
	cases := []struct {
		rows []int64
		k, n int64
		bias bool
	}{{[]int64{77}, 768, 768, true}, {[]int64{2, 77}, 64, 100, false}, {[]int64{3}, 5, 1000, true},
		{[]int64{1, 1}, 33, 64, true}, {[]int64{1100}, 40, 70, true}, {[]int64{8}, 17, 5, true}, {[]int64{130}, 3072, 13, false}}
	for _, kernel := range []int{linearDot, linearCBLAS} {
		if setLinearKernel(kernel); setLinearKernel(-1) != kernel || (kernel == linearCBLAS && !attentionReady()) {
			t.Logf("kernel %d not available here", kernel)
			continue
		}
		for _, c := range cases {
			Scoped(func() {
				x := Randn(g, append(append([]int64{}, c.rows...), c.k), Float32, CPU)
				w := Randn(g, []int64{c.n, c.k}, Float32, CPU)
				var b *Tensor
				want := x.Matmul(w.Transpose(0, 1))
				if c.bias {
					b = Randn(g, []int64{c.n}, Float32, CPU)
					want = want.Add(b)
				}
				before := linearCalls(kernel)
				got := Linear(x, w, b)
				rows := int64(1)
				for _, r := range c.rows {
					rows *= r
				}
				served := kernel == linearDot || (rows <= 1024 && c.n >= 64)
				if took := linearCalls(kernel) > before; took != served {
					t.Errorf("kernel %d %+v: taken %v", kernel, c, took)
				}
				if d := got.Sub(want).Abs().MaxAll().Item(); d > 1e-4*float64(c.k)/64+1e-5 {
					t.Errorf("kernel %d %+v: max diff %g", kernel, c, d)
				}
			})
		}
		Scoped(func() {
			x := Randn(g, []int64{4, 16}, Float32, CPU)
			w := Randn(g, []int64{64, 16}, Float32, CPU).SetRequiresGrad(true)
			before := linearCalls(kernel)
			y := Linear(x, w, nil)
			if linearCalls(kernel) != before {
				t.Errorf("kernel %d taken for a recorded weight", kernel)
			}
			y.SumAll().Backward()
			if w.Grad() == nil {
				t.Error("no gradient through Linear")
			}
		})
	}
}

// BenchmarkLinearKernels times Linear's inference products on CLIP-L's and
// SD1.5's shapes (rows × in → out) with each kernel:
// go test -run '^$' -bench LinearKernels ./torch (docs/engine.md, "Inference kernels").
func BenchmarkLinearKernels(b *testing.B) {
	defer setLinearKernel(setLinearKernel(-1))
	g := NewGenerator(1)
	for _, s := range []struct{ m, k, n int64 }{{77, 768, 768}, {154, 768, 3072}, {154, 3072, 768}, {1024, 640, 5120}, {4096, 320, 320}} {
		for _, kernel := range []struct {
			name string
			id   int
		}{{"dot", linearDot}, {"cblas", linearCBLAS}, {"libtorch", linearLibtorch}} {
			if setLinearKernel(kernel.id); setLinearKernel(-1) != kernel.id {
				continue
			}
			b.Run(fmt.Sprintf("%dx%dx%d/%s", s.m, s.k, s.n, kernel.name), func(b *testing.B) {
				Scoped(func() {
					x := Randn(g, []int64{s.m, s.k}, Float32, CPU)
					w := Randn(g, []int64{s.n, s.k}, Float32, CPU)
					bias := Randn(g, []int64{s.n}, Float32, CPU)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						Scoped(func() { Linear(x, w, bias) })
					}
					b.ReportMetric(float64(2*s.m*s.k*s.n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			})
		}
	}
}
