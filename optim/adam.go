// Package optim updates nn.Store parameters: Adam/AdamW with saveable
// state, an exponential moving average of weights, and gradient clipping.
package optim

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

// AdamConfig holds Adam's hyper-parameters. WeightDecay with Decoupled is
// AdamW; without it, L2 added to the gradient (classic Adam).
type AdamConfig struct {
	LR, Beta1, Beta2, Eps float64
	WeightDecay           float64
	Decoupled             bool
}

// DefaultAdam is PyTorch's default Adam.
func DefaultAdam(lr float64) AdamConfig {
	return AdamConfig{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// Adam keeps first and second moments per parameter name.
type Adam struct {
	Config AdamConfig
	Step   int64
	m, v   map[string]*torch.Tensor
}

// NewAdam returns an optimizer with empty state.
func NewAdam(c AdamConfig) *Adam {
	return &Adam{Config: c, m: map[string]*torch.Tensor{}, v: map[string]*torch.Tensor{}}
}

// Update applies one step to every parameter that has a gradient, then
// clears the gradients.
func (a *Adam) Update(params []nn.Named) {
	a.Step++
	c := a.Config
	bc1 := 1 - math.Pow(c.Beta1, float64(a.Step))
	bc2 := 1 - math.Pow(c.Beta2, float64(a.Step))
	torch.NoGrad(func() {
		for _, p := range params {
			torch.Scoped(func() {
				g := p.T.Grad()
				if g == nil {
					return
				}
				m, ok := a.m[p.Name]
				if !ok {
					m = torch.Zeros(p.T.Shape(), torch.Float32, p.T.Device())
					a.v[p.Name] = torch.Zeros(p.T.Shape(), torch.Float32, p.T.Device())
					torch.Persist(m, a.v[p.Name])
					a.m[p.Name] = m
				}
				v := a.v[p.Name]
				if c.WeightDecay != 0 {
					if c.Decoupled {
						p.T.MulScalarIn(1 - c.LR*c.WeightDecay)
					} else {
						g = g.Add(p.T.MulScalar(c.WeightDecay))
					}
				}
				m.LerpIn(g, 1-c.Beta1)
				v.MulScalarIn(c.Beta2)
				v.AddcmulIn(g, g, 1-c.Beta2)
				denom := v.Sqrt().DivScalar(math.Sqrt(bc2)).AddScalar(c.Eps)
				p.T.AddcdivIn(m, denom, -c.LR/bc1)
			})
			p.T.ZeroGrad()
		}
	})
}

// Free releases the moments now rather than at garbage collection (for
// short-lived optimizers, such as one per projected batch).
func (a *Adam) Free() {
	for name, m := range a.m {
		m.Free()
		a.v[name].Free()
	}
	a.m, a.v = map[string]*torch.Tensor{}, map[string]*torch.Tensor{}
}

// Moments lists the first and second moments, parameters sorted by name:
// the state that data-parallel ranks must hold alike.
func (a *Adam) Moments() []*torch.Tensor {
	names := make([]string, 0, len(a.m))
	for name := range a.m {
		names = append(names, name)
	}
	sort.Strings(names)
	ts := make([]*torch.Tensor, 0, 2*len(names))
	for _, name := range names {
		ts = append(ts, a.m[name], a.v[name])
	}
	return ts
}

// SetLR changes the learning rate (schedules).
func (a *Adam) SetLR(lr float64) { a.Config.LR = lr }

// State returns the optimizer state as safetensors tensors named
// "<param>.exp_avg", "<param>.exp_avg_sq" plus the step in metadata.
func (a *Adam) State() (*safetensors.File, error) {
	f := &safetensors.File{Metadata: map[string]string{"step": strconv.FormatInt(a.Step, 10)}, Tensors: map[string]safetensors.Tensor{}}
	for name, m := range a.m {
		for suffix, t := range map[string]*torch.Tensor{".exp_avg": m, ".exp_avg_sq": a.v[name]} {
			st, err := nn.ToSafetensors(t, false)
			if err != nil {
				return nil, err
			}
			f.Tensors[name+suffix] = st
		}
	}
	return f, nil
}

// Save writes the state atomically.
func (a *Adam) Save(path string) error {
	f, err := a.State()
	if err != nil {
		return fmt.Errorf("save optimizer %s: %w", path, err)
	}
	return safetensors.Save(path, f)
}

// Load restores state saved by Save onto dev.
func (a *Adam) Load(path string, dev torch.Device) error {
	f, err := safetensors.Load(path)
	if err != nil {
		return err
	}
	step, err := strconv.ParseInt(f.Metadata["step"], 10, 64)
	if err != nil {
		return fmt.Errorf("load optimizer %s: bad step %q", path, f.Metadata["step"])
	}
	m, v := map[string]*torch.Tensor{}, map[string]*torch.Tensor{}
	for name, st := range f.Tensors {
		t, err := nn.FromSafetensors(st, dev)
		if err != nil {
			return fmt.Errorf("load optimizer %s: %s: %w", path, name, err)
		}
		switch {
		case len(name) > 8 && name[len(name)-8:] == ".exp_avg":
			m[name[:len(name)-8]] = t
		case len(name) > 11 && name[len(name)-11:] == ".exp_avg_sq":
			v[name[:len(name)-11]] = t
		default:
			return fmt.Errorf("load optimizer %s: unexpected tensor %s", path, name)
		}
	}
	for name := range m {
		if v[name] == nil {
			return fmt.Errorf("load optimizer %s: %s has exp_avg but no exp_avg_sq", path, name)
		}
	}
	a.Step, a.m, a.v = step, m, v
	return nil
}

// ClipGradNorm rescales the gradients so their global L2 norm is at most
// maxNorm and returns the norm before clipping.
func ClipGradNorm(params []nn.Named, maxNorm float64) float64 {
	var total float64
	torch.NoGrad(func() {
		torch.Scoped(func() {
			var grads []*torch.Tensor
			for _, p := range params {
				if g := p.T.Grad(); g != nil {
					grads = append(grads, g)
				}
			}
			if len(grads) == 0 {
				return
			}
			for _, g := range grads {
				total += g.Square().SumAll().Item()
			}
			total = math.Sqrt(total)
			if total > maxNorm {
				for _, g := range grads {
					g.MulScalarIn(maxNorm / (total + 1e-6))
				}
			}
		})
	})
	return total
}

// EMA keeps an exponential moving average of a store's tensors in a second
// store of the same network (StyleGAN's G_ema).
type EMA struct {
	Target *nn.Store
}

// Update moves every target tensor toward the source: t ← t + (1−decay)(s − t).
// Buffers are copied.
func (e EMA) Update(source *nn.Store, decay float64) {
	torch.NoGrad(func() {
		for _, name := range e.Target.Names() {
			dst, src := e.Target.Get(name), source.Get(name)
			if src == nil {
				continue
			}
			torch.Scoped(func() {
				if dst.DType() == torch.Float32 {
					dst.LerpIn(src, 1-decay)
				} else {
					dst.CopyIn(src)
				}
			})
		}
	})
}
