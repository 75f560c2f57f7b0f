package text

import (
	"path/filepath"
	"testing"

	"ddgi/nn"
	"ddgi/optim"
	"ddgi/torch"
)

func TestEncoderShapesPerPreset(t *testing.T) {
	for _, name := range []string{"tiny", "small64", "clip-l"} {
		c, err := EncoderPreset(name)
		if err != nil {
			t.Fatal(err)
		}
		s := nn.NewStore(torch.CPU, 1)
		e := NewEncoder(s.Root(), c)
		torch.Scoped(func() {
			ids := torch.RandInt(torch.NewGenerator(2), 0, c.Vocab, []int64{2, c.ContextLength()}, torch.CPU)
			h := e.Forward(ids)
			if sh := h.Shape(); sh[0] != 2 || sh[1] != c.ContextLength() || sh[2] != c.Width() {
				t.Fatalf("%s: hidden %v", name, sh)
			}
			if sh := e.Pooled(ids, h).Shape(); sh[0] != 2 || sh[1] != c.Width() {
				t.Fatalf("%s: pooled %v", name, sh)
			}
		})
	}
	if _, err := EncoderPreset("huge"); err == nil {
		t.Fatal("unknown preset accepted")
	}
}

func TestEncoderIsCausalAndPoolsAtEOS(t *testing.T) {
	c, _ := EncoderPreset("tiny")
	e := NewEncoder(nn.NewStore(torch.CPU, 1).Root(), c)
	torch.Scoped(func() {
		a := []int64{BOSID, 300, 301, 302, EOSID, PadID, PadID, PadID}
		b := append([]int64(nil), a...)
		b[3] = 400 // change a later token
		ha := e.Forward(torch.FromInt64(a, 1, 8)).Float32s()
		hb := e.Forward(torch.FromInt64(b, 1, 8)).Float32s()
		w := int(c.Width())
		for i := 0; i < 3*w; i++ {
			if ha[i] != hb[i] {
				t.Fatalf("position %d changed when only token 3 did", i/w)
			}
		}
		same := true
		for i := 3 * w; i < 4*w; i++ {
			same = same && ha[i] == hb[i]
		}
		if same {
			t.Fatal("position 3 ignored its own token")
		}
		ids := torch.FromInt64(a, 1, 8)
		h := e.Forward(ids)
		p := e.Pooled(ids, h).Float32s()
		want := h.Select(1, 4).Float32s()
		for i := range p {
			if p[i] != want[i] {
				t.Fatal("pooled is not the <eos> position")
			}
		}
	})
}

func tinyCLIP(seed uint64) (*CLIP, *nn.Store) {
	c, _ := EncoderPreset("tiny")
	s := nn.NewStore(torch.CPU, seed)
	return NewCLIP(s.Root(), CLIPConfig{Encoder: c, ImageWidths: []int64{8, 16}, Embed: 16}), s
}

func TestContrastiveStepsLowerLoss(t *testing.T) {
	tok := tinyTokenizer(t)
	m, s := tinyCLIP(3)
	caps := []string{"a woman with glasses", "the man has a beard", "she is smiling", "he wears a hat"}
	opt := optim.NewAdam(optim.DefaultAdam(3e-3))
	var first, last float64
	torch.Scoped(func() {
		ids, err := tok.EncodeBatch(caps, 16)
		if err != nil {
			t.Fatal(err)
		}
		imgs := torch.Randn(torch.NewGenerator(5), []int64{4, 3, 16, 16}, torch.Float32, torch.CPU)
		for step := 0; step < 30; step++ {
			torch.Scoped(func() {
				txt, img := m.Embed(ids, imgs)
				loss := ContrastiveLoss(txt, img, m.LogitScale)
				loss.Backward()
				opt.Update(s.Trainable())
				if step == 0 {
					first = loss.Item()
				}
				last = loss.Item()
			})
		}
	})
	if !(last < 0.5*first) {
		t.Fatalf("contrastive loss %v → %v, want a clear fall", first, last)
	}
}

