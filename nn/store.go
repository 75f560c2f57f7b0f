// Package nn holds ddgi's layers and the parameter store whose dotted names
// ("mapping.fc0.weight") are the checkpoint keys. A network is built by
// handing each layer a Path; the layer registers its tensors under that path.
package nn

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"sort"
	"strings"

	"ddgi/safetensors"
	"ddgi/torch"
)

// Store owns a network's parameters (trainable) and buffers (saved but not
// trained, such as StyleGAN's mean latent).
type Store struct {
	Device torch.Device
	// SkipInit allocates new tensors as zeros instead of drawing their
	// initial values: for stores about to be overwritten by a checkpoint
	// (drawing SD1.5's 860M random numbers took 84–136 s on 2 cores).
	SkipInit bool
	// Half keeps float tensors in fp16 (see NewInferenceStore); layers
	// compute in fp32 through Compute.
	Half bool
	// BF16 keeps float tensors in bfloat16 and layers compute in it
	// (Precision BF16): the network's inputs must be cast to bf16 where
	// they enter it (ComputeDType).
	BF16        bool
	placeholder *placeholderData // see Placeholders
	gen         *torch.Generator
	tensors     map[string]*entry
	order       []string
}

type entry struct {
	t         *torch.Tensor
	trainable bool
	frozen    bool
}

// NewStore returns an empty store whose initialisers draw from seed.
func NewStore(dev torch.Device, seed uint64) *Store {
	return &Store{Device: dev, gen: torch.NewGenerator(seed), tensors: map[string]*entry{}}
}

// Root is the empty path.
func (s *Store) Root() Path { return Path{s: s} }

// Path is a position in a store's name hierarchy.
type Path struct {
	s      *Store
	prefix string
}

// Sub returns the child path "prefix.name".
func (p Path) Sub(name string) Path {
	if p.prefix == "" {
		return Path{s: p.s, prefix: name}
	}
	return Path{s: p.s, prefix: p.prefix + "." + name}
}

// Subf is Sub with a formatted name ("blocks.%d").
func (p Path) Subf(format string, args ...any) Path { return p.Sub(fmt.Sprintf(format, args...)) }

// Name is the dotted path of a tensor called name under p.
func (p Path) Name(name string) string { return p.Sub(name).prefix }

// Store returns the store the path belongs to.
func (p Path) Store() *Store { return p.s }

// Init draws a parameter's initial value.
type Init func(g *torch.Generator, shape []int64) *torch.Tensor

// Normal draws N(0, std²).
func Normal(std float64) Init {
	return func(g *torch.Generator, shape []int64) *torch.Tensor {
		return torch.Randn(g, shape, torch.Float32, torch.CPU).MulScalar(std)
	}
}

// Uniform draws U(−bound, bound).
func Uniform(bound float64) Init {
	return func(g *torch.Generator, shape []int64) *torch.Tensor {
		return torch.Rand(g, shape, torch.Float32, torch.CPU).MulScalar(2 * bound).SubScalar(bound)
	}
}

// Constant fills with v.
func Constant(v float64) Init {
	return func(_ *torch.Generator, shape []int64) *torch.Tensor {
		return torch.Full(shape, v, torch.Float32, torch.CPU)
	}
}

// Param registers a trainable float32 tensor at p.name.
func (p Path) Param(name string, shape []int64, init Init) *torch.Tensor {
	return p.add(name, shape, init, true)
}

// Buffer registers a saved, non-trainable tensor at p.name.
func (p Path) Buffer(name string, shape []int64, init Init) *torch.Tensor {
	return p.add(name, shape, init, false)
}

func (p Path) add(name string, shape []int64, init Init, trainable bool) *torch.Tensor {
	full := p.Name(name)
	if _, dup := p.s.tensors[full]; dup {
		panic("nn: duplicate tensor name " + full)
	}
	var t *torch.Tensor
	torch.NoGrad(func() {
		torch.Scoped(func() {
			if p.s.placeholder != nil {
				t = torch.Zeros(nil, torch.Float32, p.s.Device)
				if len(shape) > 0 {
					t = torch.Zeros([]int64{1}, torch.Float32, p.s.Device).Expand(shape...)
				}
			} else if p.s.SkipInit {
				// Zeros straight in the stored dtype: an fp32 zero copy per
				// tensor, cast and freed, left a full-size fp16 store's
				// fp32 size in glibc's heap.
				t = torch.Zeros(shape, p.s.floatDType(), p.s.Device)
			} else {
				t = init(p.s.gen, shape)
			}
			if dt := p.s.floatDType(); dt != torch.Float32 && t.DType() == torch.Float32 {
				t = t.To(dt)
			}
			if p.s.Device != torch.CPU {
				t = t.ToDevice(p.s.Device)
			}
			if p.s.placeholder == nil {
				t = t.Contiguous()
			}
			t = t.Detach()
			torch.Persist(t)
		})
	})
	if trainable {
		t.SetRequiresGrad(true)
	}
	p.s.tensors[full] = &entry{t: t, trainable: trainable}
	p.s.order = append(p.s.order, full)
	return t
}

