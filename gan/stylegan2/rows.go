package stylegan2

import "ddgi/torch"

// Rows is one data-parallel rank's share of a global batch: rows Index
// (int64, N of them) of Total. A generator given Rows draws its random
// numbers for the whole batch and keeps the rank's rows, so each sample
// gets the noise one process would give it and every rank's generators
// stay in step (they all draw the same shapes). Nil is one process.
type Rows struct {
	Index    *torch.Tensor
	N, Total int64
}

// Draw returns draw(shape) for a batch whose first dimension is the
// rank's row count; other shapes are drawn as they are.
func (r *Rows) Draw(shape []int64, draw func(shape []int64) *torch.Tensor) *torch.Tensor {
	if r == nil || len(shape) == 0 || shape[0] != r.N || r.N == r.Total {
		return draw(shape)
	}
	full := append([]int64{r.Total}, shape[1:]...)
	x := draw(full)
	return x.IndexSelect(0, r.Index.ToDevice(x.Device()))
}
