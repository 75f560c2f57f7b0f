package face_test

import (
	"testing"

	"ddgi/face"
	"ddgi/internal/testweights"
	"ddgi/kinds"
	"ddgi/torch"
)

// TestEveryTensorOnTheRequestedDevice runs the method on libtorch's meta
// device, a stand-in for a GPU that every machine has: any tensor a path
// creates on the CPU instead of the requested device fails the first op
// that mixes it with the model's (as it would on CUDA).
func TestEveryTensorOnTheRequestedDevice(t *testing.T) {
	dir := testweights.Tiny(t, "../weights/tokenizer.json")
	for _, gan := range []kinds.GANArch{kinds.StyleGAN2, kinds.EG3D} {
		for _, cond := range []kinds.Cond{kinds.Mask, kinds.Scribble} {
			for _, step := range []int{-1, 500} {
				p, err := face.Load(face.Options{Weights: dir, GAN: gan, Cond: cond, Device: torch.Meta, Step: step})
				if err != nil {
					t.Fatalf("%s %s: %v", gan, cond, err)
				}
				size := p.Size()
				req := face.Request{Text: "The woman has wavy blond hair.", Seed: 1}
				if cond == kinds.Mask {
					req.Mask = make([]uint8, size*size)
				} else {
					req.Scribble = make([]uint8, size*size)
				}
				w, err := p.Codes([]face.Request{req, req})
				if err != nil {
					t.Fatalf("%s %s step %d: codes: %v", gan, cond, step, err)
				}
				if w.Device() != torch.Meta {
					t.Fatalf("%s %s: codes on %s", gan, cond, w.Device())
				}
				var cams *torch.Tensor
				if p.G.Is3D() {
					cams = p.G.Camera(20, 5).ToDevice(torch.Meta).Expand(2, -1)
				}
				img, err := p.Render(w, cams)
				if err != nil {
					t.Fatalf("%s %s: render: %v", gan, cond, err)
				}
				if img.Device() != torch.Meta || img.Size(0) != 2 || img.Size(1) != 3 {
					t.Fatalf("%s %s: image %v on %s", gan, cond, img.Shape(), img.Device())
				}
			}
		}
	}
}