// Names lists every tensor in registration order.
func (s *Store) Names() []string { return append([]string(nil), s.order...) }

// Get returns the tensor registered under name, or nil.
func (s *Store) Get(name string) *torch.Tensor {
	if e, ok := s.tensors[name]; ok {
		return e.t
	}
	return nil
}

// Trainable returns the parameters an optimizer should update, in
// registration order, skipping frozen ones.
func (s *Store) Trainable() []Named {
	var out []Named
	for _, n := range s.order {
		if e := s.tensors[n]; e.trainable && !e.frozen {
			out = append(out, Named{n, e.t})
		}
	}
	return out
}

// Named is a tensor with its checkpoint name.
type Named struct {
	Name string
	T    *torch.Tensor
}

// Freeze stops gradient tracking for every parameter whose name starts with
// prefix ("" freezes all).
func (s *Store) Freeze(prefix string) { s.setFrozen(prefix, true) }

// Unfreeze undoes Freeze.
func (s *Store) Unfreeze(prefix string) { s.setFrozen(prefix, false) }

func (s *Store) setFrozen(prefix string, on bool) {
	for _, n := range s.order {
		e := s.tensors[n]
		if e.trainable && hasPrefix(n, prefix) {
			e.frozen = on
			e.t.SetRequiresGrad(!on)
		}
	}
}

func hasPrefix(name, prefix string) bool {
	return prefix == "" || name == prefix || len(name) > len(prefix) && name[:len(prefix)] == prefix && name[len(prefix)] == '.'
}

// NumParams counts trainable elements.
func (s *Store) NumParams() int64 {
	var n int64
	for _, e := range s.tensors {
		if e.trainable {
			n += e.t.Numel()
		}
	}
	return n
}

// ZeroGrad drops every parameter's gradient.
func (s *Store) ZeroGrad() {
	for _, n := range s.order {
		if e := s.tensors[n]; e.trainable {
			e.t.ZeroGrad()
		}
	}
}

// SaveOptions tune Save.
type SaveOptions struct {
	// Half stores float tensors as F16 (shipped weights); training
	// checkpoints keep F32.
	Half bool
	// Config is marshalled to JSON into the "config" metadata key.
	Config any
	// Metadata adds more string keys.
	Metadata map[string]string
}

// Version is written into every file's metadata.
var Version = "0.1.0-dev"

// Save writes every tensor atomically to a safetensors file.
func (s *Store) Save(path string, o SaveOptions) error {
	f, err := s.File(o)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return safetensors.Save(path, f)
}

// File converts the store to a safetensors file in memory.
func (s *Store) File(o SaveOptions) (*safetensors.File, error) {
	f := &safetensors.File{Metadata: map[string]string{"format": "ddgi", "ddgi_version": Version}, Tensors: map[string]safetensors.Tensor{}}
	for k, v := range o.Metadata {
		f.Metadata[k] = v
	}
	if o.Config != nil {
		b, err := json.Marshal(o.Config)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		f.Metadata["config"] = string(b)
	}
	for _, n := range s.order {
		if s.placeholder != nil {
			f.Tensors[n] = placeholderTensor(s.placeholder, s.tensors[n].t)
			continue
		}
		st, err := ToSafetensors(s.tensors[n].t, o.Half)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", n, err)
		}
		f.Tensors[n] = st
	}
	return f, nil
}

