package auxtrain

import (
	"fmt"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/synthface"
	"ddgi/torch"
	"ddgi/train"
)

// attrPairs renders, for sample k, the face (index 2k) and the same person,
// camera and light with resampled attributes (index 2k+1).
type attrPairs struct {
	split data.Split
	n     int
}

func (d attrPairs) Len() int { return 2 * d.n }
func (d attrPairs) Get(i int) (*data.Sample, error) {
	if i < 0 || i >= 2*d.n {
		return nil, fmt.Errorf("attr pairs: index %d out of range", i)
	}
	seed := d.split.Seed(i / 2)
	p := synthface.SampleParams(seed)
	if i%2 == 1 {
		p = synthface.ResampleAttributes(p, seed^0x5eed)
	}
	return data.FromFace(synthface.Render(p, auxnets.InputSize)), nil
}

type perceptualJob struct {
	base
	net   *auxnets.Perceptual
	cache []*data.Sample
}

func (j *perceptualJob) setCache(c []*data.Sample) { j.cache = c }
func (j *perceptualJob) dataset(o Options) data.Dataset {
	return attrPairs{split: data.Train, n: o.Samples / 2}
}

// levelDistances returns F's distances [kinds·levels, n] of every
// distortion of the pairs' faces: of the rank's rows of the batch (all of
// them in one process). The distortions are drawn for the whole batch, so
// each row gets the noise one process gives it.
func levelDistances(f *auxnets.Perceptual, base, changed []*data.Sample, g *torch.Generator, w *torch.Tensor, sh train.Shard) *torch.Tensor {
	x, xa := imagebatch.SampleImages(base), imagebatch.SampleImages(changed)
	all := x.Size(0)
	lo, n := sh.Rows(len(base))
	var diffs *torch.Tensor
	torch.NoGrad(func() {
		d := auxnets.Distort(x, xa, g) // [K·all,…], level-major
		k := d.Size(0) / all
		if int64(n) != all {
			s := d.Shape()
			d = d.Reshape(append([]int64{k, all}, s[1:]...)...).Narrow(1, int64(lo), int64(n)).
				Reshape(append([]int64{k * int64(n)}, s[1:]...)...)
			x = x.Narrow(0, int64(lo), int64(n))
		}
		diffs = f.ChannelDiffs(x.Repeat(k, 1, 1, 1), d)
	})
	return diffs.Mul(w).Sum([]int64{1}, false).Reshape(-1, int64(n))
}

// step calibrates F's channel weights on the rank's rows; the ranking loss
// is a mean over the pairs (each compares the distortions of one face), so
// the ranks' mean gradient is the batch's.
func (j *perceptualJob) step(ss []*data.Sample, idx []int, g *torch.Generator, frac float64, sh train.Shard) float64 {
	// The loop's flips are ignored: pairs must stay aligned.
	base, changed := splitPairs(idx, j.cache)
	d := levelDistances(j.net, base, changed, g, j.net.Weights(), sh)
	loss := rankingLoss(d)
	sh.Backward(loss, j.net.Store.Trainable())
	update(j.adam, j.net.Store, j.lr, frac)
	j.net.ProjectWeights()
	return loss.Item()
}

// splitPairs maps batch indices to (face, changed face) of the cache.
func splitPairs(idx []int, cache []*data.Sample) (base, changed []*data.Sample) {
	for _, i := range idx {
		base = append(base, cache[i&^1])
		changed = append(changed, cache[i|1])
	}
	return base, changed
}

// rankingLoss applies auxnets.CalibrationLoss to every ordered pair of
// levels within each distortion kind; d is [kinds·3, N].
func rankingLoss(d *torch.Tensor) *torch.Tensor {
	var loss *torch.Tensor
	for kind := int64(0); kind < d.Size(0)/3; kind++ {
		for a := int64(0); a < 3; a++ {
			for b := a + 1; b < 3; b++ {
				l := auxnets.CalibrationLoss(d.Select(0, 3*kind+a), d.Select(0, 3*kind+b))
				if loss == nil {
					loss = l
				} else {
					loss = loss.Add(l)
				}
			}
		}
	}
	return loss.DivScalar(float64(d.Size(0)))
}

// rankingAccuracy is the fraction of ordered level pairs F ranks right.
func rankingAccuracy(d []float64, levels, n int) float64 {
	var hit, all float64
	for kind := 0; kind < levels/3; kind++ {
		for a := 0; a < 3; a++ {
			for b := a + 1; b < 3; b++ {
				for i := 0; i < n; i++ {
					if d[(3*kind+b)*n+i] > d[(3*kind+a)*n+i] {
						hit++
					}
					all++
				}
			}
		}
	}
	return hit / all
}

// eval compares calibrated and uniform weights on bench pairs.
func (j *perceptualJob) eval(o Options) (Result, error) {
	bench, err := renderAll(attrPairs{split: data.Bench, n: o.EvalSamples}, o.Workers, o.Quiet, "render bench pairs")
	if err != nil {
		return nil, err
	}
	res := Result{}
	names := []string{"noise", "blur", "attr"}
	levels := [][]float64{auxnets.NoiseLevels, auxnets.BlurLevels, auxnets.AttrLevels}
	var all, allUniform [][]float64
	for lo := 0; lo+1 < len(bench); lo += 64 {
		b := bench[lo:min(lo+64, len(bench))]
		idx := make([]int, 0, len(b)/2)
		for i := 0; i+1 < len(b); i += 2 {
			idx = append(idx, i)
		}
		base, changed := splitPairs(idx, b)
		torch.Scoped(func() {
			g := torch.NewGenerator(uint64(lo) + 1)
			w := j.net.Weights().Detach()
			d := levelDistances(j.net, base, changed, g, w, train.Shard{})
			g = torch.NewGenerator(uint64(lo) + 1)
			u := levelDistances(j.net, base, changed, g, torch.Ones(w.Shape(), torch.Float32, torch.CPU), train.Shard{})
			all = append(all, d.Float64s())
			allUniform = append(allUniform, u.Float64s())
		})
	}
	acc := func(ds [][]float64) float64 {
		var s float64
		for _, d := range ds {
			s += rankingAccuracy(d, 9, len(d)/9)
		}
		return s / float64(len(ds))
	}
	res["ranking_acc_calibrated"], res["ranking_acc_uniform"] = acc(all), acc(allUniform)
	for k, name := range names {
		for l, v := range levels[k] {
			var s, n float64
			for _, d := range all {
				m := len(d) / 9
				for i := 0; i < m; i++ {
					s += d[(3*k+l)*m+i]
					n++
				}
			}
			res[fmt.Sprintf("mean_d_%s_%g", name, v)] = s / n
		}
	}
	return res, nil
}
