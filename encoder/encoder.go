// Package encoder assembles the paper's diffusion-based encoder E from its
// trained parts: tokenizer and text encoder, latent space (KL autoencoder or
// patches), U-Net and ControlNet branches; and turns masks and scribbles
// into the branches' inputs.
package encoder

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"ddgi/diffusion"
	"ddgi/diffusion/vae"
	"ddgi/imagebatch"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/text"
	"ddgi/torch"
)

// LoadBranch attaches the ControlNet branch for kind from path.
func LoadBranch(m *diffusion.Model, path string, kind kinds.Cond) error {
	n, err := m.LoadControl(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no %s branch at %s (train one with `ddgi train diffusion --stage control --cond %s`)", kind, path, kind)
	case err != nil:
		return err
	case n.Kind != kind:
		return fmt.Errorf("%s holds a %s branch, not %s", path, n.Kind, kind)
	}
	return nil
}

// MaskCondition one-hot encodes a size² label map, repeated n times.
func MaskCondition(lab []uint8, size, n int) *torch.Tensor {
	t := imagebatch.OneHot(imagebatch.Labels([][]uint8{lab}, size))
	return t.Expand(int64(n), t.Size(1), t.Size(2), t.Size(3))
}

// ScribbleCondition turns 0/255 strokes into a [n,1,size,size] 0/1 map.
func ScribbleCondition(s []uint8, size, n int) *torch.Tensor {
	return imagebatch.Strokes([][]uint8{s}, size).Expand(int64(n), 1, int64(size), int64(size))
}

// Files name the tokenizer, text encoder and latent-space weights.
type Files struct {
	Tokenizer  string // BPE vocabulary
	Text       string // text encoder weights
	TextPreset string // text encoder preset of a fresh encoder (no weights yet)
	VAE        string // KL autoencoder weights (latent space "vae")
	// Precision is what a loaded (frozen) text tower computes in: the
	// U-Net's, face.Options.Precision ("": fp32).
	Precision nn.Precision
}

// TextEncoder adapts ddgi/text to diffusion.TextEncoder. Enc pools at
// Tok's EOS once paired by Enc.UseVocab (LoadText does).
type TextEncoder struct {
	Tok text.Vocab
	Enc *text.Encoder
}

// IDs tokenizes texts, on the encoder's device; "" is the empty prompt.
func (t TextEncoder) IDs(texts []string) (*torch.Tensor, error) {
	ctx := int(t.Enc.Config.ContextLength())
	rows := make([]*torch.Tensor, len(texts))
	for i, s := range texts {
		if strings.TrimSpace(s) == "" {
			rows[i] = t.Tok.EmptyIDs(1, ctx)
			continue
		}
		r, err := t.Tok.EncodeBatch([]string{s}, ctx)
		if err != nil {
			return nil, err
		}
		rows[i] = r
	}
	var out *torch.Tensor
	err := torch.Try(func() { out = torch.Cat(rows, 0).ToDevice(t.Enc.Device()) })
	return out, err
}

// Encode returns token features [B,L,Width].
func (t TextEncoder) Encode(texts []string) (*torch.Tensor, error) {
	ids, err := t.IDs(texts)
	if err != nil {
		return nil, err
	}
	var out *torch.Tensor
	err = torch.Try(func() {
		// Only the output outlives the call: the layers' temporaries are
		// freed now, not when Go's collector gets to them (CLIP's tower
		// left ~157 MB a call behind).
		sc := torch.NewScope()
		defer sc.Close()
		out = t.Enc.Forward(ids)
		sc.Keep(out)
	})
	return out, err
}

