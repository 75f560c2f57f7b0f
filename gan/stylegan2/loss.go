package stylegan2

import (
	"math"

	"ddgi/torch"
)

// GLoss is the non-saturating logistic generator loss (Goodfellow et al.
// 2014; StyleGAN2 §2): E[softplus(−D(G(z)))].
func GLoss(fakeLogits *torch.Tensor) *torch.Tensor {
	return fakeLogits.Neg().Softplus(1, 20).MeanAll()
}

// DLoss is the logistic discriminator loss: E[softplus(D(G(z)))] +
// E[softplus(−D(x))].
func DLoss(realLogits, fakeLogits *torch.Tensor) *torch.Tensor {
	return fakeLogits.Softplus(1, 20).MeanAll().Add(realLogits.Neg().Softplus(1, 20).MeanAll())
}

// R1Penalty is Mescheder et al. 2018 Eq. 9, R1 = γ/2 · E[‖∇ₓD(x)‖²] on real
// data, differentiable with respect to D's parameters (the gradient is
// taken with CreateGraph). reals must require grad and realLogits depend on
// them; with several inputs (EG3D's dual images) their squared gradient
// norms add up.
func R1Penalty(realLogits *torch.Tensor, reals []*torch.Tensor, gamma float64) *torch.Tensor {
	grads := torch.Grad([]*torch.Tensor{realLogits.SumAll()}, reals, torch.GradOpts{CreateGraph: true, RetainGraph: true})
	var sq *torch.Tensor
	for _, g := range grads {
		s := g.Square().Flatten(1, -1).Sum([]int64{1}, false)
		if sq == nil {
			sq = s
		} else {
			sq = sq.Add(s)
		}
	}
	return sq.MeanAll().MulScalar(gamma / 2)
}

// PathLengthPenalty is StyleGAN2 Eq. 4: E[(‖J_wᵀ y‖₂ − a)²] with y ~ N(0, I)
// scaled by 1/√(HW) and a the running mean of the lengths. It returns the
// penalty and the batch's mean path length (to update a with decay 0.01).
func PathLengthPenalty(img, wplus *torch.Tensor, mean float64, rng *torch.Generator) (*torch.Tensor, float64) {
	return PathLengthPenaltyRows(img, wplus, mean, rng, nil)
}

// PathLengthPenaltyRows is PathLengthPenalty on one data-parallel rank's
// rows: y is drawn for the whole batch and the rank's rows kept. The mean
// length returned is the rank's; the mean over equal ranks is the batch's.
func PathLengthPenaltyRows(img, wplus *torch.Tensor, mean float64, rng *torch.Generator, rows *Rows) (*torch.Tensor, float64) {
	s := img.Shape()
	y := rows.Draw(s, func(s []int64) *torch.Tensor { return torch.Randn(rng, s, torch.Float32, img.Device()) }).
		MulScalar(1 / math.Sqrt(float64(s[2]*s[3])))
	g := torch.Grad([]*torch.Tensor{img.Mul(y).SumAll()}, []*torch.Tensor{wplus}, torch.GradOpts{CreateGraph: true, RetainGraph: true})[0]
	lengths := g.Square().Sum([]int64{2}, false).Mean([]int64{1}, false).Sqrt() // [B]
	batchMean := lengths.Detach().MeanAll().Item()
	return lengths.SubScalar(mean).Square().MeanAll(), batchMean
}
