package torch

import "testing"

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
