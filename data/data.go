// Package data feeds every ddgi trainer: samples (image, 19-class mask,
// scribble, captions, EG3D camera, identity, attributes) from the SynthFace
// renderer or from a folder in CelebAMask-HQ layout, flip augmentation, a
// parallel batch loader, and readers for user-supplied mask and scribble
// PNGs. Pure Go, so it tests without libtorch.
package data

import (
	"fmt"

	"ddgi/synthface"
)

// Sample is one training example at Size×Size. Image is RGB row-major
// (Size*Size*3), Mask holds class indices (synthface.Classes order) and
// Scribble 0/255 strokes. Identity and Seed are -1 when unknown; Attrs is
// nil when unknown, else in synthface.AttributeNames order.
type Sample struct {
	Image, Mask, Scribble []uint8
	Size                  int
	Captions              []string
	Camera                [25]float32
	Identity              int64
	Attrs                 []float32
	Seed                  int64
	Art                   synthface.Art // depiction style (photo unless drawn as an artwork)
}

// Dataset is an indexable source of samples; Get must be safe for
// concurrent use.
type Dataset interface {
	Len() int
	Get(i int) (*Sample, error)
}

// CameraSource is a Dataset that can tell a sample's camera without
// loading it: a data-parallel rank of a 3-D GAN needs every row's camera
// (fakes borrow the batch's poses) but only its own rows' images.
type CameraSource interface {
	Camera(i int) ([25]float32, error)
}

// Viewer is a Dataset that can draw sample i again from another camera
// (EG3D's 25-float label): the same person, attributes and light, turned.
// SynthFace is one; a folder of photos is not.
type Viewer interface {
	Dataset
	View(i int, camera [25]float32) (*Sample, error)
}

// Turned is v with every sample drawn from camera.
func Turned(v Viewer, camera [25]float32) Dataset { return turned{v, camera} }

type turned struct {
	v      Viewer
	camera [25]float32
}

func (t turned) Len() int                   { return t.v.Len() }
func (t turned) Get(i int) (*Sample, error) { return t.v.View(i, t.camera) }

// Split names a SynthFace partition.
type Split int

const (
	Train Split = iota
	Bench
	// Val is held out from both: no trainer draws it and no table scores
	// it, so settings can be chosen on it without touching the bench.
	Val
)

// BenchSize is the number of samples in SynthFace-bench.
const BenchSize = 2000

// benchBase offsets bench seeds: train index i uses seed i, bench index i
// uses benchBase+i, so the two never share a seed, and since a sample's
// identity id is derived from the same range, never share a person.
const benchBase = int64(1) << 40

// valBase offsets Val's seeds the same way, below the bench's.
const valBase = int64(1) << 39

func (s Split) String() string {
	switch s {
	case Bench:
		return "bench"
	case Val:
		return "val"
	}
	return "train"
}

// ParseSplit accepts "train" or "bench".
func ParseSplit(name string) (Split, error) {
	switch name {
	case "train":
		return Train, nil
	case "bench":
		return Bench, nil
	case "val":
		return Val, nil
	}
	return 0, fmt.Errorf("unknown split %q (want train, val or bench)", name)
}

// Seed is the renderer seed of index i in the split.
func (s Split) Seed(i int) int64 {
	switch s {
	case Bench:
		return benchBase + int64(i)
	case Val:
		return valBase + int64(i)
	}
	return int64(i)
}

// SplitOf reports which split a seed (or identity id) belongs to.
func SplitOf(seed int64) Split {
	switch {
	case seed >= benchBase:
		return Bench
	case seed >= valBase:
		return Val
	}
	return Train
}

// FromFace converts a render into a Sample.
func FromFace(f *synthface.Face) *Sample {
	return &Sample{
		Image: f.Image, Mask: f.Mask, Scribble: f.Scribble, Size: f.Size,
		Captions: f.Captions, Camera: f.Params.Camera.EG3D(),
		Identity: f.Params.Identity.ID, Attrs: f.Attrs.Vector(), Seed: f.Params.Seed, Art: f.Params.Art,
	}
}

// synthSet renders on demand; index → seed is fixed by the split.
type synthSet struct {
	split       Split
	size, n     int
	perIdentity int
	artProb     float64 // share of samples drawn as artworks (synthface.WithArt)
	arts        []synthface.Art
	yawSpread   float64 // share of samples re-aimed at a uniform yaw (synthface.WithSpreadYaw)
}

