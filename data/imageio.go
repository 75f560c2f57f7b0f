package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io/fs"
	"os"

	"ddgi/internal/imageio"
	"ddgi/synthface"
)

// ImageLimits bound what one input image may cost: its side, and its
// decoded size (width × height × bytes per pixel of its colour model), both
// checked from the header before decoding. A PNG of one colour compresses
// 8192² RGBA16 (512 MiB decoded) into a few hundred KB.
type ImageLimits struct {
	MaxSide  int
	MaxBytes int64
}

// Limits is what image readers allow; commands raise it by flag
// (--max-image-mb). The default takes a 4096² RGBA image.
var Limits = ImageLimits{MaxSide: 4096, MaxBytes: 64 << 20}

// check reports an image header beyond the limits.
func (l ImageLimits) check(cfg image.Config) error {
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > l.MaxSide || cfg.Height > l.MaxSide {
		return fmt.Errorf("image is %d×%d, want at most %d×%d", cfg.Width, cfg.Height, l.MaxSide, l.MaxSide)
	}
	if n := int64(cfg.Width) * int64(cfg.Height) * bytesPerPixel(cfg.ColorModel); n > l.MaxBytes {
		return fmt.Errorf("image is %d×%d and would decode to %d MiB, more than the %d MiB allowed (--max-image-mb raises it)", cfg.Width, cfg.Height, n>>20, l.MaxBytes>>20)
	}
	return nil
}

// bytesPerPixel is what Go's decoders allocate per pixel for a colour
// model (8, the widest, when unknown).
func bytesPerPixel(m color.Model) int64 {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.YCbCrModel:
		return 3
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel:
		return 4
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 8
}

// BadFileError is a file that cannot serve as input, and why; Error reads
// "path: why". Folder datasets return it so the skip policy can name the
// file it skips.
type BadFileError struct {
	Path string
	Err  error
}

func (e *BadFileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *BadFileError) Unwrap() error { return e.Err }

// badFile wraps err as path's fault, dropping an *fs.PathError's own copy
// of the path so it is named once.
func badFile(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		err = pe.Err
	}
	return &BadFileError{Path: path, Err: err}
}

// decodeFile reads an image after checking its header: format (when png is
// set, PNG only), dimensions and decoded size. Files larger than the
// decoded budget are refused before they are read. Errors are
// *BadFileError.
func decodeFile(path string, pngOnly bool) (image.Image, error) {
	b, err := readImageFile(path)
	if err != nil {
		return nil, err
	}
	return decodeBytes(path, b, pngOnly)
}

// readImageFile reads an image file no larger than the decoded budget (no
// image format stores more than it decodes to, by much).
func readImageFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, badFile(path, err)
	}
	if st.Size() > Limits.MaxBytes {
		return nil, badFile(path, fmt.Errorf("%d MiB file, more than the %d MiB an image may decode to (--max-image-mb raises it)", st.Size()>>20, Limits.MaxBytes>>20))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, badFile(path, err)
	}
	return b, nil
}

// decodeBytes is decodeFile for an image already in memory (an upload);
// path only names it in errors.
func decodeBytes(path string, b []byte, pngOnly bool) (image.Image, error) {
	img, err := decodeImage(b, pngOnly)
	if err != nil {
		return nil, badFile(path, err)
	}
	return img, nil
}

// decodeImage checks the header against Limits, then decodes.
func decodeImage(b []byte, pngOnly bool) (image.Image, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a readable image: %w", err)
	}
	if pngOnly && format != "png" {
		return nil, fmt.Errorf("is %s, want PNG", format)
	}
	if err := Limits.check(cfg); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("corrupt %s: %w", format, err)
	}
	return img, nil
}

// ReadMask reads a semantic mask PNG of any size — one-channel labels,
// paletted (index = label), grey RGB (value = label), or RGB drawn in
// synthface.Palette — and returns size×size labels, nearest-neighbour.
func ReadMask(path string, size int) ([]uint8, error) {
	b, err := readImageFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mask: %w", err)
	}
	return DecodeMask(path, b, size)
}

// DecodeMask is ReadMask for PNG bytes in memory (an upload); name only
// labels errors.
func DecodeMask(name string, b []byte, size int) ([]uint8, error) {
	if size < 1 {
		return nil, fmt.Errorf("read mask %s: bad target size %d", name, size)
	}
	img, err := decodeBytes(name, b, true)
	if err != nil {
		return nil, fmt.Errorf("read mask: %w", err)
	}
	return maskOf(name, img, size)
}

// maskOf turns a decoded mask image into size×size labels.
func maskOf(path string, img image.Image, size int) ([]uint8, error) {
	lab, err := labelsOf(img)
	if err != nil {
		return nil, fmt.Errorf("read mask %s: %w", path, err)
	}
	b := img.Bounds()
	return ResizeNearest(lab, b.Dx(), b.Dy(), size), nil
}

var errLabel = errors.New("bad label")

