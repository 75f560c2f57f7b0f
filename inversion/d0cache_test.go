package inversion

import (
	"os"
	"testing"
)

func TestD0CacheRoundTripAndKeys(t *testing.T) {
	c := &D0Cache{Dir: t.TempDir()}
	k := Key("w1", "mask", "a smiling woman", []byte{1, 2, 3}, 20, 3, 7, 2)
	if k == Key("w2", "mask", "a smiling woman", []byte{1, 2, 3}, 20, 3, 7, 2) ||
		k == Key("w1", "mask", "a smiling woman", []byte{1, 2, 4}, 20, 3, 7, 2) ||
		k == Key("w1", "mask", "a smiling woma", []byte{1, 2, 3}, 20, 3, 7, 2) {
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
