package diffusion

import (
	"encoding/json"
	"fmt"
	"slices"

	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

// Model is the paper's diffusion-based encoder E: the base U-Net, its
// ControlNet branches by condition kind, and the noise schedule.
type Model struct {
	Config   Config
	Store    *nn.Store // base U-Net tensors
	UNet     *UNet
	Controls map[kinds.Cond]*ControlNet
	Schedule *Schedule
	// Concurrent runs the ControlNet branches and the U-Net's encoder at
	// once, each on its own share of the threads (inference on small
	// batches, where one op cannot use two cores well).
	Concurrent bool
}

// New builds a model with random weights and no branches.
func New(c Config, dev torch.Device, seed uint64) (*Model, error) {
	return NewIn(nn.NewStore(dev, seed), c)
}

// NewIn builds the model in store s (loaders pass one without random
// init; writers of random full-size sets one of placeholders).
func NewIn(s *nn.Store, c Config) (*Model, error) {
	u, err := NewUNet(s.Root(), c)
	if err != nil {
		return nil, err
	}
	sch, err := NewSchedule(c)
	if err != nil {
		return nil, err
	}
	return &Model{Config: c, Store: s, UNet: u, Controls: map[kinds.Cond]*ControlNet{}, Schedule: sch}, nil
}

// AddControl adds a branch for kind whose encoder is a copy of the base
// U-Net's (ControlNet's initialisation) and returns it.
func (m *Model) AddControl(kind kinds.Cond, seed uint64) (*ControlNet, error) {
	if _, dup := m.Controls[kind]; dup {
		return nil, fmt.Errorf("diffusion: %s branch already present", kind)
	}
	n, err := NewControlNet(m.Config, kind, m.Store.Device, seed)
	if err != nil {
		return nil, err
	}
	if err := n.InitFrom(m.Store); err != nil {
		return nil, err
	}
	m.Controls[kind] = n
	return n, nil
}

// Kinds lists the loaded branches, sorted.
func (m *Model) Kinds() []kinds.Cond {
	var ks []kinds.Cond
	for k := range m.Controls {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Metadata keys of saved files besides "config".
const (
	metaRole = "ddgi_role" // "unet" or "controlnet"
	metaKind = "ddgi_cond" // condition kind of a branch
)

// Save writes the base U-Net (half: fp16) with its config.
func (m *Model) Save(path string, half bool) error {
	return m.Store.Save(path, nn.SaveOptions{Config: m.Config, Half: half, Metadata: map[string]string{metaRole: "unet"}})
}

// SaveControl writes one branch.
func (m *Model) SaveControl(kind kinds.Cond, path string, half bool) error {
	n, ok := m.Controls[kind]
	if !ok {
		return fmt.Errorf("diffusion: no %s branch to save", kind)
	}
	return n.Save(path, kind, half)
}

// Save writes the branch for condition kind with its config (the U-Net's
// it was built for), as Model.LoadControl reads it.
func (n *ControlNet) Save(path string, kind kinds.Cond, half bool) error {
	return n.Store.Save(path, nn.SaveOptions{Config: n.Enc.Config, Half: half, Metadata: map[string]string{metaRole: "controlnet", metaKind: string(kind)}})
}

// readConfig loads a file and the Config in its metadata.
// The file stays open for reading its tensors one at a time (Close it).
func readConfig(path string) (*safetensors.Lazy, Config, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, Config{}, err
	}
	var c Config
	if err := json.Unmarshal([]byte(f.Metadata["config"]), &c); err != nil {
		f.Close()
		return nil, Config{}, fmt.Errorf("load %s: config metadata: %w", path, err)
	}
	return f, c, nil
}

// Load reads a base U-Net saved by Save; the config comes from the file.
// The weights are fp32 in memory, as training needs them.
func Load(path string, dev torch.Device) (*Model, error) { return load(path, dev, false, nn.FP32) }

// LoadInference is Load for sampling and taps: an fp16 file of a big
// U-Net (SD1.5's) stays fp16 in memory and each layer computes in fp32
// (nn.NewInferenceStore): the same outputs from half the memory. Branches
// that LoadControl attaches to it follow. The model must not be trained.
// With nn.BF16 the U-Net and its branches are kept and run in bfloat16
// (Taps casts the inputs in and the taps back to fp32).
func LoadInference(path string, dev torch.Device, p nn.Precision) (*Model, error) {
	return load(path, dev, true, p)
}

func load(path string, dev torch.Device, inference bool, p nn.Precision) (*Model, error) {
	f, c, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A run's checkpoints carry no role; a branch file among them fails
	// below, where its tensor names do not match the U-Net's.
	if r := f.Metadata[metaRole]; r != "unet" && r != "" {
		return nil, fmt.Errorf("load %s: a %q file, want a base U-Net", path, r)
	}
	s := nn.NewInferenceStore(dev, f, p) // no random init of what LoadFile overwrites
	s.Half = s.Half && inference
	m, err := NewIn(s, c)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := m.Store.LoadLazy(f); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return m, nil
}

// LoadControl reads a branch saved by SaveControl and attaches it under
// its kind; its config must match the model's.
func (m *Model) LoadControl(path string) (*ControlNet, error) {
	f, c, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kind := kinds.Cond(f.Metadata[metaKind])
	if f.Metadata[metaRole] != "controlnet" || kind == "" {
		return nil, fmt.Errorf("load %s: not a ControlNet branch", path)
	}
	if err := CheckBranchConfig(m.Config, c); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	s := nn.NewInferenceStore(m.Store.Device, f, m.Store.Precision())
	s.Half = s.Half && m.Store.Half
	n, err := NewControlNetIn(s, m.Config, kind)
	if err != nil {
		return nil, err
	}
	if err := n.Store.LoadLazy(f); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	m.Controls[kind] = n
	return n, nil
}

// CheckBranchConfig reports a ControlNet branch config that does not fit
// the U-Net config it is attached to: every field must agree except the
// name, the default latent size and the DDIM grid, which are the U-Net's
// to say (a branch runs at whatever size it is given and samples on its
// U-Net's grid), so a branch converted apart from its U-Net attaches.
func CheckBranchConfig(unet, branch Config) error {
	branch.Name, branch.LatentSize, branch.Spacing, branch.StepsOffset = unet.Name, unet.LatentSize, unet.Spacing, unet.StepsOffset
	a, _ := json.Marshal(branch)
	b, _ := json.Marshal(unet)
	if string(a) != string(b) {
		return fmt.Errorf("branch config %s differs from the U-Net's %s", a, b)
	}
	return nil
}

// Conditions are the visual inputs x, at pixel resolution
// (Config.ImageSize()). A nil image skips its branch; a zero tensor is the
// "condition dropped" input used for classifier-free guidance.
type Conditions struct {
	// With Config.HintChannels set both are that many channels instead
	// (an RGB hint in [0,1] for lllyasviel's ControlNets).
	Mask     *torch.Tensor // [B,19,S,S] one-hot (MaskTensor)
	Scribble *torch.Tensor // [B,1,S,S] in {0,1} (ScribbleTensor)
	// Per-branch residual scales (ControlNet's conditioning_scale); 0 means 1.
	MaskScale, ScribbleScale float64
}

// each calls f for every present condition, in a fixed order.
func (c Conditions) each(f func(kind kinds.Cond, img *torch.Tensor, scale float64)) {
	scale := func(s float64) float64 {
		if s == 0 {
			return 1
		}
		return s
	}
	if c.Mask != nil {
		f(kinds.Mask, c.Mask, scale(c.MaskScale))
	}
	if c.Scribble != nil {
		f(kinds.Scribble, c.Scribble, scale(c.ScribbleScale))
	}
}

// Dropped returns the same conditions with every image replaced by zeros
// (the unconditional input of classifier-free guidance).
func (c Conditions) Dropped() Conditions {
	d := c
	if c.Mask != nil {
		d.Mask = torch.Zeros(c.Mask.Shape(), torch.Float32, c.Mask.Device())
	}
	if c.Scribble != nil {
		d.Scribble = torch.Zeros(c.Scribble.Shape(), torch.Float32, c.Scribble.Device())
	}
	return d
}

// Slice keeps batch item i of every condition.
func (c Conditions) Slice(i int) Conditions { return c.Range(i, i+1) }

// Range keeps batch items lo…hi−1 of every condition.
func (c Conditions) Range(lo, hi int) Conditions {
	d := c
	if c.Mask != nil {
		d.Mask = c.Mask.Narrow(0, int64(lo), int64(hi-lo))
	}
	if c.Scribble != nil {
		d.Scribble = c.Scribble.Narrow(0, int64(lo), int64(hi-lo))
	}
	return d
}

// Empty reports whether no condition is set.
func (c Conditions) Empty() bool { return c.Mask == nil && c.Scribble == nil }

// Taps are the encoder features the inversion consumes (paper Sec. 3.1,
// Fig. 2), all from one U-Net(+ControlNet) pass. Shapes per preset are
// listed in docs/diffusion.md; with n levels, latent side s and widths
// Channels:
type Taps struct {
	// H is h_t, the middle block output after the ControlNet residuals:
	// [B, Channels[n-1], s/2^(n-1), s/2^(n-1)].
	H *torch.Tensor
	// F is f_t: F[i] is the output of decoder (up) block i, after its
	// upsampler: [B, Channels[n-1-i], s/2^(n-2-i), …] for i < n-1 and
	// [B, Channels[0], s, s] for the last.
	F []*torch.Tensor
	// A is a_t: A[i][k] holds the cross-attention probabilities of the
	// k-th transformer block in up block i, [B, heads, h·w, Ltok] at that
	// block's pre-upsampling resolution; each row sums to 1 over tokens.
	// Empty for levels without attention (sd15's lowest level).
	A [][]*torch.Tensor
	// AOut[i][k] is the output of the same cross-attention layer,
	// [B, h·w, C_i] (before the residual add): AbSMNet max-pools these
	// over k to get A_t.
	AOut [][]*torch.Tensor
	// Eps is the model output (ε, or v under v-prediction): [B,C,s,s].
	Eps *torch.Tensor
}

// residuals runs every branch that has a condition and sums the results.
func (m *Model) residuals(zt, t, ctx *torch.Tensor, cond Conditions) *Residuals {
	var res *Residuals
	cond.each(func(kind kinds.Cond, img *torch.Tensor, scale float64) {
		n, ok := m.Controls[kind]
		if !ok {
			panic(&torch.Error{Op: "diffusion", Msg: fmt.Sprintf("a %s condition was given but no %s branch is loaded", kind, kind)})
		}
		res = res.add(n.Forward(zt, t, ctx, img, scale))
	})
	return res
}

// timesteps broadcasts t to [B] int64 for a batch of b.
func timesteps(t *torch.Tensor, b int64) *torch.Tensor {
	if t.Dim() == 0 || t.Size(0) == 1 {
		return t.Reshape(1).Expand(b)
	}
	return t
}

// Taps runs the U-Net with its ControlNet branches once on latents zt
// [B,C,s,s] at timesteps t ([B] or a single value) with text tokens ctx
// [B,L,ContextDim] and the visual conditions, returning h_t, f_t, a_t and
// the noise prediction.
func (m *Model) Taps(zt, t, ctx *torch.Tensor, cond Conditions) Taps {
	return m.forward(zt, t, ctx, cond, true)
}

// Predict is the model output only (no attention maps kept).
func (m *Model) Predict(zt, t, ctx *torch.Tensor, cond Conditions) *torch.Tensor {
	return m.forward(zt, t, ctx, cond, false).Eps
}

func (m *Model) forward(zt, t, ctx *torch.Tensor, cond Conditions, wantTaps bool) Taps {
	if dt := m.Store.ComputeDType(); dt != torch.Float32 {
		return m.forwardIn(dt, zt, t, ctx, cond, wantTaps)
	}
	return m.forwardNative(zt, t, ctx, cond, wantTaps)
}

// forwardNative is forward on inputs already in the model's compute dtype.
func (m *Model) forwardNative(zt, t, ctx *torch.Tensor, cond Conditions, wantTaps bool) Taps {
	t = timesteps(t, zt.Size(0))
	if !m.Concurrent || (cond.Mask == nil && cond.Scribble == nil) {
		return m.UNet.forward(zt, t, ctx, m.residuals(zt, t, ctx, cond), wantTaps)
	}
	// The branches read the same inputs as the U-Net's encoder and meet it
	// only in the decoder, so the two run side by side.
	var enc encoded
	var res *Residuals
	torch.Concurrently(
		func() { enc = m.UNet.Enc.forward(zt, t, ctx, nil) },
		func() { res = m.residuals(zt, t, ctx, cond) },
	)
	return m.UNet.decode(enc, ctx, res, wantTaps)
}

// forwardIn is forward for a model that computes in dt (a BF16 store):
// the float inputs are cast to dt and every tap back to fp32, so callers
// see the same dtypes as from an fp32 model.
func (m *Model) forwardIn(dt torch.DType, zt, t, ctx *torch.Tensor, cond Conditions, wantTaps bool) Taps {
	in := func(x *torch.Tensor) *torch.Tensor {
		if x == nil || x.DType() == dt {
			return x
		}
		return x.To(dt)
	}
	// The cast inputs and the bf16 taps are temporaries of this scope;
	// the taps' fp32 copies go to the caller's.
	sc := torch.NewScope()
	defer sc.Close()
	cond.Mask, cond.Scribble = in(cond.Mask), in(cond.Scribble)
	tp := m.forwardNative(in(zt), t, in(ctx), cond, wantTaps)
	out32 := func(x *torch.Tensor) *torch.Tensor {
		if x == nil {
			return nil
		}
		y := x.To(torch.Float32)
		sc.Keep(y)
		return y
	}
	out := Taps{H: out32(tp.H), Eps: out32(tp.Eps)}
	for _, f := range tp.F {
		out.F = append(out.F, out32(f))
	}
	for i := range tp.A {
		var a, ao []*torch.Tensor
		for _, x := range tp.A[i] {
			a = append(a, out32(x))
		}
		for _, x := range tp.AOut[i] {
			ao = append(ao, out32(x))
		}
		out.A, out.AOut = append(out.A, a), append(out.AOut, ao)
	}
	return out
}

// TapShapes is one item's tap shapes at the config's latent size, as Taps
// documents them: h_t [C,s,s] and each f_t^i [C,s,s] — what M and T are
// sized from, without running the U-Net (full-size sets of random
// weights are written this way).
func (c Config) TapShapes() (h []int64, f [][]int64) {
	n, s := len(c.Channels), c.LatentSize
	h = []int64{c.Channels[n-1], s >> (n - 1), s >> (n - 1)}
	for i := range n {
		if i < n-1 {
			f = append(f, []int64{c.Channels[n-1-i], s >> (n - 2 - i), s >> (n - 2 - i)})
		} else {
			f = append(f, []int64{c.Channels[0], s, s})
		}
	}
	return h, f
}