// labelsOf extracts class indices from a decoded mask.
func labelsOf(img image.Image) ([]uint8, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]uint8, w*h)
	bad := func(x, y, v int) error {
		return fmt.Errorf("mask pixel (%d,%d) has label %d; valid labels are 0–%d: %w", x, y, v, synthface.NumClasses-1, errLabel)
	}
	palette := map[color.RGBA]uint8{}
	for i, c := range synthface.Palette {
		palette[c] = uint8(i)
	}
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := m.GrayAt(b.Min.X+x, b.Min.Y+y).Y
				if int(v) >= synthface.NumClasses {
					return nil, bad(x, y, int(v))
				}
				out[y*w+x] = v
			}
		}
		return out, nil
	case *image.Gray16:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := m.Gray16At(b.Min.X+x, b.Min.Y+y).Y
				if int(v) >= synthface.NumClasses {
					return nil, bad(x, y, int(v))
				}
				out[y*w+x] = uint8(v)
			}
		}
		return out, nil
	case *image.Paletted:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := m.ColorIndexAt(b.Min.X+x, b.Min.Y+y)
				if int(v) >= synthface.NumClasses {
					return nil, bad(x, y, int(v))
				}
				out[y*w+x] = v
			}
		}
		return out, nil
	}
	// Colour image: all-grey means labels stored in RGB, else the palette.
	grey := true
	for y := 0; y < h && grey; y++ {
		for x := 0; x < w; x++ {
			r, g, bb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			if r != g || g != bb {
				grey = false
				break
			}
		}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, bb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			if grey {
				v := int(r >> 8)
				if v >= synthface.NumClasses {
					return nil, bad(x, y, v)
				}
				out[y*w+x] = uint8(v)
				continue
			}
			c := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bb >> 8), 255}
			v, ok := palette[c]
			if !ok {
				return nil, fmt.Errorf("mask pixel (%d,%d) has colour #%02x%02x%02x, which is not in the mask palette: %w", x, y, c.R, c.G, c.B, errLabel)
			}
			out[y*w+x] = v
		}
	}
	return out, nil
}

// ReadScribble reads a scribble PNG (white strokes on black, or black on
// white — the majority value is taken as background) and returns size×size
// 0/255 strokes. Downscaling keeps a stroke if any source pixel has one, so
// thin lines survive.
func ReadScribble(path string, size int) ([]uint8, error) {
	b, err := readImageFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scribble: %w", err)
	}
	return DecodeScribble(path, b, size)
}

// DecodeScribble is ReadScribble for PNG bytes in memory (an upload); name
// only labels errors.
func DecodeScribble(name string, b []byte, size int) ([]uint8, error) {
	if size < 1 {
		return nil, fmt.Errorf("read scribble %s: bad target size %d", name, size)
	}
	img, err := decodeBytes(name, b, true)
	if err != nil {
		return nil, fmt.Errorf("read scribble: %w", err)
	}
	return scribbleOf(img, size), nil
}

// scribbleOf turns a decoded scribble image into size×size 0/255 strokes.
func scribbleOf(img image.Image, size int) []uint8 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	on := make([]bool, w*h)
	white := 0
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray)
			if c.Y >= 128 {
				on[y*w+x] = true
				white++
			}
		}
	}
	if white*2 > w*h { // black strokes on white paper
		for i := range on {
			on[i] = !on[i]
		}
	}
	return resizeStrokes(on, w, h, size)
}

// readMaskFile is ReadMask for a dataset file: errors are *BadFileError,
// and when w > 0 the mask must be w×h, the size of its image.
func readMaskFile(path string, w, h, size int) ([]uint8, error) {
	img, err := decodeSized(path, "mask", w, h)
	if err != nil {
		return nil, err
	}
	lab, err := labelsOf(img)
	if err != nil {
		return nil, badFile(path, err)
	}
	b := img.Bounds()
	return ResizeNearest(lab, b.Dx(), b.Dy(), size), nil
}

// readScribbleFile is ReadScribble for a dataset file, checked like
// readMaskFile.
func readScribbleFile(path string, w, h, size int) ([]uint8, error) {
	img, err := decodeSized(path, "scribble", w, h)
	if err != nil {
		return nil, err
	}
	return scribbleOf(img, size), nil
}

// decodeSized decodes a PNG that must be w×h when w > 0.
func decodeSized(path, what string, w, h int) (image.Image, error) {
	img, err := decodeFile(path, true)
	if err != nil {
		return nil, err
	}
	if b := img.Bounds(); w > 0 && (b.Dx() != w || b.Dy() != h) {
		return nil, badFile(path, fmt.Errorf("%s is %d×%d, its image is %d×%d", what, b.Dx(), b.Dy(), w, h))
	}
	return img, nil
}

// ResizeNearest samples labels at target pixel centres (a w×h map to size²).
func ResizeNearest(src []uint8, w, h, size int) []uint8 {
	out := make([]uint8, size*size)
	for y := 0; y < size; y++ {
		sy := min((2*y+1)*h/(2*size), h-1)
		for x := 0; x < size; x++ {
			sx := min((2*x+1)*w/(2*size), w-1)
			out[y*size+x] = src[sy*w+sx]
		}
	}
	return out
}

