package auxnets

import (
	"math"

	"ddgi/nn"
	"ddgi/synthface"
	"ddgi/torch"
)

// Classifier is a conv classifier over SynthFace attributes (the attribute
// net) and, with Config.Areas, also each class's share of the mask (the FID
// net, whose pooled features then also encode layout). Keys: enc.*, fc.*.
type Classifier struct {
	Config Config
	Store  *nn.Store
	Enc    *Encoder
	fc     *nn.Linear
}

// Outputs is the number of logits: the attributes, then 19 class areas.
func (c Config) Outputs() int64 {
	if c.Styles > 0 {
		return c.Styles
	}
	if c.Areas {
		return NumAttributes + synthface.NumClasses
	}
	return NumAttributes
}

// NewClassifier builds a classifier with freshly initialised weights.
func NewClassifier(c Config, seed uint64) *Classifier { return buildClassifier(newStore(seed), c) }

// buildClassifier lays the network out on s.
func buildClassifier(s *nn.Store, c Config) *Classifier {
	m := &Classifier{Config: c, Store: s, Enc: NewEncoder(s.Root().Sub("enc"), c.Width)}
	m.fc = nn.NewLinear(s.Root().Sub("fc"), m.FeatureDim(), c.Outputs(), nn.LinearOpts{})
	return m
}

// LoadClassifier reads shipped attribute or FID weights (net names which) onto dev.
func LoadClassifier(path, net string, dev torch.Device) (*Classifier, error) {
	f, c, err := openWeights(path, net)
	if err != nil {
		return nil, err
	}
	m := buildClassifier(loadStore(dev), c)
	return m, loadFrozen(m.Store, f, path)
}

// FeatureDim is the size of Features.
func (m *Classifier) FeatureDim() int64 { return m.Enc.Channels[4] }

// Features are the globally pooled last-stage activations [N,FeatureDim]:
// the FID/KID features.
func (m *Classifier) Features(x *torch.Tensor) *torch.Tensor {
	f := m.Enc.Forward(x)
	return pool(f[len(f)-1])
}

// Logits returns [N,Outputs] scores.
func (m *Classifier) Logits(x *torch.Tensor) *torch.Tensor { return m.fc.Forward(m.Features(x)) }

// AttributeProbs returns [N,NumAttributes] probabilities (no gradient).
func (m *Classifier) AttributeProbs(x *torch.Tensor) *torch.Tensor {
	var p *torch.Tensor
	torch.NoGrad(func() { p = m.Logits(x).Narrow(1, 0, NumAttributes).Sigmoid() })
	return p
}

// StyleProbs returns [N,Styles] probabilities of each depiction style
// (synthface.ArtNames order) from the art net (no gradient).
func (m *Classifier) StyleProbs(x *torch.Tensor) *torch.Tensor {
	var p *torch.Tensor
	torch.NoGrad(func() { p = m.Logits(x).Softmax(1) })
	return p
}

// ClassifierLoss is binary cross-entropy of logits against targets in
// [0,1] (attribute bits, then class-area fractions for the FID net), the
// positive term weighted per output by posWeight [Outputs] (nil: 1) so that
// rare attributes are not ignored: mean(w·y·softplus(−x) + (1−y)·softplus(x)).
func ClassifierLoss(logits, targets, posWeight *torch.Tensor) *torch.Tensor {
	if posWeight == nil {
		return torch.BCEWithLogits(logits, targets, torch.ReduceMean)
	}
	pos := targets.Mul(logits.Neg().Softplus(1, 20)).Mul(posWeight)
	neg := targets.RSubScalar(1).Mul(logits.Softplus(1, 20))
	return pos.Add(neg).MeanAll()
}

// PosWeights balances each attribute's positives: √(negatives/positives)
// clamped to [1, 5]; area outputs get 1.
func PosWeights(freq []float64, outputs int64) *torch.Tensor {
	w := make([]float32, outputs)
	for i := range w {
		w[i] = 1
		if i < len(freq) && freq[i] > 0 {
			w[i] = float32(min(5, max(1, math.Sqrt((1-freq[i])/freq[i]))))
		}
	}
	return torch.FromFloat32(w, outputs)
}
