package inversion

import (
	"math"
	"os"
	"testing"

	"ddgi/kinds"
	"ddgi/torch"
)

func TestD0CacheRoundTripAndKeys(t *testing.T) {
	c := &D0Cache{Dir: t.TempDir()}
	k := Key("w1", kinds.Mask, "a smiling woman", []byte{1, 2, 3}, 20, 3, 7, 2)
	if k == Key("w2", kinds.Mask, "a smiling woman", []byte{1, 2, 3}, 20, 3, 7, 2) ||
		k == Key("w1", kinds.Mask, "a smiling woman", []byte{1, 2, 4}, 20, 3, 7, 2) ||
		k == Key("w1", kinds.Mask, "a smiling woma", []byte{1, 2, 3}, 20, 3, 7, 2) {
		t.Fatal("different inputs share a key")
	}
	if _, ok, err := c.Get(k, 2); ok || err != nil {
		t.Fatalf("empty cache: %v %v", ok, err)
	}
	rgb := []uint8{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	if err := c.Put(k, rgb, 2); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.Get(k, 2)
	if !ok || err != nil || string(got) != string(rgb) {
		t.Fatalf("round trip %v %v %v", got, ok, err)
	}
	os.WriteFile(c.path(k), []byte("not a png"), 0o644)
	if _, _, err := c.Get(k, 2); err == nil {
		t.Fatal("corrupt entry read without error")
	}
}

// TestD0CacheFill: Fill samples only the missing keys, in chunks, stores
// them 8-bit and serves them from disk on the next call; without a cache
// it samples everything and returns the samples unrounded.
func TestD0CacheFill(t *testing.T) {
	torch.Scoped(func() {
		const size = 2
		keys := []string{Key("w", kinds.Mask, "a", nil, 0, 0, 1, size), Key("w", kinds.Mask, "b", nil, 0, 0, 2, size), Key("w", kinds.Mask, "c", nil, 0, 0, 3, size)}
		var calls [][]int
		sample := func(idx []int) (*torch.Tensor, error) {
			calls = append(calls, append([]int(nil), idx...))
			parts := make([]*torch.Tensor, len(idx))
			for j, i := range idx {
				parts[j] = torch.Full([]int64{1, 3, size, size}, 0.1*float64(i+1)+0.003, torch.Float32, torch.CPU)
			}
			return torch.Cat(parts, 0), nil
		}
		c := &D0Cache{Dir: t.TempDir()}
		if err := c.Put(keys[1], make([]uint8, 3*size*size), size); err != nil {
			t.Fatal(err)
		}
		imgs, err := c.Fill(keys, size, 1, torch.CPU, sample)
		if err != nil {
			t.Fatal(err)
		}
		if len(calls) != 2 || calls[0][0] != 0 || calls[1][0] != 2 {
			t.Fatalf("sampled %v, want [[0] [2]]", calls)
		}
		if v := imgs[1].MeanAll().Item(); v != -1 {
			t.Fatalf("cached black image read as %g", v)
		}
		again, err := c.Fill(keys, size, 1, torch.CPU, sample)
		if err != nil || len(calls) != 2 {
			t.Fatalf("second fill sampled again (%v) or failed: %v", calls, err)
		}
		if d := again[2].Sub(imgs[2]).Abs().MaxAll().Item(); d != 0 {
			t.Fatalf("fresh sample not returned as stored (diff %g)", d)
		}
		if d := imgs[2].MeanAll().Item() - 0.303; math.Abs(d) < 1e-6 || math.Abs(d) > 1.0/127 {
			t.Fatalf("stored sample %g: want 0.303 rounded to 8 bits", imgs[2].MeanAll().Item())
		}
		var none *D0Cache
		raw, err := none.Fill(keys, size, 0, torch.CPU, sample)
		if err != nil || len(calls) != 3 || len(calls[2]) != 3 {
			t.Fatalf("no cache: calls %v, err %v", calls, err)
		}
		if v := raw[2].MeanAll().Item(); math.Abs(v-0.303) > 1e-6 {
			t.Fatalf("no cache: sample %g, want it unrounded", v)
		}
	})
}
