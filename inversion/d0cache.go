package inversion

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"

	"ddgi/internal/imageio"
	"ddgi/kinds"
	"ddgi/torch"
)

// D0Cache stores I^d_0, the diffusion encoder's fully denoised image for a
// training pair, on disk under a content hash of everything that determines
// it (weights, prompt, condition, sampler settings, seed). Made once, reused
// by every stage-2 epoch and by later runs; an interrupted fill resumes by
// skipping the keys already present.
type D0Cache struct {
	Dir string
}

// Key hashes the parts that determine an I^d_0 image.
func Key(weightsID string, kind kinds.Cond, text string, cond []byte, steps int, guidance float64, seed int64, size int) string {
	h := sha256.New()
	w := func(b []byte) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	w([]byte(weightsID))
	w([]byte(kind))
	w([]byte(text))
	w(cond)
	w([]byte(fmt.Sprintf("%d|%g|%d|%d", steps, guidance, seed, size)))
	return hex.EncodeToString(h.Sum(nil))
}

// FileID fingerprints a weights file by content, so a retrained model never
// reuses stale cache entries.
func FileID(paths ...string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", p, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func (c *D0Cache) path(key string) string { return filepath.Join(c.Dir, key[:2], key+".png") }

// Get returns the cached RGB bytes (H×W×3) for key, or ok=false.
func (c *D0Cache) Get(key string, size int) (rgb []uint8, ok bool, err error) {
	f, err := os.Open(c.path(key))
	if os.IsNotExist(err) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, false, fmt.Errorf("cache entry %s: %w", c.path(key), err)
	}
	b := img.Bounds()
	if b.Dx() != size || b.Dy() != size {
		return nil, false, fmt.Errorf("cache entry %s is %dx%d, want %d", c.path(key), b.Dx(), b.Dy(), size)
	}
	return imageio.RGBBytes(img), true, nil
}

// Put stores RGB bytes under key atomically.
func (c *D0Cache) Put(key string, rgb []uint8, size int) error {
	if len(rgb) != 3*size*size {
		return fmt.Errorf("cache put: %d bytes for %d² RGB", len(rgb), size)
	}
	if err := os.MkdirAll(filepath.Dir(c.path(key)), 0o755); err != nil {
		return err
	}
	var img image.Image = imageio.RGB(rgb, size, size)
	return imageio.SavePNG(c.path(key), img)
}

// Fill returns one image [1,3,size,size] per key on dev: cached ones read
// back, the missing ones made by sample (called with their positions, at
// most chunk at a time; chunk 0 = all at once) and stored. Fresh samples
// come back as stored (8-bit), so a first run and its reruns agree. A nil
// cache samples everything and returns the samples as they are.
func (c *D0Cache) Fill(keys []string, size, chunk int, dev torch.Device, sample func(idx []int) (*torch.Tensor, error)) ([]*torch.Tensor, error) {
	imgs := make([]*torch.Tensor, len(keys))
	var missing []int
	for i, k := range keys {
		if c == nil {
			missing = append(missing, i)
			continue
		}
		rgb, ok, err := c.Get(k, size)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, i)
			continue
		}
		if err := torch.Try(func() { imgs[i] = imageio.ToTensor(rgb, size, size, dev) }); err != nil {
			return nil, err
		}
	}
	if chunk <= 0 {
		chunk = max(len(missing), 1)
	}
	for lo := 0; lo < len(missing); lo += chunk {
		part := missing[lo:min(lo+chunk, len(missing))]
		out, err := sample(part)
		if err != nil {
			return nil, err
		}
		if c == nil {
			if err := torch.Try(func() {
				for j, i := range part {
					imgs[i] = out.Narrow(0, int64(j), 1)
				}
			}); err != nil {
				return nil, err
			}
			continue
		}
		pics, err := imageio.FromTensor(out)
		if err != nil {
			return nil, err
		}
		for j, i := range part {
			rgb := imageio.RGBBytes(pics[j])
			if err := c.Put(keys[i], rgb, size); err != nil {
				return nil, err
			}
			if err := torch.Try(func() { imgs[i] = imageio.ToTensor(rgb, size, size, dev) }); err != nil {
				return nil, err
			}
		}
	}
	return imgs, nil
}
