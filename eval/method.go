// Package eval runs generation methods on SynthFace-bench and scores them
// with every metric of the paper's Table 1 plus attribute accuracy. Methods
// plug in through the Method interface and a Registry, so the diffusion
// baseline, ddgi and its ablations (package eval/methods) all run through
// the same code.
package eval

import (
	"fmt"
	"sort"

	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/torch"
)

// Batch is one batch of bench pairs handed to a method: the spatial
// condition, the text prompt per sample, and (for sanity methods and
// scoring only) the ground truth samples.
type Batch struct {
	Cond kinds.Cond
	Size int
	// Mask is [N,S,S] int64 labels (synthface.Classes); Scribble is
	// [N,1,S,S] float32, 1 on strokes. Both are always filled; a method uses
	// the one Cond names.
	Mask, Scribble *torch.Tensor
	Prompts        []string
	// Index is the bench index of each sample.
	Index []int
	// Seeds are the samples' noise seeds; nil means their Index (Seed).
	Seeds []int64
	// Samples are the ground truth; real methods must not read Image.
	Samples []*data.Sample
}

// Seed is sample i's noise seed: Seeds[i], or its bench index.
func (b *Batch) Seed(i int) int64 {
	if b.Seeds != nil {
		return b.Seeds[i]
	}
	return int64(b.Index[i])
}

// Method generates one image per pair: [N,3,S,S] float32 in [-1, 1]. It
// runs inside a scope with gradients enabled (for methods that optimise per
// image); feed-forward methods should wrap their work in torch.NoGrad.
type Method interface {
	Name() string
	Generate(b *Batch) (*torch.Tensor, error)
}

// SanityCheck marks reference methods that read the ground truth or ignore
// the condition: they test the pipeline and are not results.
type SanityCheck interface{ Sanity() bool }

func isSanity(m Method) bool {
	s, ok := m.(SanityCheck)
	return ok && s.Sanity()
}

// Factory builds a method; weights are loaded here, not at registration.
type Factory func() (Method, error)

// Registry names the methods `ddgi eval --method` can run.
type Registry struct{ factories map[string]Factory }

// NewRegistry holds the sanity checks gt, blur and paint; the methods
// that load trained networks are added by package eval/methods.
func NewRegistry() *Registry {
	r := &Registry{factories: map[string]Factory{}}
	// gt returns the ground truth: perfect scores (FID≈0, LPIPS 0, MS-SSIM
	// 1, ID 1, parser ACC/mIoU at the parser's own accuracy).
	r.Register("gt", func() (Method, error) {
		return sanity{"gt", func(b *Batch) *torch.Tensor { return imagebatch.SampleImages(b.Samples) }}, nil
	})
	// blur is the ground truth blurred (σ = 1.5 px): a degraded reference.
	r.Register("blur", func() (Method, error) {
		return sanity{"blur", func(b *Batch) *torch.Tensor { return nn.Blur(imagebatch.SampleImages(b.Samples), 1.5) }}, nil
	})
	// paint colours the condition: each mask class in a fixed skin-tone
	// palette, or dark strokes on gray for a scribble; it reads no ground
	// truth and is the floor a real method must beat.
	r.Register("paint", func() (Method, error) { return sanity{"paint", paint}, nil })
	return r
}

// Register adds a method; a name registered twice is a programming error.
func (r *Registry) Register(name string, f Factory) {
	if _, dup := r.factories[name]; dup {
		panic("eval: duplicate method " + name)
	}
	r.factories[name] = f
}

// New builds a registered method.
func (r *Registry) New(name string) (Method, error) {
	f, ok := r.factories[name]
	if !ok {
		return nil, fmt.Errorf("unknown method %q (known: %v)", name, r.Names())
	}
	return f()
}

// Names lists the registered methods, sorted.
func (r *Registry) Names() []string {
	n := make([]string, 0, len(r.factories))
	for k := range r.factories {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// sanity is a reference method built from a function.
type sanity struct {
	name string
	gen  func(b *Batch) *torch.Tensor
}

func (s sanity) Name() string { return s.name }
func (s sanity) Sanity() bool { return true }
func (s sanity) Generate(b *Batch) (out *torch.Tensor, err error) {
	err = torch.Try(func() { out = s.gen(b) })
	return out, err
}

// paintColors are rough SynthFace class colours (sRGB 0–255).
var paintColors = [][3]float32{
	{120, 130, 140}, {224, 172, 140}, {214, 160, 130}, {40, 40, 45}, {240, 240, 240}, {240, 240, 240},
	{70, 50, 40}, {70, 50, 40}, {210, 155, 125}, {210, 155, 125}, {90, 20, 30}, {180, 90, 90},
	{170, 80, 85}, {80, 55, 40}, {60, 60, 90}, {220, 190, 60}, {200, 180, 80}, {205, 150, 120}, {60, 70, 110},
}

func paint(b *Batch) *torch.Tensor {
	if b.Cond == kinds.Scribble {
		return b.Scribble.MulScalar(-1.6).AddScalar(0.2).Repeat(1, 3, 1, 1)
	}
	v := make([]float32, 0, 3*len(paintColors))
	for k := 0; k < 3; k++ {
		for _, c := range paintColors {
			v = append(v, c[k]/127.5-1)
		}
	}
	pal := torch.FromFloat32(v, 3, int64(len(paintColors)))
	// [N,S,S] labels → one-hot [N,S,S,19] → [N,S,S,3] → NCHW.
	oh := torch.OneHot(b.Mask, int64(len(paintColors))).To(torch.Float32)
	return oh.Matmul(pal.Transpose(0, 1)).Permute(0, 3, 1, 2).Contiguous()
}
