package convert

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"ddgi/convert/torchfile"
	"ddgi/safetensors"
)

// OpenSources lists the tensors of a checkpoint file, each read when
// asked for: a .safetensors file, or a PyTorch file (.ckpt, .pt, .pth, .bin) whose state dict may sit under
// "state_dict" (Lightning). Close the returned closer when done reading.
func OpenSources(path string) (map[string]Source, io.Closer, error) {
	if strings.HasSuffix(strings.ToLower(path), ".safetensors") {
		f, err := safetensors.Open(path)
		if err != nil {
			return nil, nil, err
		}
		src := make(map[string]Source, len(f.Names()))
		for _, n := range f.Names() {
			src[n] = stTensor{f, n}
		}
		return src, f, nil
	}
	f, err := torchfile.Open(path)
	if err != nil {
		return nil, nil, err
	}
	ts, err := torchfile.Tensors(unwrapStateDict(f.Root()))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	src := make(map[string]Source, len(ts))
	for n, t := range ts {
		src[n] = tensorSource{t}
	}
	return src, f, nil
}

// unwrapStateDict returns a Lightning checkpoint's "state_dict", or root
// itself when it has none.
func unwrapStateDict(root torchfile.Value) torchfile.Value {
	if d, ok := root.(*torchfile.Dict); ok {
		if sd, ok := d.Get("state_dict"); ok {
			return sd
		}
	}
	return root
}

// stTensor is one tensor of an open safetensors file, read from the file
// when asked for (so a 4 GB SD checkpoint is never in memory whole).
type stTensor struct {
	f    *safetensors.Lazy
	name string
}

func (s stTensor) Shape() []int64 {
	_, shape, _ := s.f.Info(s.name)
	return shape
}
func (s stTensor) Read() (safetensors.Tensor, error) { return s.f.Tensor(s.name) }

// withPrefix returns the tensors under prefix with it removed, or src
// itself when no name has it (a file holding only that network).
func withPrefix(src map[string]Source, prefix string) map[string]Source {
	out := map[string]Source{}
	for n, s := range src {
		if rest, ok := strings.CutPrefix(n, prefix); ok {
			out[rest] = s
		}
	}
	if len(out) == 0 {
		return src
	}
	return out
}

// maxIndex bounds the layer and level numbers read from tensor names, so
// that a hostile name cannot make a config allocate without end.
const maxIndex = 1 << 12

// index parses a layer number from a tensor name: false when it is not a
// number below maxIndex.
func index(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0 && n < maxIndex
}
