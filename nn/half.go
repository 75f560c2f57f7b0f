package nn

import (
	"fmt"

	"ddgi/safetensors"
	"ddgi/torch"
)

// HalfAbove is the fp32 size from which an inference store keeps an fp16
// file's weights in fp16 (NewInferenceStore): SD1.5's U-Net (3.4 GB in
// fp32) and VAE pass it; ddgi's shipped small64 networks (≤ 60 MB) stay
// fp32 as they always were.
var HalfAbove int64 = 256 << 20 // a variable so tests can lower it

// NewInferenceStore is the store a loader builds a network in before
// filling it from f: no random initialisation (every tensor is about to
// be overwritten), and fp16 storage (Store.Half) when every float tensor
// of f is F16 and the network would take HalfAbove bytes or more in fp32.
// Layers upcast each weight to fp32 for their op, so the outputs are
// exactly those of the network loaded in fp32, from half the memory.
// Only for networks that are not trained after loading: an optimiser
// would step fp16 weights.
//
// With BF16 the store keeps every float tensor in bfloat16 whatever the
// file's dtype and the network computes in bf16.
func NewInferenceStore(dev torch.Device, f *safetensors.Lazy, p Precision) *Store {
	s := NewStore(dev, 0)
	s.SkipInit = true
	s.BF16 = p == BF16
	s.Half = !s.BF16 && HalfFile(f)
	if fp32Bytes(f) > largeStore {
		torch.MallocForLargeTensors() // before the store's tensors are made
	}
	return s
}

// fp32Bytes is f's float tensors' size in fp32.
func fp32Bytes(f *safetensors.Lazy) int64 {
	var n int64
	for _, name := range f.Names() {
		dt, shape, _ := f.Info(name)
		switch dt {
		case safetensors.F16, safetensors.F32, safetensors.F64, safetensors.BF16:
			n += int64((safetensors.Tensor{DType: dt, Shape: shape}).NumElements()) * 4
		}
	}
	return n
}

// HalfFile tells whether f stores its float tensors in F16 (none in F32,
// F64 or BF16) and would take HalfAbove bytes or more in fp32.
func HalfFile(f *safetensors.Lazy) bool {
	var n int64
	for _, name := range f.Names() {
		dt, shape, _ := f.Info(name)
		switch dt {
		case safetensors.F16:
			n += int64((safetensors.Tensor{DType: dt, Shape: shape}).NumElements()) * 4
		case safetensors.F32, safetensors.F64, safetensors.BF16:
			return false
		}
	}
	return n >= HalfAbove
}

// Precision is what a large inference network computes in.
type Precision string

const (
	// FP32 computes in fp32 (fp16-stored weights upcast per op): the
	// reference's outputs.
	FP32 Precision = "fp32"
	// BF16 stores and computes in bfloat16: on CPUs with AVX-512 BF16 or
	// AMX, libtorch's oneDNN kernels run convolutions 1.8–2.8× and matrix
	// products ~4× faster than fp32, at 8 bits of mantissa instead of 24.
	BF16 Precision = "bf16"
)

// ParsePrecision reads a --precision value ("" is FP32).
func ParsePrecision(s string) (Precision, error) {
	switch p := Precision(s); p {
	case "", FP32:
		return FP32, nil
	case BF16:
		return p, nil
	}
	return "", fmt.Errorf("unknown precision %q: want fp32 or bf16", s)
}

// floatDType is the dtype s keeps float tensors in.
func (s *Store) floatDType() torch.DType {
	switch {
	case s.BF16:
		return torch.BFloat16
	case s.Half:
		return torch.Float16
	}
	return torch.Float32
}

// Precision is what a network in s computes in.
func (s *Store) Precision() Precision {
	if s.BF16 {
		return BF16
	}
	return FP32
}

// ComputeDType is the dtype a network in s computes in, which its inputs
// must be cast to: bf16 for a BF16 store, else fp32.
func (s *Store) ComputeDType() torch.DType {
	if s.BF16 {
		return torch.BFloat16
	}
	return torch.Float32
}

// Compute is t as the fp32 tensor an op reads: t itself, or for an
// fp16-stored weight a temporary upcast copy, which Done frees.
func Compute(t *torch.Tensor) *torch.Tensor {
	if t == nil || t.DType() != torch.Float16 {
		return t
	}
	return t.To(torch.Float32)
}

// Done frees what Compute made for stored once the op has run (autograd
// keeps its own reference to what it saved), so a forward holds at most
// one layer's fp32 weights at a time.
func Done(stored, computed *torch.Tensor) {
	if computed != nil && computed != stored {
		computed.Free()
	}
}

// Placeholders makes s a store of shapes only, for writing full-size
// networks of random weights without holding them (tests, benchmarks):
// every tensor registered from now on is a stride-0 view of one zero (no
// memory, no random draw), and Save writes each float tensor as fp16
// values drawn once, uniform in ±0.03, into one buffer the tensors share
// (its first bytes). Such a store computes nothing useful.
func (s *Store) Placeholders(seed uint64) { s.placeholder = &placeholderData{seed: seed} }

// placeholderData is the shared random fp16 buffer Placeholders' Save
// writes from, grown to the largest tensor.
type placeholderData struct {
	seed uint64
	buf  []byte
}

// bytes returns n random fp16 bytes (n even).
func (p *placeholderData) bytes(n int) []byte {
	if len(p.buf) < n {
		err := torch.Try(func() {
			torch.Scoped(func() {
				r := torch.Rand(torch.NewGenerator(p.seed), []int64{int64(n / 2)}, torch.Float32, torch.CPU)
				p.buf = r.MulScalar(0.06).SubScalar(0.03).To(torch.Float16).Bytes()
			})
		})
		if err != nil {
			panic(err)
		}
	}
	return p.buf[:n]
}

// placeholderTensor is a tensor of s's file when s holds placeholders:
// random fp16 for floats, zeros otherwise.
func placeholderTensor(p *placeholderData, t *torch.Tensor) safetensors.Tensor {
	shape := t.Shape()
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	switch dt := t.DType(); dt {
	case torch.Float32, torch.Float16, torch.Float64, torch.BFloat16:
		return safetensors.Tensor{DType: safetensors.F16, Shape: shape, Data: p.bytes(2 * n)}
	default:
		sd := toST[dt]
		return safetensors.Tensor{DType: sd, Shape: shape, Data: make([]byte, n*sd.Size())}
	}
}
