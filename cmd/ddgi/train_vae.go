package main

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"ddgi/data"
	"ddgi/diffusion/vae"
	"ddgi/internal/imageio"
	prog "ddgi/internal/progress"
	"ddgi/train"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
)

func init() {
	registerIn("train", command{name: "vae", summary: "train the latent KL autoencoder on SynthFace; resumable", run: runTrainVAE})
}

type vaeState struct {
	Step   int64      `json:"step"`
	Seed   uint64     `json:"seed"`
	Config vae.Config `json:"config"`
}

func runTrainVAE(args []string) error {
	fs := newFlags("train vae", "[flags]")
	preset := fs.String("preset", "small64", "autoencoder preset: tiny or small64")
	out := fs.String("out", "runs/vae", "run folder (resumes when it holds a checkpoint)")
	steps := fs.Int64("steps", 3000, "optimizer steps")
	batchSize := fs.Int("batch", 16, "images per step")
	lr := fs.Float64("lr", 5e-4, "peak learning rate (Adam, cosine decay)")
	klW := fs.Float64("kl", 1e-6, "KL weight (SD uses 1e-6)")
	nTrain := fs.Int("n", 6000, "SynthFace training images rendered once and held in memory")
	nBench := fs.Int("bench", 256, "SynthFace-bench images for PSNR and the latent scale")
	ckptMin := fs.Float64("ckpt-minutes", 3, "minutes between checkpoints")
	seed := fs.Uint64("seed", 1, "initialisation and sampling seed")
	export := fs.String("export", "", "also write the weights here at the end (fp16), e.g. weights/vae_small64.safetensors")
	grid := fs.String("grid", "", "also write a bench reconstruction grid here (originals above reconstructions)")
	workers := fs.Int("workers", 2, "render workers")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := vae.Preset(*preset)
	if err != nil {
		return err
	}
	if *batchSize < 1 || *nTrain < *batchSize || *nBench < 8 || *nBench > data.BenchSize {
		return errors.New("need --batch ≥ 1, --n ≥ --batch, 8 ≤ --bench ≤ 2000")
	}
	run, err := train.Open(*out)
	if err != nil {
		return err
	}
	st := vaeState{Seed: *seed, Config: cfg}
	resumed, err := run.LoadState(&st)
	if err != nil {
		return err
	}
	store := nn.NewStore(torch.CPU, st.Seed)
	model := vae.New(store.Root(), st.Config)
	opt := optim.NewAdam(optim.DefaultAdam(*lr))
	if resumed {
		if err := loadCheckpoint(run, store, opt, st.Step); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "vae %s: %d parameters, factor %d\n", *preset, store.NumParams(), st.Config.Factor())
	size := int(st.Config.Resolution)
	trainSet, bench, err := renderSplits(*nTrain, *nBench, size, *workers)
	if err != nil {
		return err
	}
	save := func() error { return saveCheckpoint(run, store, opt, st.Config, st, "vae "+*preset) }
	bar := prog.New("train vae", st.Step, *steps, "step")
	ckpt := train.NewCheckpointer(time.Duration(*ckptMin * float64(time.Minute)))
	g := torch.NewGenerator(st.Seed + uint64(st.Step))
	for st.Step < *steps {
		rng := rand.New(rand.NewPCG(st.Seed, uint64(st.Step)))
		idx := rng.Perm(len(trainSet.captions))[:*batchSize]
		flip := rng.IntN(2) == 0
		opt.SetLR(*lr * (0.1 + 0.9*0.5*(1+math.Cos(math.Pi*float64(st.Step)/float64(*steps)))))
		var rec map[string]float64
		err := torch.Try(func() {
			torch.Scoped(func() {
				x := trainSet.batch(idx)
				if flip {
					x = x.Flip(3)
				}
				mean, logvar := model.Encode(x)
				y := model.Decode(model.Sample(mean, logvar, g))
				r, l1, perc := vae.ReconLoss(y, x)
				kl := vae.KL(mean, logvar)
				loss := r.Add(kl.MulScalar(*klW))
				loss.Backward()
				opt.Update(store.Trainable())
				// the weighted KL term: raw KL (thousands of nats) would flatten the plot
				rec = map[string]float64{"loss": loss.Item(), "l1": l1.Item(), "perceptual": perc.Item(), "kl_term": kl.Item() * *klW}
			})
		})
		if err != nil {
			return err
		}
		st.Step++
		if st.Step%20 == 0 {
			if err := run.Log(st.Step, rec); err != nil {
				return err
			}
		}
		bar.Set(st.Step, rec)
		if err := ckpt.MaybeSave(false, save); err != nil {
			return err
		}
	}
	bar.Finish()
	if err := save(); err != nil {
		return err
	}
	psnr, scale, err := vaeBench(model, bench, *grid)
	if err != nil {
		return err
	}
	st.Config.Scale = scale
	fmt.Printf("bench (%d images): reconstruction PSNR %.2f dB (posterior mean), latent std %.4f → scale factor %.4f\n", *nBench, psnr, 1/scale, scale)
	// Bench rows go to their own log: a run's plot needs uniform rows.
	evalRun, err := train.Open(run.Path("eval"))
	if err != nil {
		return err
	}
	if err := evalRun.Log(st.Step, map[string]float64{"bench_psnr": psnr, "scale_factor": scale}); err != nil {
		return err
	}
	if err := save(); err != nil {
		return err
	}
	if *export != "" {
		if err := os.MkdirAll(filepath.Dir(*export), 0o755); err != nil {
			return err
		}
		if err := store.Save(*export, nn.SaveOptions{Config: st.Config, Half: true}); err != nil {
			return err
		}
		// fp16 must not cost quality: re-measure from the written file.
		m2, _, err := vae.Load(*export, torch.CPU)
		if err != nil {
			return err
		}
		p2, _, err := vaeBench(m2, bench, "")
		if err != nil {
			return err
		}
		fmt.Printf("wrote %s (fp16): bench PSNR %.2f dB\n", *export, p2)
	}
	return nil
}

// vaeBench reconstructs the bench images through the posterior mean and
// returns the mean PSNR and 1/std of the latents (the scale factor);
// grid, when set, receives 8 originals above their reconstructions.
func vaeBench(model *vae.Autoencoder, bench *pairs, grid string) (psnr, scale float64, err error) {
	n := len(bench.captions)
	err = torch.Try(func() {
		torch.NoGrad(func() {
			var sum, sq, cnt float64
			for lo := 0; lo < n; lo += 32 {
				torch.Scoped(func() {
					idx := make([]int, 0, 32)
					for i := lo; i < min(lo+32, n); i++ {
						idx = append(idx, i)
					}
					x := bench.batch(idx)
					mean, _ := model.Encode(x)
					y := model.Decode(mean)
					psnr += vae.PSNR(y, x) * float64(len(idx))
					sum += mean.SumAll().Item()
					sq += mean.Square().SumAll().Item()
					cnt += float64(mean.Numel())
					if lo == 0 && grid != "" {
						k := int64(min(8, len(idx)))
						both := torch.Cat([]*torch.Tensor{x.Narrow(0, 0, k), y.Narrow(0, 0, k).Clamp(-1, 1)}, 0)
						if e := imageio.SaveTensorGrid(grid, both, int(k)); e != nil {
							panic(&torch.Error{Op: "grid", Msg: e.Error()})
						}
					}
				})
			}
			psnr /= float64(n)
			mu := sum / cnt
			scale = 1 / math.Sqrt(sq/cnt-mu*mu)
		})
	})
	return psnr, scale, err
}
