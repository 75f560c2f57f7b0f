package vae

import (
	"path/filepath"
	"testing"

	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
)

func TestShapesPerPreset(t *testing.T) {
	for _, tc := range []struct {
		name string
		side int64 // small input: the nets are fully convolutional
		f    int64
	}{{"tiny", 16, 2}, {"small64", 64, 4}, {"sd", 32, 8}} {
		c, err := Preset(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Factor() != tc.f || c.LatentChannels() != 4 {
			t.Fatalf("%s: factor %d channels %d", tc.name, c.Factor(), c.LatentChannels())
		}
		st := nn.NewStore(torch.CPU, 1)
		a := New(st.Root(), c)
		// diffusers' SD AutoencoderKL has 83,653,863 (with the mid attentions' q/k/v biases).
		if tc.name == "sd" && st.NumParams() != 83653863 {
			t.Fatalf("sd: %d parameters", st.NumParams())
		}
		torch.NoGrad(func() {
			torch.Scoped(func() {
				x := torch.Rand(torch.NewGenerator(1), []int64{2, 3, tc.side, tc.side}, torch.Float32, torch.CPU)
				m, lv := a.Encode(x)
				h := tc.side / tc.f
				for _, z := range []*torch.Tensor{m, lv} {
					if sh := z.Shape(); sh[0] != 2 || sh[1] != 4 || sh[2] != h || sh[3] != h {
						t.Fatalf("%s: latent %v", tc.name, sh)
					}
				}
				y := a.Decode(a.Sample(m, lv, torch.NewGenerator(2)))
				if sh := y.Shape(); sh[1] != 3 || sh[2] != tc.side || sh[3] != tc.side {
					t.Fatalf("%s: decoded %v", tc.name, sh)
				}
			})
		})
	}
	if _, err := Preset("xl"); err == nil {
		t.Fatal("unknown preset accepted")
	}
}

func TestFewStepsLowerReconstructionLoss(t *testing.T) {
	c, _ := Preset("tiny")
	s := nn.NewStore(torch.CPU, 3)
	a := New(s.Root(), c)
	opt := optim.NewAdam(optim.DefaultAdam(2e-3))
	g := torch.NewGenerator(4)
	var first, last float64
	torch.Scoped(func() {
		// smooth images: a few blobs, like a face at 16²
		x := torch.AvgPool2d(torch.Rand(g, []int64{4, 3, 16, 16}, torch.Float32, torch.CPU), 5, 1, 2).MulScalar(2).SubScalar(1)
		for step := 0; step < 25; step++ {
			torch.Scoped(func() {
				m, lv := a.Encode(x)
				rec := a.Decode(a.Sample(m, lv, g))
				loss, _, _ := ReconLoss(rec, x)
				loss = loss.Add(KL(m, lv).MulScalar(1e-6))
				loss.Backward()
				opt.Update(s.Trainable())
				if step == 0 {
					first = loss.Item()
				}
				last = loss.Item()
			})
		}
	})
	if !(last < 0.7*first) {
		t.Fatalf("reconstruction loss %v → %v", first, last)
	}
}

func TestDeterminismAndSaveLoad(t *testing.T) {
	c, _ := Preset("tiny")
	c.Scale = 0.5
	s := nn.NewStore(torch.CPU, 5)
	a := New(s.Root(), c)
	path := filepath.Join(t.TempDir(), "vae.safetensors")
	if err := s.Save(path, nn.SaveOptions{Config: c}); err != nil {
		t.Fatal(err)
	}
	b, _, err := Load(path, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if b.Config.ScaleFactor() != 0.5 {
		t.Fatalf("scale factor %v after load", b.Config.ScaleFactor())
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			x := torch.Rand(torch.NewGenerator(1), []int64{2, 3, 16, 16}, torch.Float32, torch.CPU).MulScalar(2).SubScalar(1)
			run := func(m *Autoencoder) []float32 {
				mean, lv := m.Encode(x)
				return m.Decode(m.Sample(mean, lv, torch.NewGenerator(9))).Float32s()
			}
			r1, r2, r3 := run(a), run(a), run(b)
			for i := range r1 {
				if r1[i] != r2[i] || r1[i] != r3[i] {
					t.Fatalf("element %d: %v %v %v (seeded runs / loaded copy differ)", i, r1[i], r2[i], r3[i])
				}
			}
		})
	})
	if p := PSNR(torch.Zeros([]int64{1, 3, 4, 4}, torch.Float32, torch.CPU), torch.Full([]int64{1, 3, 4, 4}, 0.2, torch.Float32, torch.CPU)); p < 19.9 || p > 20.1 {
		t.Fatalf("PSNR of a 0.1 error = %v dB, want 20", p)
	}
}
