package data

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pngHeader is a PNG whose IHDR claims w×h at the given bit depth and
// colour type, followed by an empty image: what a decompression bomb
// shows the decoder before the (tiny, compressible) pixel data.
func pngHeader(w, h uint32, depth, colourType byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		c := crc32.NewIEEE()
		c.Write([]byte(typ))
		c.Write(data)
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, c.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = depth, colourType
	chunk("IHDR", ihdr)
	chunk("IEND", nil)
	return b.Bytes()
}

// TestImageBudgetCheckedBeforeDecoding refuses images whose header says
// they would decode beyond the limits, before any pixel is decoded, and
// still reads ordinary masks.
func TestImageBudgetCheckedBeforeDecoding(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"4000² RGBA16 (122 MiB decoded)", pngHeader(4000, 4000, 16, 6), "MiB"},
		{"8192² grey (side)", pngHeader(8192, 8192, 8, 0), "at most 4096"},
		{"1×100000 (side)", pngHeader(1, 100000, 8, 0), "at most 4096"},
	} {
		_, err := DecodeMask(c.name, c.b, 64)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error about %q", c.name, err, c.want)
		}
	}
	img := image.NewGray(image.Rect(0, 0, 300, 200))
	img.Set(5, 5, color.Gray{Y: 13})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	lab, err := DecodeMask("ok.png", b.Bytes(), 64)
	if err != nil || len(lab) != 64*64 {
		t.Fatalf("an ordinary mask: %v", err)
	}
	// A file larger than the budget is not even read.
	big := filepath.Join(t.TempDir(), "big.png")
	f, _ := os.Create(big)
	f.Truncate(Limits.MaxBytes + 1)
	f.Close()
	if _, err := ReadMask(big, 64); err == nil || !strings.Contains(err.Error(), "MiB file") {
		t.Errorf("a file over the budget: %v", err)
	}
}
