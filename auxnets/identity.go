package auxnets

import (
	"math"

	"ddgi/nn"
	"ddgi/torch"
)

// Identity is the face-identity embedder R: the shared encoder, pooled, a
// linear layer, batch-normalised features (ArcFace's BN head: it removes the
// direction all faces share, without which nothing is learned), unit norm.
// Keys: enc.*, fc.*, bn.running_mean, bn.running_var.
type Identity struct {
	Config Config
	Store  *nn.Store
	enc    *Encoder
	fc     *nn.Linear
	mean   *torch.Tensor
	vari   *torch.Tensor
	// Training normalises with batch statistics and updates the running ones.
	Training bool
}

// NewIdentity builds R with freshly initialised weights.
func NewIdentity(c Config, seed uint64) *Identity { return buildIdentity(newStore(seed), c) }

// buildIdentity lays the network out on s.
func buildIdentity(s *nn.Store, c Config) *Identity {
	r := &Identity{Config: c, Store: s, enc: NewEncoder(s.Root().Sub("enc"), c.Width)}
	r.fc = nn.NewLinear(s.Root().Sub("fc"), r.enc.Channels[4], c.EmbedDim, nn.LinearOpts{})
	r.mean = s.Root().Sub("bn").Buffer("running_mean", []int64{c.EmbedDim}, nn.Constant(0))
	r.vari = s.Root().Sub("bn").Buffer("running_var", []int64{c.EmbedDim}, nn.Constant(1))
	return r
}

// LoadIdentity reads shipped identity weights onto dev.
func LoadIdentity(path string, dev torch.Device) (*Identity, error) {
	f, c, err := openWeights(path, NetIdentity)
	if err != nil {
		return nil, err
	}
	r := buildIdentity(loadStore(dev), c)
	return r, loadFrozen(r.Store, f, path)
}

// Embed returns unit-norm embeddings [N,EmbedDim]; differentiable, so the
// inversion's identity loss can use it.
func (r *Identity) Embed(x *torch.Tensor) *torch.Tensor {
	return r.Normalize(r.Features(x))
}

// Features is the embedding before the batch norm, [N,EmbedDim]: the part
// that treats each row alone, which data-parallel training splits over the
// ranks before normalising the gathered batch (Normalize).
func (r *Identity) Features(x *torch.Tensor) *torch.Tensor {
	f := r.enc.Forward(x)
	return r.fc.Forward(pool(f[len(f)-1]))
}

// Normalize is Embed's batch norm and unit norm on Features' output.
func (r *Identity) Normalize(e *torch.Tensor) *torch.Tensor {
	return l2normalize(r.batchNorm(e))
}

// batchNorm standardises each embedding feature (no affine), with batch
// statistics in training (running averages updated, momentum 0.1).
func (r *Identity) batchNorm(e *torch.Tensor) *torch.Tensor {
	if r.Training && e.Size(0) > 1 {
		m := e.Mean([]int64{0}, false)
		v := e.Var([]int64{0}, false, false)
		torch.NoGrad(func() {
			r.mean.LerpIn(m.Detach(), 0.1)
			r.vari.LerpIn(v.Detach(), 0.1)
		})
		return e.Sub(m).Div(v.AddScalar(1e-5).Sqrt())
	}
	return e.Sub(r.mean).Div(r.vari.AddScalar(1e-5).Sqrt())
}

// Cosine is the per-pair cosine similarity of R's embeddings, [N].
func (r *Identity) Cosine(x, y *torch.Tensor) *torch.Tensor {
	return r.Embed(x).Mul(r.Embed(y)).Sum([]int64{1}, false)
}

func l2normalize(x *torch.Tensor) *torch.Tensor {
	return x.Div(x.Norm(2, []int64{1}, true).ClampMin(1e-8))
}

// ArcFace is the additive-angular-margin classification head used only to
// train R. Key: weight [classes, dim].
type ArcFace struct {
	Weight *torch.Tensor
	Scale  float64
}

// NewArcFace registers the class centres under p, drawn at unit scale so
// that Adam's fixed-size steps turn them slowly (at 0.01 they random-walk
// and nothing is learned).
func NewArcFace(p nn.Path, classes, dim int64) *ArcFace {
	return &ArcFace{Weight: p.Param("weight", []int64{classes, dim}, nn.Normal(1)), Scale: 30}
}

// Loss is ArcFace's loss (Deng et al. 2019, Eq. 3): softmax cross-entropy
// over s·cos θ_j with the target angle widened to θ_y + m. emb must be unit
// norm, labels int64 class indices.
func (a *ArcFace) Loss(emb, labels *torch.Tensor, margin float64) *torch.Tensor {
	cos := emb.Matmul(l2normalize(a.Weight).Transpose(0, 1)).Clamp(-1+1e-6, 1-1e-6)
	sin := cos.Square().RSubScalar(1).Sqrt()
	// cos(θ+m), kept monotonic past θ = π−m as in the reference code.
	cm := cos.MulScalar(math.Cos(margin)).Sub(sin.MulScalar(math.Sin(margin)))
	th := math.Cos(math.Pi - margin)
	cm = torch.Where(cos.GtScalar(th), cm, cos.SubScalar(math.Sin(math.Pi-margin)*margin))
	oh := torch.OneHot(labels, cos.Size(1)).To(torch.Float32)
	logits := cos.Add(oh.Mul(cm.Sub(cos))).MulScalar(a.Scale)
	return torch.CrossEntropy(logits, labels, nil, -100, 0, torch.ReduceMean)
}