func TestEncoderSaveLoadIdentical(t *testing.T) {
	c, _ := EncoderPreset("tiny")
	s := nn.NewStore(torch.CPU, 7)
	e := NewEncoder(s.Root(), c)
	path := filepath.Join(t.TempDir(), "text.safetensors")
	if err := s.Save(path, nn.SaveOptions{Config: map[string]any{"encoder": c}}); err != nil {
		t.Fatal(err)
	}
	back, _, err := LoadEncoder(path, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	torch.Scoped(func() {
		ids := torch.RandInt(torch.NewGenerator(1), 0, c.Vocab, []int64{2, c.Context}, torch.CPU)
		a, b := e.Forward(ids).Float32s(), back.Forward(ids).Float32s()
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("output %d differs after load", i)
			}
		}
	})
}

func TestRetrievalAndProbe(t *testing.T) {
	torch.Scoped(func() {
		e := torch.Eye(6, torch.Float32, torch.CPU)
		if a, b, c, d := Retrieval(e, e); a != 1 || b != 1 || c != 1 || d != 1 {
			t.Fatalf("perfect pairs scored %v %v %v %v", a, b, c, d)
		}
	})
	var x, y [][]float64
	for i := 0; i < 40; i++ {
		v := float64(i%2) + 0.1*float64(i%5)
		x = append(x, []float64{v, float64(i % 3)})
		y = append(y, []float64{float64(i % 2)})
	}
	if acc := ProbeAccuracy(x, y, x, y, 1e-3); acc[0] < 0.99 {
		t.Fatalf("separable probe accuracy %v", acc[0])
	}
}

