package auxnets

import (
	"ddgi/nn"
	"ddgi/torch"
)

// Perceptual is the LPIPS-style distance F: the attribute classifier's
// frozen encoder, features unit-normalised over channels at each of its five
// stages, squared differences weighted per channel by calibrated
// non-negative weights. Keys: enc.* (copied from the attribute net),
// lin.{0..4}.weight [C_l].
type Perceptual struct {
	Config Config
	Store  *nn.Store
	enc    *Encoder
	Lin    []*torch.Tensor
}

// NewPerceptual builds F with an untrained encoder and unit weights; copy a
// trained backbone in with CopyBackbone and calibrate with Calibrate.
func NewPerceptual(c Config, seed uint64) *Perceptual { return buildPerceptual(newStore(seed), c) }

// buildPerceptual lays the network out on s.
func buildPerceptual(s *nn.Store, c Config) *Perceptual {
	f := &Perceptual{Config: c, Store: s, enc: NewEncoder(s.Root().Sub("enc"), c.Width)}
	for l, ch := range f.enc.Channels {
		f.Lin = append(f.Lin, s.Root().Subf("lin.%d", l).Param("weight", []int64{ch}, nn.Constant(1)))
	}
	s.Freeze("enc")
	return f
}

// LoadPerceptual reads shipped perceptual weights onto dev.
func LoadPerceptual(path string, dev torch.Device) (*Perceptual, error) {
	fl, c, err := openWeights(path, NetPerceptual)
	if err != nil {
		return nil, err
	}
	f := buildPerceptual(loadStore(dev), c)
	return f, loadFrozen(f.Store, fl, path)
}

// CopyBackbone copies a classifier's encoder into F.
func (f *Perceptual) CopyBackbone(src *Classifier) error {
	return f.Store.CopyFrom(src.Store, nil)
}

// ChannelDiffs returns [N, ΣC_l]: per layer l and channel c, the spatial
// mean of (ŷ_l − ŷ0_l)² with ŷ unit-normalised over channels. Distance is
// its dot product with the weights, so calibration is linear in them.
func (f *Perceptual) ChannelDiffs(x, y *torch.Tensor) *torch.Tensor {
	n := x.Size(0)
	fx := f.enc.Forward(torch.Cat([]*torch.Tensor{x, y}, 0))
	var parts []*torch.Tensor
	for _, h := range fx {
		h = h.Div(h.Norm(2, []int64{1}, true).AddScalar(1e-10))
		d := h.Narrow(0, 0, n).Sub(h.Narrow(0, n, n)).Square()
		parts = append(parts, d.Mean([]int64{2, 3}, false))
	}
	return torch.Cat(parts, 1)
}

// Weights is the concatenated per-channel weight vector [ΣC_l].
func (f *Perceptual) Weights() *torch.Tensor { return torch.Cat(f.Lin, 0) }

// Distance is LPIPS (Zhang et al. 2018, Eq. 1) with F:
// d(x, y) = Σ_l 1/(H_l W_l) Σ_hw ‖w_l ⊙ (ŷ_l − ŷ0_l)‖², per pair [N];
// differentiable in x and y, so the inversion can use it as its loss.
func (f *Perceptual) Distance(x, y *torch.Tensor) *torch.Tensor {
	return f.ChannelDiffs(x, y).Mul(f.Weights()).Sum([]int64{1}, false)
}

// ProjectWeights clamps the weights at zero (LPIPS keeps them
// non-negative) and rescales them to total ΣC_l, fixing the scale that the
// scale-free ranking loss leaves open.
func (f *Perceptual) ProjectWeights() {
	torch.NoGrad(func() {
		torch.Scoped(func() {
			var total, n float64
			for _, w := range f.Lin {
				w.CopyIn(w.ClampMin(0))
				total += w.SumAll().Item()
				n += float64(w.Numel())
			}
			if total > 0 {
				for _, w := range f.Lin {
					w.MulScalarIn(n / total)
				}
			}
		})
	})
}

// CalibrationLoss is the ranking loss that calibrates F's weights: for
// distortions of one kind where dMore is the stronger one, a logistic loss
// on the scale-free margin (dMore−dLess)/(dMore+dLess), a stand-in for
// LPIPS's learned 2AFC judgments (Zhang et al. 2018, Sec. 3.3).
func CalibrationLoss(dLess, dMore *torch.Tensor) *torch.Tensor {
	m := dMore.Sub(dLess).Div(dMore.Add(dLess).AddScalar(1e-8))
	return m.MulScalar(-10).Softplus(1, 20).MeanAll()
}

// Distortion kinds and strengths used to calibrate and test F, weakest
// first: Gaussian noise std (in [-1,1] units), blur σ (pixels), and the
// fraction α of a blend towards the same face with other attributes.
var (
	NoiseLevels = []float64{0.03, 0.1, 0.3}
	BlurLevels  = []float64{0.5, 1, 2}
	AttrLevels  = []float64{0.25, 0.5, 1}
)

// Distort returns [3K·N,...] distorted copies of x (noise, blur, attribute
// blend towards xAttr, each at its K levels, level-major within a kind).
func Distort(x, xAttr *torch.Tensor, g *torch.Generator) *torch.Tensor {
	var out []*torch.Tensor
	for _, s := range NoiseLevels {
		out = append(out, x.Add(torch.Randn(g, x.Shape(), torch.Float32, torch.CPU).MulScalar(s)).Clamp(-1, 1))
	}
	for _, s := range BlurLevels {
		out = append(out, nn.Blur(x, s))
	}
	for _, a := range AttrLevels {
		out = append(out, x.MulScalar(1-a).Add(xAttr.MulScalar(a)))
	}
	return torch.Cat(out, 0)
}
