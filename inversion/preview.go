package inversion

import (
	"fmt"
	"image"

	"ddgi/imagebatch"
	"ddgi/internal/imageio"
	"ddgi/kinds"
	"ddgi/synthface"
	"ddgi/torch"
)

// previewRows is how many fixed samples a preview grid shows.
const previewRows = 6

// Preview renders a grid of fixed samples (Trainer.PreviewData, else the first
// training samples), one row each: ground truth, condition, the inference
// output (one pass on z_T at t = T−1, as `ddgi generate` does) and the
// output from the ground truth noised to t = T/2 (what training sees),
// captioned truth | mask or scribble | t=999 | gt@500.
// Stage 1 shows w^m, stage 2 the modulated w: the stage of the last step
// done (train.Previewer).
func (tr *Trainer) Preview(path string) error {
	stage := tr.Cfg.stageOf(int(max(tr.done-1, 0)))
	ds := tr.PreviewData
	if ds == nil {
		ds = tr.Data
	}
	n := min(previewRows, ds.Len())
	var tiles []image.Image
	var caps []string
	err := torch.Try(func() {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				b := imagebatch.Get(ds, 0, n, tr.Dev)
				cond := Condition{Kind: tr.Cfg.Cond, Mask: b.Mask, Scribble: b.Scribble}
				mOnly := stage == 1 || tr.Cfg.Ablation == MOnly
				g := torch.NewGenerator(tr.Cfg.Seed + 7)
				render := func(zt *torch.Tensor, t int) *torch.Tensor {
					steps := torch.Full([]int64{int64(n)}, float64(t), torch.Int64, tr.Dev)
					h, f := tr.E.Features(zt, steps, b.Captions, cond)
					return Render(tr.G, tr.Model.Invert(h, f, steps, mOnly).W, b.Camera).Clamp(-1, 1)
				}
				T := tr.E.Timesteps()
				inferred := render(tr.E.Prior(int64(n), g), T-1)
				half := torch.Full([]int64{int64(n)}, float64(T/2), torch.Int64, tr.Dev)
				z0 := tr.E.Latents(b.Image)
				noised := render(tr.E.AddNoise(z0, torch.Randn(g, z0.Shape(), torch.Float32, z0.Device()), half), T/2)
				gt := resizeTo(b.Image, inferred)
				cols := [][]image.Image{mustImages(gt), nil, mustImages(inferred), mustImages(noised)}
				for _, s := range b.Samples {
					var c image.Image
					if tr.Cfg.Cond == kinds.Scribble {
						c = imageio.Gray(s.Scribble, s.Size, s.Size)
					} else {
						c = imageio.RGB(synthface.ColorizeMask(s.Mask), s.Size, s.Size)
					}
					cols[1] = append(cols[1], c)
				}
				names := []string{"truth", string(tr.Cfg.Cond), fmt.Sprintf("t=%d", T-1), fmt.Sprintf("gt@%d", T/2)}
				for i := 0; i < n; i++ {
					for k, col := range cols {
						tiles = append(tiles, col[i])
						caps = append(caps, names[k])
					}
				}
			})
		})
	})
	if err != nil {
		return err
	}
	return imageio.SavePNG(path, imageio.Grid(tiles, caps, 4, 2))
}

func mustImages(t *torch.Tensor) []image.Image {
	pics, err := imageio.FromTensor(t)
	if err != nil {
		panic(&torch.Error{Op: "preview", Msg: err.Error()})
	}
	return pics
}
