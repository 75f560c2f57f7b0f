package imageio

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"ddgi/torch"
)

func TestTensorImageRoundTripAndGrid(t *testing.T) {
	pix := make([]uint8, 4*2*3)
	for i := range pix {
		pix[i] = uint8(i * 10)
	}
	torch.Scoped(func() {
		x := ToTensor(pix, 4, 2, torch.CPU)
		imgs, err := FromTensor(torch.Cat([]*torch.Tensor{x, x}, 0))
		if err != nil || len(imgs) != 2 {
			t.Fatalf("%v %d", err, len(imgs))
		}
		r, g, b, _ := imgs[1].At(3, 1).RGBA()
		i := (1*4 + 3) * 3
		if uint8(r>>8) != pix[i] || uint8(g>>8) != pix[i+1] || uint8(b>>8) != pix[i+2] {
			t.Fatalf("pixel round trip: %d %d %d vs %v", r>>8, g>>8, b>>8, pix[i:i+3])
		}
		path := filepath.Join(t.TempDir(), "g.png")
		if err := SaveTensorGrid(path, torch.Cat([]*torch.Tensor{x, x, x}, 0), 2); err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(path)
		defer f.Close()
		cfg, err := png.DecodeConfig(f)
		if err != nil || cfg.Width != 2*4+3*2 || cfg.Height != 2*2+3*2 {
			t.Fatalf("grid %dx%d %v", cfg.Width, cfg.Height, err)
		}
		if _, err := FromTensor(torch.Zeros([]int64{1, 2, 4, 4}, torch.Float32, torch.CPU)); err == nil {
			t.Fatal("2-channel tensor accepted as image")
		}
	})
}

func TestUpscaleNearest(t *testing.T) {
	src := RGB([]uint8{10, 20, 30, 40, 50, 60}, 2, 1)
	up := Upscale(src, 3)
	if b := up.Bounds(); b.Dx() != 6 || b.Dy() != 3 {
		t.Fatalf("bounds %v", b)
	}
	for _, c := range []struct{ x, y, want int }{{0, 0, 10}, {2, 2, 10}, {3, 0, 40}, {5, 2, 40}} {
		r, _, _, _ := up.At(c.x, c.y).RGBA()
		if int(r>>8) != c.want {
			t.Errorf("(%d,%d) red %d, want %d", c.x, c.y, r>>8, c.want)
		}
	}
}

// TestSavePNGText writes text chunks that any PNG reader skips and that
// read back as written.
func TestSavePNGText(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 5, 3))
	path := filepath.Join(t.TempDir(), "t.png")
	want := map[string]string{"Description": "A smiling woman.", "ddgi:seed": "7", "ddgi:weights-sha256": "ab12"}
	if err := SavePNGText(path, img, want); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("not a valid PNG any more: %v", err)
	}
	got := PNGText(b)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("text %q = %q, want %q", k, got[k], v)
		}
	}
}
