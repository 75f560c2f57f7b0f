package nn

import (
	"fmt"
	"strings"

	"ddgi/safetensors"
	"ddgi/torch"
)

// QuantScaleSuffix names the per-row scale stored beside an int8 tensor:
// weight ≈ int8 · scale[row], rows along dim 0 (output channels).
const QuantScaleSuffix = ".q8scale"

// QuantizeMin is the smallest float tensor Quantize stores as int8: biases,
// norms and small tables stay as they were.
const QuantizeMin = 4096

// Quantize rewrites a file's float tensors of ≥ 2 dims and ≥ QuantizeMin
// elements as symmetric int8 with one F32 scale per output row, halving an
// F16 file's weights; Store.LoadFile restores them transparently. It
// reports how many tensors it converted.
func Quantize(f *safetensors.File) (int, error) {
	n := 0
	names := f.Names()
	for _, name := range names {
		if strings.HasSuffix(name, QuantScaleSuffix) {
			return 0, fmt.Errorf("%s: file is already quantized", name)
		}
	}
	for _, name := range names {
		st := f.Tensors[name]
		if len(st.Shape) < 2 || st.NumElements() < QuantizeMin || (st.DType != safetensors.F16 && st.DType != safetensors.F32 && st.DType != safetensors.BF16) {
			continue
		}
		var q, scale safetensors.Tensor
		err := torch.Try(func() {
			torch.Scoped(func() {
				src, err := FromSafetensors(st, torch.CPU)
				if err != nil {
					panic(&torch.Error{Op: "quantize", Msg: err.Error()})
				}
				defer src.Free()
				rows := src.To(torch.Float32).Reshape(st.Shape[0], -1)
				s := rows.Abs().Amax([]int64{1}, true).DivScalar(127).ClampMin(1e-12)
				qi := rows.Div(s).Round().Clamp(-127, 127).To(torch.Int8).Reshape(st.Shape...)
				q = safetensors.Tensor{DType: safetensors.I8, Shape: st.Shape, Data: qi.Bytes()}
				scale = safetensors.Tensor{DType: safetensors.F32, Shape: []int64{st.Shape[0]}, Data: s.Reshape(st.Shape[0]).Contiguous().Bytes()}
			})
		})
		if err != nil {
			return 0, fmt.Errorf("tensor %s: %w", name, err)
		}
		f.Tensors[name], f.Tensors[name+QuantScaleSuffix] = q, scale
		n++
	}
	if n > 0 {
		f.Metadata["quantized"] = fmt.Sprintf("int8, per-row scales (%s)", QuantScaleSuffix)
	}
	return n, nil
}

// dequantized returns the float tensor an int8 entry stands for (nil, nil
// when name is not quantized in f).
func dequantized(f *safetensors.File, name string) (*torch.Tensor, error) {
	st := f.Tensors[name]
	sc, ok := f.Tensors[name+QuantScaleSuffix]
	if !ok || st.DType != safetensors.I8 {
		return nil, nil
	}
	if len(st.Shape) == 0 || len(sc.Shape) != 1 || sc.Shape[0] != st.Shape[0] || sc.DType != safetensors.F32 {
		return nil, fmt.Errorf("int8 scale %v for shape %v", sc.Shape, st.Shape)
	}
	q, err := FromSafetensors(st, torch.CPU)
	if err != nil {
		return nil, err
	}
	defer q.Free()
	s, err := FromSafetensors(sc, torch.CPU)
	if err != nil {
		return nil, err
	}
	defer s.Free()
	var out *torch.Tensor
	err = torch.Try(func() {
		view := make([]int64, len(st.Shape))
		for i := range view {
			view[i] = 1
		}
		view[0] = st.Shape[0]
		out = q.To(torch.Float32).Mul(s.Reshape(view...))
		torch.Persist(out)
	})
	return out, err
}
