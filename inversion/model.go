package inversion

import (
	"fmt"

	"ddgi/gan/stylegan2"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

// Generator is the frozen pre-trained GAN G seen from the inversion: it
// renders W+ codes (and, for a 3D-aware G, a camera).
type Generator interface {
	// Synthesize renders w+ [B,L,dim] (camera [B,25] or nil) to [B,3,H,W] in [-1,1].
	Synthesize(wplus, camera *torch.Tensor) *torch.Tensor
	// MeanLatent is w̄ [dim].
	MeanLatent() *torch.Tensor
}

// Model holds M and T in one store (names "mapping.*", "absmnet.*").
type Model struct {
	Config  Config
	Store   *nn.Store
	Mapping *MappingNetwork
	AbSMNet *AbSMNet
	// PromptStrength scales M's text path at inference
	// (MappingNetwork.GuidedCode); 0 or 1: as trained.
	PromptStrength float64
	// Spread is ψ of the truncation trick applied to w^m at inference
	// (SpreadCode); 0 or 1: as trained.
	Spread float64
}

// NewModel builds M and T.
func NewModel(c Config, dev torch.Device, seed uint64) (*Model, error) {
	return NewModelIn(nn.NewStore(dev, seed), c)
}

// NewModelIn builds M and T in store s.
func NewModelIn(s *nn.Store, c Config) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Config: c, Store: s}
	err := torch.Try(func() {
		m.Mapping = NewMappingNetwork(m.Store.Root().Sub("mapping"), c)
		m.AbSMNet = NewAbSMNet(m.Store.Root().Sub("absmnet"), c)
	})
	return m, err
}

// Codes is what one pass produces.
type Codes struct {
	WM, WGamma, WBeta, W *torch.Tensor // [B,L,dim]; W = WM ⊙ WGamma ⊕ WBeta
}

// Invert maps encoder outputs at steps t to the final code (Eqs. 2–4).
// With mOnly (the "M only" ablation) T is skipped and W = WM.
func (m *Model) Invert(h *torch.Tensor, f Features, steps *torch.Tensor, mOnly bool) Codes {
	s := m.PromptStrength
	if s == 0 {
		s = 1
	}
	wm := m.Mapping.GuidedCode(h, f, s)
	if m.Spread != 0 {
		wm = SpreadCode(wm, m.Mapping.WAvg, m.Spread)
	}
	if mOnly {
		return Codes{WM: wm, W: wm}
	}
	g, b := m.AbSMNet.ModulationCodes(f, steps)
	return Codes{WM: wm, WGamma: g, WBeta: b, W: ModulateCode(wm, g, b)}
}

// SpreadCode is ddgi's inference-time spread (not in the paper): the
// truncation trick w̄ + ψ(w^m − w̄) with ψ > 1 pushes M's code away from
// the GAN's mean latent, undoing part of the pull toward the average face
// that an encoder trained with reconstruction losses has.
func SpreadCode(wm, wAvg *torch.Tensor, psi float64) *torch.Tensor {
	return stylegan2.Truncate(wm, wAvg, psi)
}

// VaryStyles is ddgi's inference-time variation (not in the paper): the
// style layers l ≥ from of w [B,L,dim] move by β(w^z_l − w̄), where w^z
// [B,L,dim] is G's own code for the request's seed. What neither the
// condition nor the prompt states (colour, light, background) then varies
// with the seed as it does between real faces, which an encoder trained
// with reconstruction losses averages away; the coarse layers, which place
// the condition's structure, stay M's and T's, and so does what the prompt
// put into the fine ones (the seed's offset is added, not swapped in).
func VaryStyles(w, wz, wAvg *torch.Tensor, beta float64, from int) *torch.Tensor {
	l := w.Size(1)
	if beta == 0 || int64(from) >= l {
		return w
	}
	from = max(from, 0)
	sel := make([]float32, l)
	for i := from; i < int(l); i++ {
		sel[i] = float32(beta)
	}
	scale := torch.FromFloat32(sel, 1, l, 1).ToDevice(w.Device())
	return w.Add(wz.Sub(wAvg).Mul(scale))
}

// Render is Eq. 5: I'_t = G(w_t) (from camera for a 3D-aware G).
func Render(g Generator, w, camera *torch.Tensor) *torch.Tensor {
	return g.Synthesize(w, camera)
}

// Save writes M and T with both configs in the metadata (half: fp16).
func (m *Model) Save(path string, t TrainConfig, half bool) error {
	f, err := m.File(t, half)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return safetensors.Save(path, f)
}

// File is what Save writes, in memory.
func (m *Model) File(t TrainConfig, half bool) (*safetensors.File, error) {
	o := saveOpts(m.Config, t)
	o.Half = half
	return m.Store.File(o)
}
