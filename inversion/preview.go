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
				mOnly := stage == 1 || tr.Cfg.Ablation == MOnly
				g := torch.NewGenerator(tr.Cfg.Seed + 7)
				T := tr.E.Timesteps()
				zT := tr.E.Prior(int64(n), g)
				noise := torch.Randn(g, zT.Shape(), torch.Float32, zT.Device())
				// In chunks of the training batch, each pass in a scope of its
				// own: a full-size U-Net pass holds its activations until its
				// scope closes, and the grid must cost no more memory than a
				// step.
				var inferredRows, noisedRows []*torch.Tensor
				chunk := max(tr.Cfg.Batch, 1)
				for lo := 0; lo < n; lo += chunk {
					k := min(chunk, n-lo)
					rows := func(x *torch.Tensor) *torch.Tensor {
						if x == nil {
							return nil
						}
						return x.Narrow(0, int64(lo), int64(k))
					}
					cond := Condition{Kind: tr.Cfg.Cond, Mask: rows(b.Mask), Scribble: rows(b.Scribble)}
					caps := b.Captions[lo : lo+k]
					render := func(zt func(steps *torch.Tensor) *torch.Tensor, t int) *torch.Tensor {
						rs := torch.NewScope()
						defer rs.Close()
						steps := torch.Full([]int64{int64(k)}, float64(t), torch.Int64, tr.Dev)
						h, f := tr.E.Features(zt(steps), steps, caps, cond)
						img := Render(tr.G, tr.Model.Invert(h, f, steps, mOnly).W, rows(b.Camera)).Clamp(-1, 1)
						rs.Keep(img)
						return img
					}
					inf := render(func(*torch.Tensor) *torch.Tensor { return rows(zT) }, T-1)
					noi := render(func(steps *torch.Tensor) *torch.Tensor {
						return tr.E.AddNoise(tr.E.Latents(rows(b.Image)), rows(noise), steps)
					}, T/2)
					inferredRows, noisedRows = append(inferredRows, inf), append(noisedRows, noi)
				}
				inferred, noised := torch.Cat(inferredRows, 0), torch.Cat(noisedRows, 0)
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