// ToSafetensors copies a tensor to host bytes (float tensors to F16 when
// half is set).
func ToSafetensors(t *torch.Tensor, half bool) (safetensors.Tensor, error) {
	var out safetensors.Tensor
	err := torch.Try(func() {
		torch.Scoped(func() {
			dt := t.DType()
			if half && (dt == torch.Float32 || dt == torch.Float64) {
				dt = torch.Float16
			}
			sd, ok := toST[dt]
			if !ok {
				panic(&torch.Error{Op: "save", Msg: "unsupported dtype " + dt.String()})
			}
			c := t.Detach()
			if dt != t.DType() {
				c = c.To(dt)
			}
			out = safetensors.Tensor{DType: sd, Shape: c.Shape(), Data: c.Bytes()}
		})
	})
	return out, err
}

var toST = map[torch.DType]safetensors.DType{
	torch.Float32: safetensors.F32, torch.Float64: safetensors.F64, torch.Float16: safetensors.F16,
	torch.BFloat16: safetensors.BF16, torch.Int64: safetensors.I64, torch.Int32: safetensors.I32,
	torch.Int16: safetensors.I16, torch.Int8: safetensors.I8, torch.Uint8: safetensors.U8, torch.Bool: safetensors.BOOL,
}

// FromSafetensors makes a long-lived torch tensor on dev.
func FromSafetensors(st safetensors.Tensor, dev torch.Device) (*torch.Tensor, error) {
	var dt torch.DType = -1
	for k, v := range toST {
		if v == st.DType {
			dt = k
		}
	}
	if dt < 0 {
		return nil, fmt.Errorf("unsupported dtype %s", st.DType)
	}
	var t *torch.Tensor
	err := torch.Try(func() {
		t = torch.FromBytes(st.Data, st.Shape, dt, dev)
		torch.Persist(t)
	})
	return t, err
}

// Load reads a safetensors file into the store. Every stored tensor must
// exist in the file with the same shape and no file tensor may be unknown,
// so a checkpoint from another config fails loudly. It returns the file's
// metadata.
func (s *Store) Load(path string) (map[string]string, error) {
	f, err := safetensors.Load(path)
	if err != nil {
		return nil, err
	}
	if err := s.LoadFile(f); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return f.Metadata, nil
}

// LoadFile copies a file's tensors into the store (see Load).
func (s *Store) LoadFile(f *safetensors.File) error {
	return s.loadFrom(wholeFile{f})
}

// largeStore is the fp32 size (bytes) from which a network counts as
// full size for glibc's settings (torch.MallocForLargeTensors).
const largeStore = 64 << 20

// LoadLazy is LoadFile reading one tensor at a time from an open file, so
// loading holds the store and one tensor rather than the store and the
// whole file (SD1.5's U-Net: 1.7 GB less at its peak).
// A store of full size (over 64 MB in fp32) switches glibc to mapping
// large buffers (torch.MallocForLargeTensors), as loading one always did
// through LoadNetwork: with the training-sized heap kept by TuneMalloc, the
// freed copies of the largest tensors stayed resident (CLIP's text tower:
// 765 MB peak, 513 MB after loading 246 MB of weights).
func (s *Store) LoadLazy(l *safetensors.Lazy) error {
	if s.NumParams()*4 > largeStore {
		torch.MallocForLargeTensors()
	}
	z := &lazyFile{l: l}
	err := s.loadFrom(z)
	if cap(z.buf) > 64<<20 {
		z.buf = nil
		debug.FreeOSMemory()
	}
	return err
}

// tensorSource is a safetensors file read whole or tensor by tensor.
type tensorSource interface {
	Names() []string
	Info(name string) (safetensors.DType, []int64, bool)
	// read returns name's tensor (dequantized where int8) on the CPU.
	read(name string) (*torch.Tensor, error)
}

type wholeFile struct{ f *safetensors.File }

func (w wholeFile) Names() []string { return w.f.Names() }
func (w wholeFile) Info(name string) (safetensors.DType, []int64, bool) {
	st, ok := w.f.Tensors[name]
	return st.DType, st.Shape, ok
}
func (w wholeFile) read(name string) (*torch.Tensor, error) {
	src, err := dequantized(w.f, name)
	if err == nil && src == nil {
		st := w.f.Tensors[name]
		if !finiteData(st) {
			return nil, errNotFinite
		}
		src, err = FromSafetensors(st, torch.CPU)
	}
	return src, err
}

// errNotFinite: a NaN or Inf weight poisons every output silently, so such
// a file is refused.
var errNotFinite = errors.New("holds NaN or Inf values: the file is corrupt")

