package imagebatch

import (
	"context"
	"errors"
	"strings"
	"testing"

	"ddgi/data"
)

// countSet is n samples of size² whose pixel (k, channel c) of sample i is
// i+10k+c (mod 256); Get after stopAt blocks until the test's context ends.
type countSet struct {
	n, size int
	gets    chan int
}

func (d *countSet) Len() int { return d.n }

func (d *countSet) Get(i int) (*data.Sample, error) {
	if d.gets != nil {
		d.gets <- i
	}
	img := make([]uint8, 3*d.size*d.size)
	for k := 0; k < d.size*d.size; k++ {
		for c := 0; c < 3; c++ {
			img[3*k+c] = uint8(i + 10*k + c)
		}
	}
	return &data.Sample{Image: img, Size: d.size, Captions: []string{strings.Repeat("x", i+1)}}, nil
}

func TestHoldKeepsOrderAndLayout(t *testing.T) {
	ds := &countSet{n: 100, size: 4}
	h, err := Hold(context.Background(), ds, 70, 4, HoldOptions{Workers: 3, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if h.Len() != 70 || len(h.Pixels) != 70*3*16 {
		t.Fatalf("held %d samples, %d bytes", h.Len(), len(h.Pixels))
	}
	for i := 0; i < 70; i++ {
		if len(h.Captions[i][0]) != i+1 || h.Attrs[i] != nil {
			t.Fatalf("sample %d: caption %q attrs %v", i, h.Captions[i][0], h.Attrs[i])
		}
		for c := 0; c < 3; c++ {
			for k := 0; k < 16; k++ {
				if got, want := h.Pixels[(i*3+c)*16+k], uint8(i+10*k+c); got != want {
					t.Fatalf("sample %d channel %d pixel %d: %d, want %d", i, c, k, got, want)
				}
			}
		}
	}
	x := h.Images([]int{5, 2})
	if sh := x.Shape(); sh[0] != 2 || sh[1] != 3 || sh[2] != 4 || sh[3] != 4 {
		t.Fatalf("shape %v", sh)
	}
	v := x.Float32s()
	if want := float32(2+10*3+1)/127.5 - 1; v[48+16+3] != want { // sample 2, channel 1, pixel 3
		t.Errorf("pixel %v, want %v", v[48+16+3], want)
	}
	if _, err := Hold(context.Background(), ds, 70, 8, HoldOptions{Quiet: true}); err == nil {
		t.Error("4² samples held as 8² without an error")
	}
}

func TestHoldStopsWhenCancelled(t *testing.T) {
	ds := &countSet{n: 1000, size: 4, gets: make(chan int)}
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("stop")
	go func() {
		for i := range ds.gets {
			if i == 10 {
				cancel(stop)
			}
		}
	}()
	_, err := Hold(ctx, ds, 1000, 4, HoldOptions{Workers: 2, Quiet: true})
	close(ds.gets)
	if !errors.Is(err, stop) {
		t.Errorf("Hold after cancel: %v, want the cause", err)
	}
}

func TestHoldSplitsNamesTheSplit(t *testing.T) {
	src := func(split data.Split, size, n int, _ func(data.Split, int, int) data.Dataset) (data.Dataset, error) {
		if split == data.Bench {
			return nil, errors.New("no validation samples")
		}
		return &countSet{n: 3, size: size}, nil
	}
	_, _, err := HoldSplits(context.Background(), src, nil, 10, 5, 4, HoldOptions{Quiet: true})
	if err == nil || !strings.Contains(err.Error(), "bench data: no validation samples") {
		t.Errorf("error %v", err)
	}
	tr, bench, err := HoldSplits(context.Background(), nil, nil, 3, 2, 8, HoldOptions{Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 3 || bench.Len() != 2 || len(tr.Attrs[0]) == 0 || tr.Captions[0][0] == bench.Captions[0][0] {
		t.Errorf("SynthFace: %d train, %d bench samples", tr.Len(), bench.Len())
	}
}
