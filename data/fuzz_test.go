package data

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
)

// seedPNGs are small masks and scribbles in each colour model the readers
// accept, so the fuzzer starts from valid files.
func seedPNGs(f *testing.F) {
	add := func(img image.Image) {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	g := image.NewGray(image.Rect(0, 0, 12, 9))
	for i := range g.Pix {
		g.Pix[i] = uint8(i % 19)
	}
	add(g)
	p := image.NewPaletted(image.Rect(0, 0, 7, 7), color.Palette{color.Black, color.White, color.RGBA{255, 0, 0, 255}})
	p.Pix[3] = 2
	add(p)
	rgb := image.NewRGBA(image.Rect(0, 0, 5, 8))
	for i := range rgb.Pix {
		rgb.Pix[i] = uint8(i * 37)
	}
	add(rgb)
	add(image.NewGray16(image.Rect(0, 0, 4, 4)))
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
}

// FuzzDecodeMask: arbitrary bytes give a size² label map within the 19
// classes or a one-line error, never a panic.
func FuzzDecodeMask(f *testing.F) {
	seedPNGs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMask("upload.png", b, 16)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if len(m) != 16*16 {
			t.Fatalf("%d labels, want 256", len(m))
		}
		for _, v := range m {
			if v >= 19 {
				t.Fatalf("label %d outside the 19 classes", v)
			}
		}
	})
}

// FuzzDecodeScribble: arbitrary bytes give a size² 0/255 stroke map or a
// one-line error.
func FuzzDecodeScribble(f *testing.F) {
	seedPNGs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeScribble("upload.png", b, 16)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if len(s) != 16*16 {
			t.Fatalf("%d pixels, want 256", len(s))
		}
		for _, v := range s {
			if v != 0 && v != 255 {
				t.Fatalf("stroke value %d, want 0 or 255", v)
			}
		}
	})
}
