package main

import (
	"fmt"
	"math"
	"time"

	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/internal/progress"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
)

func init() {
	register(command{name: "selfcheck", summary: "check the engine: versions, a gradient check and a short training run on SynthFace", run: runSelfcheck})
}

// runSelfcheck trains a small conv autoencoder on SynthFace faces for a few
// seconds and fails unless its loss falls: the end-to-end check that
// libtorch, the data pipeline and autograd work on this machine.
func runSelfcheck(args []string) error {
	fs := newFlags("selfcheck", "[-steps 60] [-device cpu]")
	steps := fs.Int("steps", 60, "training steps")
	devName := fs.String("device", "cpu", "cpu, cuda or cuda:N")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *steps < 10 || *steps > 100_000 {
		return fmt.Errorf("--steps %d: want 10…100000 (the check compares the first and last 5 steps' losses)", *steps)
	}
	dev, err := torch.ParseDevice(*devName)
	if err != nil {
		return err
	}
	if err := runVersion(nil); err != nil {
		return err
	}
	return torch.Try(func() {
		// Gradient check of a convolution in float64.
		torch.Scoped(func() {
			g := torch.NewGenerator(1)
			x := torch.Randn(g, []int64{1, 2, 5, 5}, torch.Float64, dev)
			w := torch.Randn(g, []int64{3, 2, 3, 3}, torch.Float64, dev).SetRequiresGrad(true)
			f := func(w *torch.Tensor) *torch.Tensor { return torch.Conv2d(x, w, nil, torch.Same(1, 1)).Tanh().SumAll() }
			an := torch.Grad([]*torch.Tensor{f(w)}, []*torch.Tensor{w}, torch.GradOpts{})[0].Float64s()
			v := w.Detach().Float64s()
			const eps = 1e-6
			for i := range v {
				p := append([]float64(nil), v...)
				p[i] += eps
				hi := f(torch.FromFloat64(p, 3, 2, 3, 3).ToDevice(dev)).Item()
				p[i] -= 2 * eps
				lo := f(torch.FromFloat64(p, 3, 2, 3, 3).ToDevice(dev)).Item()
				if num := (hi - lo) / (2 * eps); math.Abs(num-an[i]) > 1e-6*(1+math.Abs(num)) {
					panic(&torch.Error{Op: "selfcheck", Msg: fmt.Sprintf("conv gradient %d: autograd %g, finite difference %g", i, an[i], num)})
				}
			}
			fmt.Println("gradient check: conv2d autograd matches finite differences")
		})

		ds := data.NewSynthFace(data.Train, 32, 256)
		s := nn.NewStore(dev, 0)
		r := s.Root()
		enc1 := nn.NewConv2d(r.Sub("enc1"), 3, 32, 4, nn.Conv2dOpts{Stride: 2, Padding: 1})
		enc2 := nn.NewConv2d(r.Sub("enc2"), 32, 64, 4, nn.Conv2dOpts{Stride: 2, Padding: 1})
		dec1 := nn.NewConv2d(r.Sub("dec1"), 64, 32, 3, nn.Conv2dOpts{Padding: 1})
		dec2 := nn.NewConv2d(r.Sub("dec2"), 32, 3, 3, nn.Conv2dOpts{Padding: 1})
		opt := optim.NewAdam(optim.DefaultAdam(2e-3))
		var first, last, lastLoss float64
		t0 := time.Now()
		bar := progress.New("selfcheck training", 0, int64(*steps), "step")
		for step := 0; step < *steps; step++ {
			torch.Scoped(func() {
				x := imagebatch.Images(ds, step*8, 8, dev)
				h := enc2.Forward(enc1.Forward(x).Silu()).Silu()
				h = torch.Interpolate(h, 16, 16, torch.Nearest, false)
				h = dec1.Forward(h).Silu()
				y := dec2.Forward(torch.Interpolate(h, 32, 32, torch.Nearest, false)).Tanh()
				loss := torch.MSELoss(y, x, torch.ReduceMean)
				loss.Backward()
				opt.Update(s.Trainable())
				l := loss.Item()
				lastLoss = l
				if step < 5 {
					first += l / 5
				}
				if step >= *steps-5 {
					last += l / 5
				}
			})
			bar.Set(int64(step+1), map[string]float64{"loss": lastLoss})
		}
		bar.Finish()
		fmt.Printf("training: %d steps of a conv autoencoder on SynthFace 32² in %.1fs, loss %.4f → %.4f\n", *steps, time.Since(t0).Seconds(), first, last)
		if !(last < 0.7*first) {
			panic(&torch.Error{Op: "selfcheck", Msg: fmt.Sprintf("training loss did not fall enough (%.4f → %.4f)", first, last)})
		}
		fmt.Println("selfcheck: ok")
	})
}
