package inversion

import "ddgi/torch"

// Perceptual is F, an LPIPS-style distance: [B] distances of [B,3,H,W] pairs.
type Perceptual interface {
	Distance(a, b *torch.Tensor) *torch.Tensor
}

// Identity is R, an ArcFace-style embedder: [B,D] unit embeddings.
type Identity interface {
	Embed(x *torch.Tensor) *torch.Tensor
}

// Weights are the λ of Eqs. 6 and 7. The defaults are pSp's for faces
// (L2 1, LPIPS 0.8, ID 0.1, latent norm 0.005); the paper does not list its own.
type Weights struct {
	L2, LPIPS, ID, Reg float64
}

// DefaultWeights returns pSp's face-inversion weights.
func DefaultWeights() Weights { return Weights{L2: 1, LPIPS: 0.8, ID: 0.1, Reg: 0.005} }

// Terms are the parts of a loss, for logging.
type Terms struct {
	Total, L2, LPIPS, ID, Reg *torch.Tensor
}

// Values copies the terms out as numbers.
func (t Terms) Values() map[string]float64 {
	out := map[string]float64{}
	for k, v := range map[string]*torch.Tensor{"loss": t.Total, "l2": t.L2, "lpips": t.LPIPS, "id": t.ID, "reg": t.Reg} {
		if v != nil {
			out[k] = v.Item()
		}
	}
	return out
}

// PixelL2 is ‖a − b‖₂² averaged over pixels (pSp's L2 term).
func PixelL2(a, b *torch.Tensor) *torch.Tensor { return torch.MSELoss(a, b, torch.ReduceMean) }

// IdentityLoss is 1 − cos(R(a), R(b)), averaged over the batch.
func IdentityLoss(r Identity, a, b *torch.Tensor) *torch.Tensor {
	ea, eb := r.Embed(a), r.Embed(b)
	cos := ea.Mul(eb).Sum([]int64{1}, false).Div(ea.Norm(2, []int64{1}, false).Mul(eb.Norm(2, []int64{1}, false)).ClampMin(1e-8))
	return cos.RSubScalar(1).MeanAll()
}

// LatentRegularizer is ‖w − w̄‖₂ averaged over the batch: it keeps codes
// near the GAN's well-behaved region.
func LatentRegularizer(w, wavg *torch.Tensor) *torch.Tensor {
	return w.Sub(wavg).Flatten(1, 2).Norm(2, []int64{1}, false).MeanAll()
}

func weighted(lam Weights, target, idTarget, out, w, wavg *torch.Tensor, f Perceptual, r Identity) Terms {
	t := Terms{L2: PixelL2(out, target), Reg: LatentRegularizer(w, wavg)}
	t.Total = t.L2.MulScalar(lam.L2).Add(t.Reg.MulScalar(lam.Reg))
	if f != nil && lam.LPIPS != 0 {
		t.LPIPS = f.Distance(target, out).MeanAll()
		t.Total = t.Total.Add(t.LPIPS.MulScalar(lam.LPIPS))
	}
	if r != nil && lam.ID != 0 {
		t.ID = IdentityLoss(r, idTarget, out)
		t.Total = t.Total.Add(t.ID.MulScalar(lam.ID))
	}
	return t
}

// MappingLoss is Eq. 6, the loss of M (T frozen): L2, LPIPS and identity
// between I^gt and G(w^m_t), plus the pull of w^m_t toward w̄.
func MappingLoss(lam Weights, gt, out, wm, wavg *torch.Tensor, f Perceptual, r Identity) Terms {
	return weighted(lam, gt, gt, out, wm, wavg, f, r)
}

// ModulationLoss is Eq. 7, the loss of T (M frozen): L2 and LPIPS between
// the diffusion output I^d_0 and G(w_t), identity against I^gt, plus the
// pull of w_t toward w̄.
func ModulationLoss(lam Weights, d0, gt, out, w, wavg *torch.Tensor, f Perceptual, r Identity) Terms {
	return weighted(lam, d0, gt, out, w, wavg, f, r)
}
