package nn

import (
	"bytes"
	"ddgi/safetensors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/torch"
)

type tinyNet struct {
	conv *Conv2d
	norm *GroupNorm
	fc   *Linear
	attn *MultiHeadAttention
}

func newTiny(s *Store) *tinyNet {
	r := s.Root()
	return &tinyNet{
		conv: NewConv2d(r.Sub("conv"), 3, 8, 3, Conv2dOpts{Padding: 1, EqualLR: true}),
		norm: NewGroupNorm(r.Sub("norm"), 2, 8),
		fc:   NewLinear(r.Sub("fc"), 8, 8, LinearOpts{EqualLR: true, LRMul: 0.01}),
		attn: NewMultiHeadAttention(r.Sub("attn"), 8, 8, 8, 2),
	}
}

func (n *tinyNet) forward(x *torch.Tensor) *torch.Tensor {
	h := n.norm.Forward(n.conv.Forward(x)).Silu() // B,8,H,W
	tok := h.Flatten(2, 3).Transpose(1, 2)        // B,HW,8
	o, _ := n.attn.Forward(n.fc.Forward(tok), nil, nil, false)
	return o
}

func TestSaveLoadGivesIdenticalOutput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tiny.safetensors")
	a := NewStore(torch.CPU, 1)
	na := newTiny(a)
	if err := a.Save(path, SaveOptions{Config: map[string]int{"width": 8}}); err != nil {
		t.Fatal(err)
	}
	b := NewStore(torch.CPU, 2) // different init
	nb := newTiny(b)
	meta, err := b.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if meta["config"] != `{"width":8}` || meta["format"] != "ddgi" {
		t.Fatalf("metadata %v", meta)
	}
	torch.Scoped(func() {
		x := torch.Randn(torch.NewGenerator(3), []int64{2, 3, 4, 4}, torch.Float32, torch.CPU)
		ya, yb := na.forward(x).Float32s(), nb.forward(x).Float32s()
		for i := range ya {
			if ya[i] != yb[i] {
				t.Fatalf("output %d differs after load: %v vs %v", i, ya[i], yb[i])
			}
		}
	})
	// Half precision files load too, within fp16 accuracy.
	half := filepath.Join(dir, "half.safetensors")
	if err := a.Save(half, SaveOptions{Half: true}); err != nil {
		t.Fatal(err)
	}
	c := NewStore(torch.CPU, 5)
	newTiny(c)
	if _, err := c.Load(half); err != nil {
		t.Fatal(err)
	}
	torch.Scoped(func() {
		d := c.Get("conv.weight").Sub(a.Get("conv.weight")).Abs().MaxAll().Item()
		if d > 1e-2 || d == 0 {
			t.Fatalf("fp16 round trip max error %v", d)
		}
	})
}

func TestLoadRejectsMismatchAndCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	a := NewStore(torch.CPU, 1)
	newTiny(a)
	good := filepath.Join(dir, "a.safetensors")
	if err := a.Save(good, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	other := NewStore(torch.CPU, 1)
	NewLinear(other.Root().Sub("fc"), 4, 4, LinearOpts{})
	if _, err := other.Load(good); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched names: %v", err)
	}
	wrongShape := NewStore(torch.CPU, 1)
	r := wrongShape.Root()
	NewConv2d(r.Sub("conv"), 3, 8, 3, Conv2dOpts{Padding: 1, EqualLR: true})
	NewGroupNorm(r.Sub("norm"), 2, 8)
	NewLinear(r.Sub("fc"), 8, 4, LinearOpts{})
	NewMultiHeadAttention(r.Sub("attn"), 8, 8, 8, 2)
	if _, err := wrongShape.Load(good); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Fatalf("wrong shape: %v", err)
	}
	data, _ := os.ReadFile(good)
	trunc := filepath.Join(dir, "trunc.safetensors")
	os.WriteFile(trunc, data[:len(data)/2], 0o644)
	if _, err := a.Load(trunc); err == nil {
		t.Fatal("truncated checkpoint loaded")
	}
}

