package inversion

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"ddgi/synthface"
	"ddgi/torch"
)

// Perceptual is F, an LPIPS-style distance: [B] distances of [B,3,H,W] pairs.
type Perceptual interface {
	Distance(a, b *torch.Tensor) *torch.Tensor
}

// Identity is R, an ArcFace-style embedder: [B,D] unit embeddings.
type Identity interface {
	Embed(x *torch.Tensor) *torch.Tensor
}

// AttributeCritic is a frozen attribute classifier: [B,K] logits over
// synthface.AttributeNames (and possibly more outputs after them) for
// images [B,3,H,W] in [-1,1].
type AttributeCritic interface {
	Logits(x *torch.Tensor) *torch.Tensor
}

// Weights are the λ of Eqs. 6 and 7. The defaults are pSp's for faces
// (L2 1, LPIPS 0.8, ID 0.1, latent norm 0.005); the paper does not list its own.
// Attr weighs ddgi's prompt-attribute term (PromptAttributeLoss, not in
// the paper); 0 leaves the paper's losses alone.
type Weights struct {
	L2, LPIPS, ID, Reg float64
	Attr               float64 `json:",omitempty"`
	// AttrFocus weighs attributes (AttributeNames) inside the
	// prompt-attribute term; an attribute not named counts 1.
	AttrFocus map[string]float64 `json:",omitempty"`
	// Anchor is ddgi's fidelity anchor for the stages that learn from
	// I^d_0 (AnchoredModulationLoss, not in the paper); 0: Eq. 7 alone.
	Anchor float64 `json:",omitempty"`
}

// DefaultWeights returns pSp's face-inversion weights.
func DefaultWeights() Weights { return Weights{L2: 1, LPIPS: 0.8, ID: 0.1, Reg: 0.005} }

// Terms are the parts of a loss, for logging.
type Terms struct {
	Total, L2, LPIPS, ID, Reg, Attr *torch.Tensor
}

// Values copies the terms out as numbers.
func (t Terms) Values() map[string]float64 {
	out := map[string]float64{}
	for k, v := range map[string]*torch.Tensor{"loss": t.Total, "l2": t.L2, "lpips": t.LPIPS, "id": t.ID, "reg": t.Reg, "attr": t.Attr} {
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

// AnchoredModulationLoss is ddgi's fidelity anchor on Eq. 7 (not in the
// paper): its L2 and LPIPS terms taken against I^d_0 with weight 1 − a and
// against I^gt with weight a. I^d_0 shows what the prompt asks; I^gt keeps
// the details the table's fidelity columns compare against. The logged
// terms stay Eq. 7's.
func AnchoredModulationLoss(lam Weights, a float64, d0, gt, out, w, wavg *torch.Tensor, f Perceptual, r Identity) Terms {
	t := ModulationLoss(lam, d0, gt, out, w, wavg, f, r)
	if a == 0 {
		return t
	}
	recon := func(target *torch.Tensor) *torch.Tensor {
		x := PixelL2(out, target).MulScalar(lam.L2)
		if f != nil && lam.LPIPS != 0 {
			x = x.Add(f.Distance(target, out).MeanAll().MulScalar(lam.LPIPS))
		}
		return x
	}
	t.Total = t.Total.Add(recon(gt).Sub(recon(d0)).MulScalar(a))
	return t
}

// ParseAttrFocus reads "Smiling=3,Young=2" (names of
// synthface.AttributeNames in any case, weights > 0) into AttrFocus form,
// names spelt as AttributeNames spells them; "" is none.
func ParseAttrFocus(s string) (map[string]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.TrimSpace(name)
		w, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("attribute focus %q: want NAME=WEIGHT", part)
		}
		if i := synthface.AttributeIndex(name); i >= 0 {
			name = synthface.AttributeNames[i]
		}
		out[name] = w
	}
	if _, err := AttrFocusRow(out, int64(len(synthface.AttributeNames))); err != nil {
		return nil, err
	}
	return out, nil
}

// AttrFocusRow is focus as one weight per attribute of k (names of
// synthface.AttributeNames, case-insensitive; the rest weigh 1), nil for
// no focus; it refuses unknown names and weights that are not finite and
// positive.
func AttrFocusRow(focus map[string]float64, k int64) ([]float32, error) {
	if len(focus) == 0 {
		return nil, nil
	}
	row := make([]float32, k)
	for i := range row {
		row[i] = 1
	}
	for name, w := range focus {
		i := synthface.AttributeIndex(name)
		if i < 0 || int64(i) >= k {
			return nil, fmt.Errorf("attribute focus: unknown attribute %q (one of CelebA's 40, e.g. Smiling, Young, Eyeglasses)", name)
		}
		if !(w > 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("attribute focus %s=%g: want a finite weight > 0", name, w)
		}
		row[i] = float32(w)
	}
	return row, nil
}

// FocusStated weighs each stated attribute of stated [B,k] by row
// (AttrFocusRow; nil: unchanged), so PromptAttributeLoss, which averages
// over what an image states, gives the focused attributes that share of
// each image's term.
func FocusStated(stated *torch.Tensor, row []float32) *torch.Tensor {
	if row == nil {
		return stated
	}
	return stated.Mul(torch.FromFloat32(row, 1, int64(len(row))).ToDevice(stated.Device()))
}

// CriticSize is the side the attribute critic sees: the aux nets are
// trained on 64² renders, so larger renders are area-pooled to it.
const CriticSize = 64

// StatedAttributes turns prompts into the targets of PromptAttributeLoss:
// targets [B,k] holds each attribute a prompt states (synthface.
// CaptionAttributes) as 0/1 and stated [B,k] marks which are stated.
func StatedAttributes(prompts []string, k int64, dev torch.Device) (targets, stated *torch.Tensor) {
	b := int64(len(prompts))
	y := make([]float32, b*k)
	m := make([]float32, b*k)
	for i, p := range prompts {
		for _, a := range synthface.CaptionAttributes(p) {
			if int64(a.Index) >= k {
				continue
			}
			m[int64(i)*k+int64(a.Index)] = 1
			if a.Value {
				y[int64(i)*k+int64(a.Index)] = 1
			}
		}
	}
	return torch.FromFloat32(y, b, k).ToDevice(dev), torch.FromFloat32(m, b, k).ToDevice(dev)
}

// PromptAttributeLoss is ddgi's addition to Eqs. 6 and 7 (not in the
// paper): binary cross-entropy between a frozen attribute critic's logits
// on the render and the attributes the prompt states, averaged over each
// image's stated attributes and then over the batch (an image whose prompt
// states none adds 0). Reconstruction alone lets M ignore the words that
// the mask does not also show — smiles, age, makeup — because they move
// few pixels; this term rewards the text path for showing them.
func PromptAttributeLoss(c AttributeCritic, out, targets, stated *torch.Tensor) *torch.Tensor {
	if out.Size(2) > CriticSize || out.Size(3) > CriticSize {
		out = torch.Interpolate(out, CriticSize, CriticSize, torch.Area, false)
	}
	k := targets.Size(1)
	logits := c.Logits(out).Narrow(1, 0, k)
	// BCE with logits, elementwise: softplus(x) − y·x.
	bce := logits.Softplus(1, 20).Sub(targets.Mul(logits))
	perImage := bce.Mul(stated).Sum([]int64{1}, false).Div(stated.Sum([]int64{1}, false).ClampMin(1))
	return perImage.MeanAll()
}
