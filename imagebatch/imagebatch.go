// Package imagebatch turns dataset samples into model tensors: images in
// [-1,1], one-hot masks, scribbles, and cameras, batched on a device.
package imagebatch

import (
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
	n, sz := len(ss), sameSize(ss)
	hw := sz * sz
	mask := make([]int64, n*hw)
	for b, s := range ss {
		for i, l := range s.Mask {
			mask[b*hw+i] = int64(l)
		}
	}
	return torch.FromInt64(mask, int64(n), int64(sz), int64(sz))
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
	n, sz := len(ss), sameSize(ss)
	hw := sz * sz
	scr := make([]float32, n*hw)
	cam := make([]float32, n*25)
	caps := make([]string, n)
	for b, s := range ss {
		for i := 0; i < hw && s.Scribble != nil; i++ {
			if s.Scribble[i] > 127 {
				scr[b*hw+i] = 1
			}
		}
		copy(cam[b*25:], s.Camera[:])
		if len(s.Captions) > 0 {
			caps[b] = s.Captions[0]
		}
	}
	S := int64(sz)
	mv := func(t *torch.Tensor) *torch.Tensor {
		if dev == torch.CPU {
			return t
		}
		return t.ToDevice(dev)
	}
	return Batch{
		Image:    mv(SampleImages(ss)),
		Mask:     mv(SampleMasks(ss)),
		Scribble: mv(torch.FromFloat32(scr, int64(n), 1, S, S)),
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