func TestAttentionProbsSumToOneAndRespectMask(t *testing.T) {
	s := NewStore(torch.CPU, 4)
	attn := NewMultiHeadAttention(s.Root(), 6, 5, 8, 2)
	torch.Scoped(func() {
		g := torch.NewGenerator(1)
		x := torch.Randn(g, []int64{2, 4, 6}, torch.Float32, torch.CPU)
		ctx := torch.Randn(g, []int64{2, 4, 5}, torch.Float32, torch.CPU)
		out, p := attn.Forward(x, ctx, CausalMask(4, torch.CPU), true)
		if sh := out.Shape(); sh[0] != 2 || sh[1] != 4 || sh[2] != 6 {
			t.Fatalf("out shape %v", sh)
		}
		if sh := p.Shape(); len(sh) != 4 || sh[1] != 2 || sh[3] != 4 {
			t.Fatalf("probs shape %v", sh)
		}
		sums := p.Sum([]int64{-1}, false).Float32s()
		for _, v := range sums {
			if math.Abs(float64(v)-1) > 1e-5 {
				t.Fatalf("row sums to %v", v)
			}
		}
		// Query 0 sees only key 0 under the causal mask.
		if v := p.Select(2, 0).Select(2, 0).MinAll().Item(); math.Abs(v-1) > 1e-6 {
			t.Fatalf("first query's weight on key 0 = %v", v)
		}
	})
}

func TestZeroConvAndEqualLR(t *testing.T) {
	s := NewStore(torch.CPU, 1)
	z := NewZeroConv(s.Root().Sub("zero"), 4, 4)
	eq := NewLinear(s.Root().Sub("eq"), 100, 10, LinearOpts{EqualLR: true})
	torch.Scoped(func() {
		x := torch.Randn(torch.NewGenerator(2), []int64{1, 4, 3, 3}, torch.Float32, torch.CPU)
		if v := z.Forward(x).Abs().MaxAll().Item(); v != 0 {
			t.Fatalf("zero conv output %v", v)
		}
		// Equalized LR: unit weights scaled by 1/√fan_in keep unit variance.
		xs := torch.Randn(torch.NewGenerator(3), []int64{4096, 100}, torch.Float32, torch.CPU)
		std := eq.Forward(xs).Var(nil, false, false).Sqrt().Item()
		if std < 0.8 || std > 1.2 {
			t.Fatalf("equalized linear output std %v, want ≈1", std)
		}
	})
}

func TestFreezeStopsGradients(t *testing.T) {
	s := NewStore(torch.CPU, 1)
	a := NewLinear(s.Root().Sub("a"), 3, 3, LinearOpts{})
	b := NewLinear(s.Root().Sub("b"), 3, 3, LinearOpts{})
	s.Freeze("a")
	if n := len(s.Trainable()); n != 2 {
		t.Fatalf("%d trainable after freezing a, want 2 (b.weight, b.bias)", n)
	}
	torch.Scoped(func() {
		x := torch.Ones([]int64{1, 3}, torch.Float32, torch.CPU)
		b.Forward(a.Forward(x)).SumAll().Backward()
		if a.Weight.Grad() != nil {
			t.Fatal("frozen weight got a gradient")
		}
		if b.Weight.Grad() == nil {
			t.Fatal("trainable weight got no gradient")
		}
	})
}

// TestLoadRefusesNonFiniteWeights: a weight file with a NaN or Inf is an
// error naming the tensor, not a network that outputs NaN.
func TestLoadRefusesNonFiniteWeights(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
		s := NewStore(torch.CPU, 1)
		NewLinear(s.Root().Sub("fc"), 3, 2, LinearOpts{})
		f, err := s.File(SaveOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w, _ := f.Tensors["fc.weight"].Float32()
		w[4] = bad
		f.Tensors["fc.weight"], _ = safetensors.FromFloat32([]int64{2, 3}, w)
		fresh := NewStore(torch.CPU, 2)
		NewLinear(fresh.Root().Sub("fc"), 3, 2, LinearOpts{})
		err = fresh.LoadFile(f)
		if err == nil || !strings.Contains(err.Error(), "fc.weight") || !strings.Contains(err.Error(), "NaN or Inf") {
			t.Errorf("%v in a weight: %v", bad, err)
		}
	}
}

