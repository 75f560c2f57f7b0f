package vae

import (
	"path/filepath"
	"testing"

	"ddgi/nn"
	"ddgi/torch"
)

// TestLoadKeepsHalfWeights: an fp16 VAE file passing nn.HalfAbove loads
// fp16 and encodes and decodes exactly as the same file loaded in fp32.
func TestLoadKeepsHalfWeights(t *testing.T) {
	defer func(v int64) { nn.HalfAbove = v }(nn.HalfAbove)
	nn.HalfAbove = 0 // the tiny VAE stands for SD's
	c, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vae.safetensors")
	s := nn.NewStore(torch.CPU, 1)
	New(s.Root(), c)
	if err := s.Save(path, nn.SaveOptions{Config: c, Half: true}); err != nil {
		t.Fatal(err)
	}
	half, hs, err := Load(path, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	fs := nn.NewStore(torch.CPU, 2)
	full := New(fs.Root(), c)
	if _, err := fs.Load(path); err != nil {
		t.Fatal(err)
	}
	if !hs.Half || hs.Get(hs.Names()[0]).DType() != torch.Float16 {
		t.Fatal("an fp16 VAE file was upcast at load")
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			x := torch.Rand(torch.NewGenerator(3), []int64{1, 3, 16, 16}, torch.Float32, torch.CPU)
			m1, _ := full.Encode(x)
			m2, _ := half.Encode(x)
			d1, d2 := full.Decode(m1), half.Decode(m2)
			if d := m1.Sub(m2).Abs().MaxAll().Item() + d1.Sub(d2).Abs().MaxAll().Item(); d != 0 {
				t.Errorf("fp16-stored VAE differs from the fp32 load by %g", d)
			}
		})
	})
}