// finiteData reports whether a float tensor's stored values are all finite
// (other dtypes: true), read off the exponent bits of the raw bytes: a
// check in libtorch made a tensor's size several times over in
// temporaries (CLIP's 76 MB fp16 token table: +336 MB at the load's peak).
func finiteData(st safetensors.Tensor) bool {
	b := st.Data
	switch st.DType {
	case safetensors.F16, safetensors.BF16:
		mask := uint16(0x7C00) // exponent all ones: Inf or NaN
		if st.DType == safetensors.BF16 {
			mask = 0x7F80
		}
		for i := 0; i+1 < len(b); i += 2 {
			if binary.LittleEndian.Uint16(b[i:])&mask == mask {
				return false
			}
		}
	case safetensors.F32:
		for i := 0; i+3 < len(b); i += 4 {
			if binary.LittleEndian.Uint32(b[i:])&0x7F800000 == 0x7F800000 {
				return false
			}
		}
	case safetensors.F64:
		for i := 0; i+7 < len(b); i += 8 {
			if binary.LittleEndian.Uint64(b[i:])&0x7FF0000000000000 == 0x7FF0000000000000 {
				return false
			}
		}
	}
	return true
}

// lazyFile reads tensor after tensor through one reused buffer (each is
// copied into libtorch before the next read).
type lazyFile struct {
	l   *safetensors.Lazy
	buf []byte
}

func (z *lazyFile) Names() []string                                     { return z.l.Names() }
func (z *lazyFile) Info(name string) (safetensors.DType, []int64, bool) { return z.l.Info(name) }
func (z *lazyFile) read(name string) (*torch.Tensor, error) {
	st, err := z.l.TensorInto(name, z.buf)
	if err != nil {
		return nil, err
	}
	z.buf = st.Data[:0]
	one := &safetensors.File{Tensors: map[string]safetensors.Tensor{name: st}}
	if _, _, ok := z.l.Info(name + QuantScaleSuffix); ok && st.DType == safetensors.I8 {
		if one.Tensors[name+QuantScaleSuffix], err = z.l.Tensor(name + QuantScaleSuffix); err != nil {
			return nil, err
		}
	}
	return wholeFile{one}.read(name)
}

// streamChunk is how much of a tensor lazyFile.stream holds at once.
const streamChunk = 4 << 20

// stream copies name's bytes from the file straight into dst in pieces of
// streamChunk, checking each for NaN and Inf, when the file stores dst's
// own dtype (or fp16 for a bf16 dst, converted on the way) and dst is a
// CPU tensor: no copy of the whole tensor is ever
// held beside the store (CLIP's tower loaded at 568 MB instead of 1177).
// done is false when it does not apply (another dtype, int8 with scales,
// another device), for read to handle.
func (z *lazyFile) stream(name string, dst *torch.Tensor) (done bool, err error) {
	dt, _, _ := z.l.Info(name)
	// An fp16 file into a bf16 store converts piece by piece (same size).
	toBF16 := dt == safetensors.F16 && dst.DType() == torch.BFloat16
	if (toST[dst.DType()] != dt && !toBF16) || dst.Device() != torch.CPU || dt == safetensors.I8 {
		return false, nil
	}
	n := dst.Numel() * int64(dst.DType().Size())
	if cap(z.buf) < streamChunk {
		z.buf = make([]byte, streamChunk)
	}
	for off := int64(0); off < n; off += streamChunk {
		p := z.buf[:min(streamChunk, n-off)]
		if err := z.l.ReadAt(name, p, off); err != nil {
			return false, err
		}
		if !finiteData(safetensors.Tensor{DType: dt, Data: p}) {
			return false, errNotFinite
		}
		if toBF16 {
			safetensors.F16ToBF16(p)
		}
		if err := torch.Try(func() { dst.WriteBytes(off, p) }); err != nil {
			return false, err
		}
	}
	return true, nil
}

