package metrics

import "fmt"

// Confusion accumulates a class confusion matrix over many masks: the
// basis of pixel accuracy (ACC) and mean IoU against the input mask.
type Confusion struct {
	Classes int
	M       []int64 // M[target*Classes+pred]
}

// NewConfusion returns an empty k-class matrix.
func NewConfusion(k int) *Confusion { return &Confusion{Classes: k, M: make([]int64, k*k)} }

// Add counts one or more label maps of equal length.
func (c *Confusion) Add(pred, target []int64) error {
	if len(pred) != len(target) {
		return fmt.Errorf("confusion: %d predictions for %d targets", len(pred), len(target))
	}
	for i, t := range target {
		p := pred[i]
		if t < 0 || int(t) >= c.Classes || p < 0 || int(p) >= c.Classes {
			return fmt.Errorf("confusion: label out of range (pred %d, target %d)", p, t)
		}
		c.M[int(t)*c.Classes+int(p)]++
	}
	return nil
}

// PixelAccuracy is the fraction of pixels whose predicted label matches.
func (c *Confusion) PixelAccuracy() float64 {
	var hit, all int64
	for t := 0; t < c.Classes; t++ {
		for p := 0; p < c.Classes; p++ {
			all += c.M[t*c.Classes+p]
			if p == t {
				hit += c.M[t*c.Classes+p]
			}
		}
	}
	if all == 0 {
		return 0
	}
	return float64(hit) / float64(all)
}

// IoU returns each class's intersection over union, NaN for a class absent
// from both prediction and target.
func (c *Confusion) IoU() []float64 {
	k := c.Classes
	out := make([]float64, k)
	for i := 0; i < k; i++ {
		inter := c.M[i*k+i]
		var rowSum, colSum int64
		for j := 0; j < k; j++ {
			rowSum += c.M[i*k+j]
			colSum += c.M[j*k+i]
		}
		union := rowSum + colSum - inter
		if union == 0 {
			out[i] = nan
			continue
		}
		out[i] = float64(inter) / float64(union)
	}
	return out
}

// MeanIoU averages IoU over classes present in prediction or target of the
// accumulated set (the usual dataset-level mIoU).
func (c *Confusion) MeanIoU() float64 {
	var s float64
	n := 0
	for _, v := range c.IoU() {
		if v == v {
			s += v
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}