// ResizeStrokes resizes a 0/255 scribble (w×h) to size², keeping thin
// strokes when shrinking.
func ResizeStrokes(s []uint8, w, h, size int) []uint8 {
	on := make([]bool, len(s))
	for i, v := range s {
		on[i] = v > 127
	}
	return resizeStrokes(on, w, h, size)
}

// resizeStrokes max-pools when shrinking and samples nearest when growing.
func resizeStrokes(on []bool, w, h, size int) []uint8 {
	out := make([]uint8, size*size)
	for y := 0; y < size; y++ {
		y0, y1 := y*h/size, max((y+1)*h/size, y*h/size+1)
		for x := 0; x < size; x++ {
			x0, x1 := x*w/size, max((x+1)*w/size, x*w/size+1)
			hit := false
			for yy := y0; yy < y1 && yy < h && !hit; yy++ {
				for xx := x0; xx < x1 && xx < w; xx++ {
					if on[yy*w+xx] {
						hit = true
						break
					}
				}
			}
			if hit {
				out[y*size+x] = 255
			}
		}
	}
	return out
}

// resizeRGB resamples an RGB image to size² with area averaging when
// shrinking and bilinear interpolation when growing.
func resizeRGB(img image.Image, size int) []uint8 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	src := make([]float64, w*h*3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, bb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := (y*w + x) * 3
			src[i], src[i+1], src[i+2] = float64(r>>8), float64(g>>8), float64(bb>>8)
		}
	}
	out := make([]uint8, size*size*3)
	sx, sy := float64(w)/float64(size), float64(h)/float64(size)
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			var acc [3]float64
			if sx >= 1 && sy >= 1 {
				x0, x1 := int(float64(x)*sx), max(int(float64(x+1)*sx), int(float64(x)*sx)+1)
				y0, y1 := int(float64(y)*sy), max(int(float64(y+1)*sy), int(float64(y)*sy)+1)
				n := 0.0
				for yy := y0; yy < y1 && yy < h; yy++ {
					for xx := x0; xx < x1 && xx < w; xx++ {
						i := (yy*w + xx) * 3
						acc[0] += src[i]
						acc[1] += src[i+1]
						acc[2] += src[i+2]
						n++
					}
				}
				for c := range acc {
					acc[c] /= n
				}
			} else {
				fx := min(max((float64(x)+0.5)*sx-0.5, 0), float64(w-1))
				fy := min(max((float64(y)+0.5)*sy-0.5, 0), float64(h-1))
				x0, y0 := int(fx), int(fy)
				x1, y1 := min(x0+1, w-1), min(y0+1, h-1)
				tx, ty := fx-float64(x0), fy-float64(y0)
				for c := 0; c < 3; c++ {
					a := src[(y0*w+x0)*3+c]*(1-tx) + src[(y0*w+x1)*3+c]*tx
					d := src[(y1*w+x0)*3+c]*(1-tx) + src[(y1*w+x1)*3+c]*tx
					acc[c] = a*(1-ty) + d*ty
				}
			}
			for c := 0; c < 3; c++ {
				out[(y*size+x)*3+c] = uint8(min(max(acc[c]+0.5, 0), 255))
			}
		}
	}
	return out
}

// WriteMaskPNG writes labels as a one-channel PNG (value = class index).
func WriteMaskPNG(path string, mask []uint8, size int) error {
	if len(mask) != size*size {
		return fmt.Errorf("write mask %s: %d labels for a %d×%d image", path, len(mask), size, size)
	}
	img := &image.Gray{Pix: mask, Stride: size, Rect: image.Rect(0, 0, size, size)}
	return imageio.SavePNG(path, img)
}

// WriteRGBPNG writes an RGB buffer (size*size*3) as PNG.
func WriteRGBPNG(path string, rgb []uint8, size int) error {
	if len(rgb) != size*size*3 {
		return fmt.Errorf("write image %s: %d bytes for a %d×%d RGB image", path, len(rgb), size, size)
	}
	return imageio.SavePNG(path, rgbImage(rgb, size))
}

func rgbImage(rgb []uint8, size int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for i := 0; i < size*size; i++ {
		copy(img.Pix[4*i:4*i+3], rgb[3*i:3*i+3])
		img.Pix[4*i+3] = 255
	}
	return img
}

// ColorizeMask paints labels in synthface.Palette as RGB (size*size*3).
func ColorizeMask(mask []uint8) []uint8 { return synthface.ColorizeMask(mask) }

func writeJPEG(path string, rgb []uint8, size int) error {
	if len(rgb) != size*size*3 {
		return fmt.Errorf("write image %s: %d bytes for a %d×%d RGB image", path, len(rgb), size, size)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, rgbImage(rgb, size), &jpeg.Options{Quality: 95}); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return imageio.WriteAtomic(path, buf.Bytes())
}