func (s *Store) loadFrom(f tensorSource) error {
	var missing, unknown []string
	for _, n := range s.order {
		if _, _, ok := f.Info(n); !ok {
			missing = append(missing, n)
		}
	}
	for _, n := range f.Names() {
		if base, ok := strings.CutSuffix(n, QuantScaleSuffix); ok {
			if _, _, ok := f.Info(base); ok {
				continue // an int8 tensor's scale
			}
		}
		if _, ok := s.tensors[n]; !ok {
			unknown = append(unknown, n)
		}
	}
	sort.Strings(unknown)
	if len(missing) > 0 || len(unknown) > 0 {
		return fmt.Errorf("checkpoint does not match the network: %d missing %s, %d unknown %s", len(missing), head(missing), len(unknown), head(unknown))
	}
	for _, n := range s.order {
		dst := s.tensors[n].t
		_, shape, _ := f.Info(n)
		if want := dst.Shape(); !slices.Equal(want, shape) {
			return fmt.Errorf("tensor %s: shape %v in file, network wants %v", n, shape, want)
		}
		if z, ok := f.(*lazyFile); ok && s.placeholder == nil {
			done, err := z.stream(n, dst)
			if err != nil {
				if errors.Is(err, errNotFinite) {
					return fmt.Errorf("tensor %s %w", n, err)
				}
				return fmt.Errorf("tensor %s: %w", n, err)
			}
			if done {
				continue
			}
		}
		src, err := f.read(n)
		if errors.Is(err, errNotFinite) {
			return fmt.Errorf("tensor %s %w", n, err)
		}
		if err != nil {
			return fmt.Errorf("tensor %s: %w", n, err)
		}
		// Float tensors were checked on their bytes (finiteData); an int8
		// one's dequantized values are checked here.
		fileDType, _, _ := f.Info(n)
		finite := true
		err = torch.Try(func() {
			torch.NoGrad(func() {
				torch.Scoped(func() {
					v := src.To(dst.DType())
					if dt := v.DType(); fileDType == safetensors.I8 && (dt == torch.Float32 || dt == torch.Float64 || dt == torch.Float16 || dt == torch.BFloat16) &&
						v.Numel() > 0 && v.IsFinite().MinAll().Item() == 0 {
						finite = false
						return
					}
					dst.CopyIn(v.ToDevice(dst.Device()))
				})
			})
		})
		src.Free()
		if err != nil {
			return fmt.Errorf("tensor %s: %w", n, err)
		}
		if !finite {
			return fmt.Errorf("tensor %s %w", n, errNotFinite)
		}
	}
	return nil
}

func head(names []string) string {
	if len(names) > 3 {
		return fmt.Sprintf("%v…", names[:3])
	}
	return fmt.Sprint(names)
}

// CopyFrom copies every tensor of o (same names and shapes) into s; used
// to initialise an EMA copy or a ControlNet branch from a trained network.
func (s *Store) CopyFrom(o *Store, prefixMap func(string) string) error {
	return torch.Try(func() {
		torch.NoGrad(func() {
			for _, n := range s.order {
				src := n
				if prefixMap != nil {
					src = prefixMap(n)
				}
				e, ok := o.tensors[src]
				if !ok {
					continue
				}
				torch.Scoped(func() { s.tensors[n].t.CopyIn(e.t) })
			}
		})
	})
}

// fanIn is the number of inputs feeding one output of a weight.
func fanIn(shape []int64) float64 {
	n := int64(1)
	for _, d := range shape[1:] {
		n *= d
	}
	return float64(n)
}

// kaimingBound is PyTorch's default U(±1/√fan_in) bound.
func kaimingBound(shape []int64) float64 { return 1 / math.Sqrt(fanIn(shape)) }

// LoadConfigured reads a file written with SaveOptions.Config, decodes the
// "config" metadata into a C, builds the network with build on a fresh
// store on dev and loads every tensor into it, frozen: the loader of a
// network whose shape its weights file describes.
func LoadConfigured[C any, M any](path string, dev torch.Device, build func(Path, C) (M, error)) (M, error) {
	var zero M
	f, err := safetensors.Load(path)
	if err != nil {
		return zero, err
	}
	var c C
	raw, ok := f.Metadata["config"]
	if !ok {
		return zero, fmt.Errorf("%s: no config in metadata", path)
	}
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return zero, fmt.Errorf("%s: config: %w", path, err)
	}
	st := NewStore(dev, 0)
	st.SkipInit = true // every tensor is overwritten by LoadFile below
	var m M
	if err := torch.Try(func() { m, err = build(st.Root(), c) }); err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	if err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	if err := st.LoadFile(f); err != nil {
		return zero, fmt.Errorf("load %s: %w", path, err)
	}
	st.Freeze("")
	if n := len(f.Tensors); n > 0 && st.NumParams()*4 > largeStore {
		// The file's bytes are as big as the network: hand them back to
		// the OS now, not after the first forward has peaked beside them.
		f = nil
		debug.FreeOSMemory()
		torch.MallocForLargeTensors()
	}
	return m, nil
}