// TestCLIPPresetParameterCounts pins the public text tower's size: HF's
// CLIPTextModel (openai/clip-vit-large-patch14) has 123,060,480 parameters,
// 589,824 more with CLIPTextModelWithProjection's text_projection; ddgi's
// own clip-l lacks the 12×3×768 q/k/v biases.
func TestCLIPPresetParameterCounts(t *testing.T) {
	for _, tc := range []struct {
		name string
		proj int64
		want int64
	}{{"clip-vit-l14", 0, 123060480}, {"clip-vit-l14", 768, 123650304}, {"clip-l", 0, 123032832}} {
		c, err := EncoderPreset(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		c.Projection = tc.proj
		s := nn.NewStore(torch.CPU, 1)
		s.SkipInit = true
		NewEncoder(s.Root(), c)
		if n := s.NumParams(); n != tc.want {
			t.Errorf("%s with projection %d: %d parameters, want %d", tc.name, tc.proj, n, tc.want)
		}
	}
	c, _ := EncoderPreset("tiny")
	c.Act = "relu"
	if c.Validate() == nil {
		t.Error("unknown activation accepted")
	}
}

// TestFrozenEncoderUpcastsHalfFile: an fp16 file of full size (nn.HalfAbove
// passed, where a U-Net would stay fp16) loads into an fp32 tower for
// encoding, whose hidden states, pooled and projected outputs equal the
// same file loaded by LoadEncoder.
func TestFrozenEncoderUpcastsHalfFile(t *testing.T) {
	defer func(v int64) { nn.HalfAbove = v }(nn.HalfAbove)
	nn.HalfAbove = 0 // the tiny tower stands for CLIP ViT-L/14's
	c, path := tinyTowerFile(t, true)
	full, _, err := LoadEncoder(path, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	frozen := loadFrozen(t, path, nn.FP32, torch.Float32)
	torch.NoGrad(func() {
		torch.Scoped(func() {
			ids := torch.RandInt(torch.NewGenerator(1), 0, c.Vocab, []int64{2, c.Context}, torch.CPU)
			hf, hz := full.Forward(ids), frozen.Forward(ids)
			pf, pz := full.Project(full.Pooled(ids, hf)), frozen.Project(frozen.Pooled(ids, hz))
			if d := hf.Sub(hz).Abs().MaxAll().Item() + pf.Sub(pz).Abs().MaxAll().Item(); d != 0 {
				t.Errorf("frozen tower differs from the fp32 load by %g", d)
			}
		})
	})
}

// TestFrozenEncoderInBF16: with nn.BF16 the tower is kept in bfloat16 and
// still returns fp32 hidden states and projections, within bf16's rounding
// of the fp32 tower's.
func TestFrozenEncoderInBF16(t *testing.T) {
	c, path := tinyTowerFile(t, false)
	full, bf := loadFrozen(t, path, nn.FP32, torch.Float32), loadFrozen(t, path, nn.BF16, torch.BFloat16)
	torch.NoGrad(func() {
		torch.Scoped(func() {
			ids := torch.RandInt(torch.NewGenerator(1), 0, c.Vocab, []int64{2, c.Context}, torch.CPU)
			hf, hb := full.Forward(ids), bf.Forward(ids)
			pf, pb := full.Project(full.Pooled(ids, hf)), bf.Project(bf.Pooled(ids, hb))
			for _, p := range [][2]*torch.Tensor{{hf, hb}, {pf, pb}} {
				if p[1].DType() != torch.Float32 {
					t.Fatalf("bf16 tower returns %v", p[1].DType())
				}
				d, scale := p[0].Sub(p[1]).Abs().MaxAll().Item(), p[0].Abs().MaxAll().Item()
				t.Logf("max |fp32 − bf16| %.3g of max %.3g", d, scale)
				if d == 0 || d > 0.05*scale {
					t.Errorf("bf16 tower off the fp32 one by %g (max |fp32| %g): want nonzero and ≤ 5%%", d, scale)
				}
			}
		})
	})
}

// tinyTowerFile writes a tiny tower with a projection (fp16 when half) and
// returns its config and path.
func tinyTowerFile(t *testing.T, half bool) (EncoderConfig, string) {
	c, _ := EncoderPreset("tiny")
	c.Projection = 16
	s := nn.NewStore(torch.CPU, 7)
	NewEncoder(s.Root(), c)
	path := filepath.Join(t.TempDir(), "text.safetensors")
	if err := s.Save(path, nn.SaveOptions{Config: map[string]any{"encoder": c}, Half: half}); err != nil {
		t.Fatal(err)
	}
	return c, path
}

// loadFrozen loads path with LoadFrozenEncoder at p and fails t unless
// every tensor of the store is kept in want.
func loadFrozen(t *testing.T, path string, p nn.Precision, want torch.DType) *Encoder {
	t.Helper()
	e, s, err := LoadFrozenEncoder(path, torch.CPU, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Names() {
		if dt := s.Get(n).DType(); dt != want {
			t.Fatalf("%s loaded as %v, want %v", n, dt, want)
		}
	}
	return e
}

// TestForwardHoldsOneBlockAtATime: each block's temporaries are freed
// before the next block runs, so what a call leaves alive in its caller's
// scope does not grow with the depth of the tower.
func TestForwardHoldsOneBlockAtATime(t *testing.T) {
	left := func(layers int) int64 {
		c, _ := EncoderPreset("tiny")
		c.Layers = layers
		s := nn.NewStore(torch.CPU, 3)
		e := NewEncoder(s.Root(), c)
		var n int64
		torch.NoGrad(func() {
			torch.Scoped(func() {
				ids := torch.RandInt(torch.NewGenerator(1), 0, c.Vocab, []int64{2, c.Context}, torch.CPU)
				n = torch.LiveDelta(func() { e.Forward(ids) })
			})
		})
		return n
	}
	if a, b := left(1), left(4); a != b || a > 8 {
		t.Errorf("Forward left %d tensors alive with 1 block, %d with 4: want the same few", a, b)
	}
}
