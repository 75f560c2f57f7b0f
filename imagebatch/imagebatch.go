// Package imagebatch turns dataset samples into model tensors: images in
// [-1,1], one-hot masks, scribbles, and cameras, batched on a device.
package imagebatch

import (
	"fmt"

	"ddgi/data"
	"ddgi/torch"
)

// Classes is the number of semantic mask labels (CelebAMask-HQ order).
const Classes = 19

func fetch(ds data.Dataset, start, n int) []*data.Sample {
	out := make([]*data.Sample, n)
	for i := range out {
		s, err := ds.Get((start + i) % ds.Len())
		if err != nil {
			panic(&torch.Error{Op: "dataset", Msg: err.Error()})
		}
		out[i] = s
	}
	return out
}

// Images returns samples start…start+n−1 (wrapping) as [n,3,S,S] in [-1,1].
func Images(ds data.Dataset, start, n int, dev torch.Device) *torch.Tensor {
	return FromSamples(fetch(ds, start, n), dev).Image
}

// Batch holds one batch of samples as tensors.
type Batch struct {
	Image    *torch.Tensor // [B,3,S,S] in [-1,1]
	Mask     *torch.Tensor // [B,S,S] int64 labels 0..18
	Scribble *torch.Tensor // [B,1,S,S] in {0,1}
	Camera   *torch.Tensor // [B,25]
	Captions []string      // one per sample (the first caption)
	Samples  []*data.Sample
}

// SampleImages stacks the samples' images (equal sizes) as [N,3,S,S] in
// [-1,1] on the CPU.
func SampleImages(ss []*data.Sample) *torch.Tensor {
	n, sz := len(ss), sameSize(ss)
	hw := sz * sz
	img := make([]float32, n*3*hw)
	for b, s := range ss {
		for i := 0; i < hw; i++ {
			for c := 0; c < 3; c++ {
				img[(b*3+c)*hw+i] = float32(s.Image[3*i+c])/127.5 - 1
			}
		}
	}
	return torch.FromFloat32(img, int64(n), 3, int64(sz), int64(sz))
}

// SampleMasks stacks the samples' label maps as [N,S,S] int64 on the CPU
// (zeros for a sample without a mask).
func SampleMasks(ss []*data.Sample) *torch.Tensor {
	maps := make([][]uint8, len(ss))
	for i, s := range ss {
		maps[i] = s.Mask
	}
	return Labels(maps, sameSize(ss))
}

// SampleScribbles stacks the samples' stroke maps as [N,1,S,S] float32 on
// the CPU (see Strokes; zeros for a sample without a scribble).
func SampleScribbles(ss []*data.Sample) *torch.Tensor {
	maps := make([][]uint8, len(ss))
	for i, s := range ss {
		maps[i] = s.Scribble
	}
	return Strokes(maps, sameSize(ss))
}

// Labels stacks size² label maps (one byte a pixel, 0..18) as [N,S,S]
// int64 on the CPU; a nil map is all background. It is the one path from
// label bytes to a mask tensor.
func Labels(maps [][]uint8, size int) *torch.Tensor {
	s := int64(size)
	return stackBytes(maps, size).Reshape(int64(len(maps)), s, s).To(torch.Int64)
}

// Strokes stacks size² stroke maps (0/255 bytes; a pixel above 127 is a
// stroke) as [N,1,S,S] float32 in {0,1} on the CPU; a nil map is empty. It
// is the one path from scribble bytes to a scribble tensor.
func Strokes(maps [][]uint8, size int) *torch.Tensor {
	s := int64(size)
	return stackBytes(maps, size).Reshape(int64(len(maps)), 1, s, s).GtScalar(127).To(torch.Float32)
}

// stackBytes copies the maps (each size² bytes, or nil: zeros) into one
// [N·size²] uint8 tensor.
func stackBytes(maps [][]uint8, size int) *torch.Tensor {
	hw := size * size
	flat := make([]uint8, len(maps)*hw)
	for i, m := range maps {
		if len(m) != hw && m != nil {
			panic(&torch.Error{Op: "batch", Msg: fmt.Sprintf("map %d has %d pixels, want %d²", i+1, len(m), size)})
		}
		copy(flat[i*hw:], m)
	}
	return torch.FromUint8(flat, int64(len(flat)))
}

func sameSize(ss []*data.Sample) int {
	sz := ss[0].Size
	for _, s := range ss {
		if s.Size != sz {
			panic(&torch.Error{Op: "batch", Msg: "samples of different sizes"})
		}
	}
	return sz
}

// FromSamples converts samples of equal size to a Batch on dev.
func FromSamples(ss []*data.Sample, dev torch.Device) Batch {
	n := len(ss)
	cam := make([]float32, n*25)
	caps := make([]string, n)
	for b, s := range ss {
		copy(cam[b*25:], s.Camera[:])
		if len(s.Captions) > 0 {
			caps[b] = s.Captions[0]
		}
	}
	mv := func(t *torch.Tensor) *torch.Tensor {
		if dev == torch.CPU {
			return t
		}
		return t.ToDevice(dev)
	}
	return Batch{
		Image:    mv(SampleImages(ss)),
		Mask:     mv(SampleMasks(ss)),
		Scribble: mv(SampleScribbles(ss)),
		Camera:   mv(torch.FromFloat32(cam, int64(n), 25)),
		Captions: caps,
		Samples:  ss,
	}
}

// Get loads samples start…start+n−1 (wrapping) as a Batch.
func Get(ds data.Dataset, start, n int, dev torch.Device) Batch {
	return FromSamples(fetch(ds, start, n), dev)
}

// OneHot turns [B,S,S] labels into [B,19,S,S] float one-hot maps.
func OneHot(mask *torch.Tensor) *torch.Tensor {
	return torch.OneHot(mask, Classes).Permute(0, 3, 1, 2).To(torch.Float32)
}