// TestLazyLoadStreamsLargeTensors: a file read tensor by tensor straight
// into the store (pieces of streamChunk) gives the weights written, and a
// NaN or Inf anywhere — here in the second piece — is refused, in fp32
// and in fp16 storage.
func TestLazyLoadStreamsLargeTensors(t *testing.T) {
	defer func(v int64) { HalfAbove = v }(HalfAbove)
	for _, half := range []bool{false, true} {
		HalfAbove = 1 << 40
		if half {
			HalfAbove = 0
		}
		s := NewStore(torch.CPU, 1)
		NewLinear(s.Root().Sub("fc"), 1100, 1000, LinearOpts{}) // 4.4 MB in fp32: two pieces
		f, err := s.File(SaveOptions{Half: half})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		good := filepath.Join(dir, "good.safetensors")
		if err := safetensors.Save(good, f); err != nil {
			t.Fatal(err)
		}
		load := func(path string) (*Store, error) {
			l, err := safetensors.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			fresh := NewInferenceStore(torch.CPU, l, FP32)
			NewLinear(fresh.Root().Sub("fc"), 1100, 1000, LinearOpts{})
			return fresh, fresh.LoadLazy(l)
		}
		back, err := load(good)
		if err != nil {
			t.Fatalf("half %v: %v", half, err)
		}
		want, got := s.Get("fc.weight"), back.Get("fc.weight")
		if half {
			want = want.To(torch.Float16)
		}
		if got.DType() != want.DType() || got.Sub(want).Abs().MaxAll().Item() != 0 {
			t.Fatalf("half %v: streamed weights differ (%v)", half, got.DType())
		}
		// A NaN past the first piece.
		st := f.Tensors["fc.weight"]
		bad := append([]byte(nil), st.Data...)
		at := len(bad) - 64
		for i := at; i < at+4; i++ {
			bad[i] = 0xFF // all exponent bits set, fraction non-zero: NaN in fp16 and fp32
		}
		f.Tensors["fc.weight"] = safetensors.Tensor{DType: st.DType, Shape: st.Shape, Data: bad}
		path := filepath.Join(dir, "bad.safetensors")
		if err := safetensors.Save(path, f); err != nil {
			t.Fatal(err)
		}
		if _, err := load(path); err == nil || !strings.Contains(err.Error(), "fc.weight") || !strings.Contains(err.Error(), "NaN or Inf") {
			t.Errorf("half %v: a NaN in the second piece: %v", half, err)
		}
	}
}

// TestLoadFP16IntoBF16: a bf16 inference store (Precision BF16) loads an
// fp16 file converting each value as libtorch's own cast does (round to
// nearest even), for every finite fp16 bit pattern, streamed in pieces.
func TestLoadFP16IntoBF16(t *testing.T) {
	var bits []byte
	for h := 0; h < 1<<16; h++ {
		if h&0x7C00 == 0x7C00 {
			continue // Inf and NaN: refused on load
		}
		bits = append(bits, byte(h), byte(h>>8))
	}
	n := int64(len(bits) / 2)
	// Repeat the patterns past one stream piece (4 MB).
	all := bytes.Repeat(bits, 40)
	path := filepath.Join(t.TempDir(), "f16.safetensors")
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{"w": {DType: safetensors.F16, Shape: []int64{40, n}, Data: all}}}
	if err := safetensors.Save(path, f); err != nil {
		t.Fatal(err)
	}
	l, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := NewInferenceStore(torch.CPU, l, BF16)
	s.Root().Param("w", []int64{40, n}, nil)
	if err := s.LoadLazy(l); err != nil {
		t.Fatal(err)
	}
	got := s.Get("w")
	want := torch.FromBytes(all, []int64{40, n}, torch.Float16, torch.CPU).To(torch.BFloat16)
	if got.DType() != torch.BFloat16 || !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("fp16 → bf16 on load differs from libtorch's cast (dtype %v)", got.DType())
	}
}
