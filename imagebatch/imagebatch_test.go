package imagebatch

import (
	"slices"
	"testing"

	"ddgi/torch"
)

// Labels and Strokes read bytes exactly: labels as integers, strokes
// thresholded above 127, a nil map as zeros; a map of the wrong size is an
// error, not a silent crop.
func TestLabelsAndStrokes(t *testing.T) {
	a := []uint8{0, 18, 7, 1}
	torch.Scoped(func() {
		l := Labels([][]uint8{a, nil}, 2)
		if s := l.Shape(); !slices.Equal(s, []int64{2, 2, 2}) || l.DType() != torch.Int64 {
			t.Fatalf("labels %v %v", s, l.DType())
		}
		if got := l.Int64s(); !slices.Equal(got, []int64{0, 18, 7, 1, 0, 0, 0, 0}) {
			t.Errorf("labels %v", got)
		}
		s := Strokes([][]uint8{{0, 127, 128, 255}, nil}, 2)
		if sh := s.Shape(); !slices.Equal(sh, []int64{2, 1, 2, 2}) || s.DType() != torch.Float32 {
			t.Fatalf("strokes %v %v", sh, s.DType())
		}
		if got := s.Float32s(); !slices.Equal(got, []float32{0, 0, 1, 1, 0, 0, 0, 0}) {
			t.Errorf("strokes %v", got)
		}
	})
	if err := torch.Try(func() { torch.Scoped(func() { Labels([][]uint8{a[:3]}, 2) }) }); err == nil {
		t.Error("a 3-pixel map accepted as 2²")
	}
}