// NewSynthFace is an on-the-fly SynthFace dataset of n samples at size²:
// index i renders seed split.Seed(i), a distinct person per sample.
func NewSynthFace(split Split, size int, n int) Dataset {
	return &synthSet{split: split, size: size, n: max(n, 0), perIdentity: 1}
}

// NewSynthFaceIdentities groups samples by person: indices
// [k*per, (k+1)*per) show identity split.Seed(k*per) with different
// attributes, views and light, for identity-network training.
func NewSynthFaceIdentities(split Split, size, n, per int) Dataset {
	return &synthSet{split: split, size: size, n: max(n, 0), perIdentity: max(per, 1)}
}

// NewSynthFaceArt is NewSynthFace with a share prob of samples depicted as
// artworks (styles picked uniformly from arts, captions prefixed with the
// style): stylised prompts for the diffusion model (the paper's Sec. 4.4).
// Which samples are artworks depends on the seed alone.
func NewSynthFaceArt(split Split, size, n int, prob float64, arts []synthface.Art) Dataset {
	return &synthSet{split: split, size: size, n: max(n, 0), perIdentity: 1, artProb: prob, arts: arts}
}

// NewSynthFaceSpreadYaw is NewSynthFace with a share of samples seen from
// a yaw drawn uniformly in ±50° (synthface.WithSpreadYaw): side views for
// training a 3D GAN.
func NewSynthFaceSpreadYaw(split Split, size, n int, share float64) Dataset {
	return &synthSet{split: split, size: size, n: max(n, 0), perIdentity: 1, yawSpread: share}
}

func (d *synthSet) Len() int { return d.n }

func (d *synthSet) Get(i int) (*Sample, error) {
	p, err := d.params(i)
	if err != nil {
		return nil, err
	}
	return FromFace(synthface.Render(p, d.size)), nil
}

// Camera is sample i's camera without rendering it (CameraSource).
func (d *synthSet) Camera(i int) ([25]float32, error) {
	p, err := d.params(i)
	if err != nil {
		return [25]float32{}, err
	}
	return p.Camera.EG3D(), nil
}

// View renders sample i from camera (Viewer).
func (d *synthSet) View(i int, camera [25]float32) (*Sample, error) {
	p, err := d.params(i)
	if err != nil {
		return nil, err
	}
	p.Camera = synthface.CameraFromEG3D(camera)
	if err := p.Camera.Validate(); err != nil {
		return nil, err
	}
	return FromFace(synthface.Render(p, d.size)), nil
}

// params draws sample i's face parameters.
func (d *synthSet) params(i int) (synthface.Params, error) {
	if i < 0 || i >= d.n {
		return synthface.Params{}, fmt.Errorf("synthface %s: index %d out of range [0,%d)", d.split, i, d.n)
	}
	if d.size < 8 {
		return synthface.Params{}, fmt.Errorf("synthface: size %d too small (want ≥ 8)", d.size)
	}
	seed := d.split.Seed(i)
	id := d.split.Seed(i - i%d.perIdentity)
	p := synthface.WithArt(synthface.SampleParamsForIdentity(id, seed), d.artProb, d.arts)
	return synthface.WithSpreadYaw(p, d.yawSpread), nil
}

// Flip mirrors a sample horizontally: pixels mirrored, left/right labels
// swapped, and the camera reflected through the face's symmetry plane
// (x = 0) as EG3D's mirror augmentation does. Captions are unchanged.
func Flip(s *Sample) *Sample {
	n := s.Size
	o := *s
	o.Image = make([]uint8, len(s.Image))
	o.Mask = make([]uint8, len(s.Mask))
	o.Scribble = make([]uint8, len(s.Scribble))
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			src, dst := y*n+x, y*n+n-1-x
			if len(s.Mask) == n*n {
				o.Mask[dst] = synthface.FlipClass(s.Mask[src])
			}
			if len(s.Scribble) == n*n {
				o.Scribble[dst] = s.Scribble[src]
			}
			if len(s.Image) == 3*n*n {
				copy(o.Image[3*dst:3*dst+3], s.Image[3*src:3*src+3])
			}
		}
	}
	o.Camera = FlipCamera(s.Camera)
	return &o
}

// FlipCamera mirrors an EG3D camera: C' = S·C·S with S = diag(-1,1,1,1),
// and the principal point reflected.
func FlipCamera(c [25]float32) [25]float32 {
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			if (i == 0) != (j == 0) {
				c[i*4+j] = -c[i*4+j]
			}
		}
	}
	c[16+2] = 1 - c[16+2]
	return c
}
