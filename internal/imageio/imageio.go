// Package imageio writes the pictures ddgi shows people: PNGs and animated
// GIFs written atomically, and image grids with optional captions.
package imageio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/draw"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// WriteAtomic writes data to path through a temporary file and a rename, so
// a crash never leaves a half-written file.
func WriteAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SavePNG encodes img and writes it atomically.
func SavePNG(path string, img image.Image) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteAtomic(path, buf.Bytes())
}

// SavePNGText is SavePNG with text chunks (tEXt; keys sorted) right after
// the header, so the image carries how it was made: prompt, seed, hashes
// of its inputs and weights. Keys are 1–79 Latin-1 characters; values
// must be Latin-1 too (iTXt is not needed for ddgi's ASCII metadata), so
// other runes become '?'.
func SavePNGText(path string, img image.Image, text map[string]string) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	b := buf.Bytes()
	const ihdrEnd = 8 + 8 + 13 + 4 // signature, IHDR length+type, data, CRC
	if len(b) < ihdrEnd {
		return fmt.Errorf("encode %s: short PNG", path)
	}
	keys := make([]string, 0, len(text))
	for k := range text {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var chunks bytes.Buffer
	for _, k := range keys {
		if len(k) < 1 || len(k) > 79 {
			return fmt.Errorf("png text key %q: want 1–79 characters", k)
		}
		data := append(latin1(k), 0)
		data = append(data, latin1(text[k])...)
		var hdr [8]byte
		binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)))
		copy(hdr[4:], "tEXt")
		crc := crc32.NewIEEE()
		crc.Write(hdr[4:])
		crc.Write(data)
		chunks.Write(hdr[:])
		chunks.Write(data)
		binary.Write(&chunks, binary.BigEndian, crc.Sum32())
	}
	out := make([]byte, 0, len(b)+chunks.Len())
	out = append(append(append(out, b[:ihdrEnd]...), chunks.Bytes()...), b[ihdrEnd:]...)
	return WriteAtomic(path, out)
}

// PNGText returns the tEXt chunks of PNG bytes (key → text), as
// SavePNGText writes them; a malformed chunk list ends the scan.
func PNGText(b []byte) map[string]string {
	out := map[string]string{}
	for p := 8; p+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[p:]))
		if n < 0 || p+12+n > len(b) {
			break
		}
		if string(b[p+4:p+8]) == "tEXt" {
			k, v, _ := bytes.Cut(b[p+8:p+8+n], []byte{0})
			out[string(k)] = string(v)
		}
		p += 12 + n
	}
	return out
}

// latin1 keeps printable ASCII and Latin-1, writing '?' for other runes.
func latin1(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff || (r < 0x20 && r != '\n') {
			r = '?'
		}
		out = append(out, byte(r))
	}
	return out
}

// SaveGIF writes frames as a looping animation with delay in 1/100 s.
func SaveGIF(path string, frames []image.Image, delay int) error {
	anim := &gif.GIF{LoopCount: 0}
	for _, fr := range frames {
		p := image.NewPaletted(fr.Bounds(), palette.Plan9)
		draw.FloydSteinberg.Draw(p, fr.Bounds(), fr, image.Point{})
		anim.Image = append(anim.Image, p)
		anim.Delay = append(anim.Delay, delay)
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, anim); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteAtomic(path, buf.Bytes())
}

// RGB builds an image from H×W×3 row-major bytes.
func RGB(pix []uint8, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = pix[3*i], pix[3*i+1], pix[3*i+2], 255
	}
	return img
}

// Gray builds an image from H×W bytes.
func Gray(pix []uint8, w, h int) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	copy(img.Pix, pix)
	return img
}

// Grid lays tiles out in rows of cols with a pad-pixel gap; each tile may
// carry a caption printed under it (empty captions take no space when all
// are empty).
func Grid(tiles []image.Image, captions []string, cols, pad int) *image.RGBA {
	if len(tiles) == 0 {
		return image.NewRGBA(image.Rect(0, 0, 1, 1))
	}
	if cols <= 0 {
		cols = len(tiles)
	}
	tw, th := 0, 0
	for _, t := range tiles {
		b := t.Bounds()
		tw, th = max(tw, b.Dx()), max(th, b.Dy())
	}
	capH := 0
	for _, c := range captions {
		if c != "" {
			capH = 14
		}
	}
	rows := (len(tiles) + cols - 1) / cols
	W := cols*tw + (cols+1)*pad
	H := rows*(th+capH) + (rows+1)*pad
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	for i, t := range tiles {
		x := pad + (i%cols)*(tw+pad)
		y := pad + (i/cols)*(th+capH+pad)
		draw.Draw(img, image.Rect(x, y, x+tw, y+th), t, t.Bounds().Min, draw.Src)
		if i < len(captions) && captions[i] != "" {
			Label(img, x, y+th+11, captions[i], tw)
		}
	}
	return img
}

// Label draws s at (x, baseline y), cut to maxW pixels (0: no limit).
func Label(img draw.Image, x, y int, s string, maxW int) {
	if maxW > 0 {
		if n := maxW / 7; len(s) > n && n > 1 {
			s = s[:n-1] + "…"
		}
	}
	d := font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// Upscale enlarges img k times with nearest-neighbour sampling (for
// viewing 64² outputs; no new detail is invented).
func Upscale(img image.Image, k int) image.Image {
	if k <= 1 {
		return img
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx()*k, b.Dy()*k))
	for y := 0; y < b.Dy()*k; y++ {
		for x := 0; x < b.Dx()*k; x++ {
			out.Set(x, y, img.At(b.Min.X+x/k, b.Min.Y+y/k))
		}
	}
	return out
}

// RGBBytes converts an image to H×W×3 bytes, row-major.
func RGBBytes(img image.Image) []uint8 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]uint8, 3*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, bb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := 3 * (y*w + x)
			out[i], out[i+1], out[i+2] = uint8(r>>8), uint8(g>>8), uint8(bb>>8)
		}
	}
	return out
}
