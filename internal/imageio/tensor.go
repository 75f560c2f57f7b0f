package imageio

import (
	"fmt"
	"image"
	"math"

	"ddgi/torch"
)

// FromTensor converts a [N,C,H,W] float tensor in [-1, 1] (C = 1 or 3) to
// N images.
func FromTensor(t *torch.Tensor) ([]image.Image, error) {
	var imgs []image.Image
	err := torch.Try(func() {
		s := t.Shape()
		if len(s) != 4 || (s[1] != 1 && s[1] != 3) {
			panic(&torch.Error{Op: "image", Msg: fmt.Sprintf("want [N,1|3,H,W], got %v", s)})
		}
		n, c, h, w := int(s[0]), int(s[1]), int(s[2]), int(s[3])
		v := t.Detach().Float32s()
		for i := 0; i < n; i++ {
			img := image.NewRGBA(image.Rect(0, 0, w, h))
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					for k := 0; k < 3; k++ {
						ch := k
						if c == 1 {
							ch = 0
						}
						f := v[((i*c+ch)*h+y)*w+x]
						img.Pix[(y*w+x)*4+k] = to8(f)
					}
					img.Pix[(y*w+x)*4+3] = 255
				}
			}
			imgs = append(imgs, img)
		}
	})
	return imgs, err
}

func to8(f float32) uint8 {
	v := math.Round(float64(f+1) * 127.5)
	if v < 0 || math.IsNaN(v) {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// ToTensor converts H×W×3 RGB bytes to a [1,3,H,W] float32 tensor in [-1, 1].
func ToTensor(pix []uint8, w, h int, dev torch.Device) *torch.Tensor {
	v := make([]float32, 3*w*h)
	for i := 0; i < w*h; i++ {
		for k := 0; k < 3; k++ {
			v[k*w*h+i] = float32(pix[3*i+k])/127.5 - 1
		}
	}
	t := torch.FromFloat32(v, 1, 3, int64(h), int64(w))
	if dev != torch.CPU {
		t = t.ToDevice(dev)
	}
	return t
}

// SaveTensorGrid writes a [N,C,H,W] tensor in [-1,1] as a PNG grid.
func SaveTensorGrid(path string, t *torch.Tensor, cols int) error {
	imgs, err := FromTensor(t)
	if err != nil {
		return err
	}
	return SavePNG(path, Grid(imgs, nil, cols, 2))
}
