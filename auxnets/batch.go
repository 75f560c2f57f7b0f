package auxnets

import (
	"context"

	"ddgi/data"
	"ddgi/internal/progress"
	"ddgi/nn"
	"ddgi/torch"
)

// Augment applies per-image colour jitter (brightness, contrast,
// saturation), a random Gaussian blur (when blur is set) and Gaussian noise to [-1,1] images,
// so the nets also work on generated images. Flips are done on samples
// (data.Flip) because they must swap left/right labels.
func Augment(x *torch.Tensor, g *torch.Generator, blur bool) *torch.Tensor {
	n := x.Size(0)
	u := func() *torch.Tensor { return torch.Rand(g, []int64{n, 1, 1, 1}, torch.Float32, torch.CPU) }
	y := x.AddScalar(1).MulScalar(0.5)
	y = y.Mul(u().MulScalar(0.5).AddScalar(0.75))                                                                                                                                  // brightness ×[0.75,1.25]
	m := y.Mean([]int64{1, 2, 3}, true)                                                                                                                                            // contrast ×[0.7,1.3]
	y = y.Sub(m).Mul(u().MulScalar(0.6).AddScalar(0.7)).Add(m)                                                                                                                     //
	gray := y.Mean([]int64{1}, true)                                                                                                                                               // saturation ×[0.5,1.5]
	y = y.Sub(gray).Mul(u().AddScalar(0.5)).Add(gray)                                                                                                                              //
	y = y.Add(u().SubScalar(0.5).MulScalar(0.1).Mul(torch.Ones([]int64{1, 3, 1, 1}, torch.Float32, torch.CPU).Add(torch.Randn(g, []int64{n, 3, 1, 1}, torch.Float32, torch.CPU)))) // colour cast
	sig := float64(torch.Rand(g, []int64{1}, torch.Float32, torch.CPU).Item())
	if blur && sig < 0.4 { // a third of batches blurred, σ ∈ [0.3, 1.2]
		y = nn.Blur(y, 0.3+sig*2.25)
	}
	noise := u().MulScalar(0.04).Mul(torch.Randn(g, y.Shape(), torch.Float32, torch.CPU))
	return y.Add(noise).Clamp(0, 1).MulScalar(2).SubScalar(1)
}

// Cache renders every sample of ds once into memory with a progress line.
func Cache(ds data.Dataset, workers int, quiet bool, label string) ([]*data.Sample, error) {
	l, err := data.NewLoader(ds, data.LoaderOptions{BatchSize: 64, Workers: max(workers, 1)})
	if err != nil {
		return nil, err
	}
	out := make([]*data.Sample, 0, ds.Len())
	bar := progress.NewLogged(label, 0, int64(ds.Len()), "samples")
	for b := range l.Epoch(context.Background(), 0) {
		if b.Err != nil {
			return nil, b.Err
		}
		out = append(out, b.Samples...)
		if !quiet {
			bar.Set(int64(len(out)), nil)
		}
	}
	if !quiet {
		bar.Finish()
	}
	return out, nil
}

// InChunks runs f on consecutive chunks of n samples, each inside its own
// scope and without gradients.
func InChunks(ss []*data.Sample, n int, f func(lo int, b []*data.Sample)) {
	for lo := 0; lo < len(ss); lo += n {
		b := ss[lo:min(lo+n, len(ss))]
		torch.Scoped(func() { torch.NoGrad(func() { f(lo, b) }) })
	}
}
