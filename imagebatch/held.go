package imagebatch

import (
	"context"
	"fmt"
	"io"

	"ddgi/data"
	"ddgi/internal/progress"
	"ddgi/torch"
)

// Held is the first samples of a dataset read once and kept in memory:
// images as uint8 NCHW (3·S² bytes a sample, so the count bounds the
// memory), captions and face attributes. Trainers that draw many random
// batches from a modest set (the text encoder, the VAE) pay the rendering
// or decoding once.
type Held struct {
	Size     int
	Pixels   []uint8 // N×3×S×S
	Captions [][]string
	Attrs    [][]float64 // a row is nil when the source has no attributes
}

// HoldOptions say how Hold reads.
type HoldOptions struct {
	Workers int    // parallel Get calls (≤ 0: 1)
	Label   string // progress line
	Out     io.Writer
	Quiet   bool // no progress line
}

// Hold reads samples 0…n−1 of ds (n ≤ ds.Len()), each size×size, with a
// progress line. A cancelled ctx stops it with ctx's cause.
func Hold(ctx context.Context, ds data.Dataset, n, size int, o HoldOptions) (*Held, error) {
	if n < 1 || n > ds.Len() {
		return nil, fmt.Errorf("%s: %d samples asked of %d", o.Label, n, ds.Len())
	}
	ld, err := data.NewLoader(ds, data.LoaderOptions{BatchSize: 64, Workers: o.Workers})
	if err != nil {
		return nil, err
	}
	h := &Held{Size: size, Pixels: make([]uint8, n*3*size*size), Captions: make([][]string, n), Attrs: make([][]float64, n)}
	bar := progress.New(o.Label, 0, int64(n), "img")
	if o.Out != nil {
		bar.Out = o.Out
	}
	if o.Quiet {
		bar.Out = io.Discard
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	i := 0
	for b := range ld.Epoch(ctx, 0) {
		if b.Err != nil {
			return nil, fmt.Errorf("%s: %w", o.Label, b.Err)
		}
		for _, s := range b.Samples {
			if i == n {
				break
			}
			if err := h.put(i, s); err != nil {
				return nil, fmt.Errorf("%s: %w", o.Label, err)
			}
			i++
		}
		bar.Set(int64(i), nil)
		if i == n {
			break
		}
	}
	bar.Finish()
	if i < n {
		return nil, fmt.Errorf("%s: %w", o.Label, context.Cause(ctx))
	}
	return h, nil
}

// put stores sample s at index i.
func (h *Held) put(i int, s *data.Sample) error {
	if s.Size != h.Size || len(s.Image) != 3*h.Size*h.Size {
		return fmt.Errorf("sample %d is %d², want %d²", i, s.Size, h.Size)
	}
	hw := h.Size * h.Size
	px := h.Pixels[i*3*hw : (i+1)*3*hw]
	for k := 0; k < hw; k++ {
		for c := 0; c < 3; c++ {
			px[c*hw+k] = s.Image[3*k+c]
		}
	}
	h.Captions[i] = s.Captions
	if s.Attrs != nil {
		a := make([]float64, len(s.Attrs))
		for k, v := range s.Attrs {
			a[k] = float64(v)
		}
		h.Attrs[i] = a
	}
	return nil
}

// Len is the number of samples held.
func (h *Held) Len() int { return len(h.Captions) }

// Images returns the images idx as float32 [B,3,S,S] in [-1,1] on the CPU.
func (h *Held) Images(idx []int) *torch.Tensor {
	m := 3 * h.Size * h.Size
	buf := make([]uint8, 0, len(idx)*m)
	for _, i := range idx {
		buf = append(buf, h.Pixels[i*m:(i+1)*m]...)
	}
	s := int64(h.Size)
	return torch.FromUint8(buf, int64(len(idx)), 3, s, s).To(torch.Float32).DivScalar(127.5).SubScalar(1)
}

// Source opens split of a training source with at most n samples of
// size² (cmd/ddgi passes its --data/--val/--on-bad opener); synth builds
// the SynthFace variant when the source is SynthFace (nil: plain).
type Source func(split data.Split, size, n int, synth func(split data.Split, size, n int) data.Dataset) (data.Dataset, error)

// HoldSplits holds up to nTrain training and nBench bench samples of src
// (nil: SynthFace); a folder may have fewer. A folder without a held-out
// part (--val 0) has no bench split: that is an error, not a fallback to
// training samples, since the bench numbers would then flatter the model.
func HoldSplits(ctx context.Context, src Source, synth func(data.Split, int, int) data.Dataset, nTrain, nBench, size int, o HoldOptions) (tr, bench *Held, err error) {
	if src == nil {
		src = func(split data.Split, size, n int, synth func(data.Split, int, int) data.Dataset) (data.Dataset, error) {
			return data.Open(data.SynthFaceSource, data.OpenOptions{Size: size, Split: split, N: n, SynthFace: synth})
		}
	}
	hold := func(split data.Split, n int) (*Held, error) {
		ds, err := src(split, size, n, synth)
		if err != nil {
			return nil, fmt.Errorf("%s data: %w", split, err)
		}
		ho := o
		ho.Label = o.Label + " " + split.String()
		return Hold(ctx, ds, min(n, ds.Len()), size, ho)
	}
	if tr, err = hold(data.Train, nTrain); err != nil {
		return nil, nil, err
	}
	if bench, err = hold(data.Bench, nBench); err != nil {
		return nil, nil, err
	}
	return tr, bench, nil
}