// LoadText loads the tokenizer and the text encoder onto dev; when the
// weights file is missing and allowFresh is set it builds a fresh encoder
// (trained jointly) and reports fresh = true.
func LoadText(lw Files, width int64, allowFresh bool, dev torch.Device) (te TextEncoder, store *nn.Store, err error) {
	te.Tok, err = text.LoadVocab(lw.Tokenizer)
	if err != nil {
		return te, nil, fmt.Errorf("tokenizer: %w (run `ddgi train tokenizer`)", err)
	}
	if _, serr := os.Stat(lw.Text); serr == nil {
		// A loaded encoder is only ever frozen (a jointly trained one
		// starts fresh, below): no random init, no optimizer state.
		te.Enc, store, err = text.LoadFrozenEncoder(lw.Text, dev, lw.Precision)
		if err != nil {
			return te, nil, err
		}
		store.Freeze("") // no graph through a loaded encoder
	} else {
		if !allowFresh {
			return te, nil, fmt.Errorf("text encoder %s missing", lw.Text)
		}
		c, err := text.EncoderPreset(lw.TextPreset)
		if err != nil {
			return te, nil, err
		}
		store = nn.NewStore(dev, 7)
		te.Enc = text.NewEncoder(store.Root(), c)
		if err := te.Enc.UseVocab(te.Tok); err != nil {
			return te, nil, fmt.Errorf("%s with preset %s: %w", lw.Tokenizer, lw.TextPreset, err)
		}
		return te, store, nil
	}
	if err := te.Enc.UseVocab(te.Tok); err != nil {
		return te, nil, fmt.Errorf("%s with %s: %w", lw.Tokenizer, lw.Text, err)
	}
	if w := te.Enc.Config.Width(); w != width {
		return te, nil, fmt.Errorf("text encoder width %d, U-Net context %d", w, width)
	}
	return te, store, nil
}

// Autoencoder returns the latent space a config was trained in, on dev.
func Autoencoder(c diffusion.Config, lw Files, dev torch.Device) (diffusion.Autoencoder, error) {
	if c.Latent != "vae" {
		return diffusion.NewAutoencoder(c)
	}
	a, store, err := vae.Load(lw.VAE, dev)
	if err != nil {
		return nil, fmt.Errorf("latent space \"vae\": %w (train it with `ddgi train vae`)", err)
	}
	store.Freeze("")
	vc := a.Config
	if vc.LatentChannels() != c.LatentChannels || vc.Factor() != c.ImageSize()/c.LatentSize {
		return nil, fmt.Errorf("%s: %d latent channels at factor %d, the U-Net wants %d at %d", lw.VAE, vc.LatentChannels(), vc.Factor(), c.LatentChannels, c.ImageSize()/c.LatentSize)
	}
	return VAELatent{A: a, Scale: vc.ScaleFactor()}, nil
}

// VAELatent is SD's latent space: scaled samples of the KL posterior.
type VAELatent struct {
	A     *vae.Autoencoder
	Scale float64
}

// ToLatent encodes and samples the posterior (its mean when g is nil).
func (v VAELatent) ToLatent(x *torch.Tensor, g *torch.Generator) *torch.Tensor {
	mean, logvar := v.A.Encode(x)
	if g == nil {
		return mean.MulScalar(v.Scale)
	}
	return v.A.Sample(mean, logvar, g).MulScalar(v.Scale)
}

// ToLatentRows encodes rows lo… of a batch of total images and samples
// their posterior with the rows' share of noise drawn for the whole batch.
func (v VAELatent) ToLatentRows(x *torch.Tensor, g *torch.Generator, total, lo int64) *torch.Tensor {
	mean, logvar := v.A.Encode(x)
	if g == nil {
		return mean.MulScalar(v.Scale)
	}
	eps := torch.Randn(g, append([]int64{total}, mean.Shape()[1:]...), torch.Float32, mean.Device()).Narrow(0, lo, mean.Size(0))
	return vae.SampleWith(mean, logvar, eps).MulScalar(v.Scale)
}

// FromLatent decodes unscaled latents (I^d_0).
func (v VAELatent) FromLatent(z *torch.Tensor) *torch.Tensor {
	return v.A.Decode(z.DivScalar(v.Scale))
}
