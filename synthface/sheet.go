package synthface

import (
	"image"
	"image/color"
	"strings"
)

// glyphs is a 5×7 upper-case bitmap font, enough to print captions on
// contact sheets without a font dependency. Lower case prints as upper.
var glyphs = map[rune][7]string{
	'A':  {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B':  {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C':  {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D':  {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."},
	'E':  {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F':  {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G':  {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H':  {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I':  {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J':  {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K':  {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L':  {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M':  {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N':  {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O':  {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P':  {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q':  {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R':  {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S':  {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T':  {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U':  {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V':  {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W':  {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X':  {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y':  {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z':  {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	'0':  {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1':  {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2':  {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3':  {"####.", "....#", "....#", ".###.", "....#", "....#", "####."},
	'4':  {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5':  {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6':  {".###.", "#....", "#....", "####.", "#...#", "#...#", ".###."},
	'7':  {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8':  {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9':  {".###.", "#...#", "#...#", ".####", "....#", "....#", ".###."},
	'.':  {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	',':  {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	'\'': {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."},
	'-':  {".....", ".....", ".....", ".###.", ".....", ".....", "....."},
	':':  {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	'/':  {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."},
	'(':  {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')':  {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'=':  {".....", ".....", "#####", ".....", "#####", ".....", "....."},
	'?':  {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."},
}

// DrawText prints s at (x, y) with 5×7 glyphs scaled by scale, returning
// the x after the last glyph.
func DrawText(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) int {
	for _, ch := range strings.ToUpper(s) {
		g, ok := glyphs[ch]
		if ok {
			for row := 0; row < 7; row++ {
				for col := 0; col < 5; col++ {
					if g[row][col] != '#' {
						continue
					}
					for dy := 0; dy < scale; dy++ {
						for dx := 0; dx < scale; dx++ {
							px, py := x+(col*scale)+dx, y+(row*scale)+dy
							if image.Pt(px, py).In(img.Rect) {
								img.SetRGBA(px, py, c)
							}
						}
					}
				}
			}
		}
		x += 6 * scale
	}
	return x
}

// wrap splits s into lines of at most width characters.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// ColorizeMask paints labels with Palette; unknown labels become white.
func ColorizeMask(mask []uint8) []uint8 {
	out := make([]uint8, len(mask)*3)
	for i, c := range mask {
		p := color.RGBA{255, 255, 255, 255}
		if int(c) < NumClasses {
			p = Palette[c]
		}
		out[3*i], out[3*i+1], out[3*i+2] = p.R, p.G, p.B
	}
	return out
}

// ContactSheet lays out one row per face: image | mask in Palette |
// scribble | captions, for people to check renders by eye.
func ContactSheet(faces []*Face) *image.RGBA {
	if len(faces) == 0 {
		return image.NewRGBA(image.Rect(0, 0, 1, 1))
	}
	size := faces[0].Size
	scale := 1
	if size >= 128 {
		scale = 2
	}
	textW := 300 * scale
	pad := 4
	rowH := size + pad
	img := image.NewRGBA(image.Rect(0, 0, 3*(size+pad)+textW, len(faces)*rowH+pad))
	for i := range img.Pix {
		img.Pix[i] = 40
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	for r, f := range faces {
		y0 := pad + r*rowH
		blit := func(x0 int, rgb []uint8, gray bool) {
			for y := 0; y < f.Size; y++ {
				for x := 0; x < f.Size; x++ {
					i := y*f.Size + x
					var c color.RGBA
					if gray {
						c = color.RGBA{rgb[i], rgb[i], rgb[i], 255}
					} else {
						c = color.RGBA{rgb[3*i], rgb[3*i+1], rgb[3*i+2], 255}
					}
					img.SetRGBA(x0+x, y0+y, c)
				}
			}
		}
		blit(pad, f.Image, false)
		blit(pad+size+pad, ColorizeMask(f.Mask), false)
		blit(pad+2*(size+pad), f.Scribble, true)
		ty := y0
		for ci, c := range f.Captions {
			col := color.RGBA{230, 230, 230, 255}
			if ci%2 == 1 {
				col = color.RGBA{170, 200, 230, 255}
			}
			for _, line := range wrap(c, textW/(6*scale)-1) {
				if ty+8*scale > y0+size {
					break
				}
				DrawText(img, 3*(size+pad)+pad, ty, line, scale, col)
				ty += 8 * scale
			}
		}
	}
	return img
}
