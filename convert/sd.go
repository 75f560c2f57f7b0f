package convert

import (
	"fmt"
	"os"
	"path/filepath"

	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/text"
)

// SD writes what a Stable Diffusion 1.x single file (LDM layout: .ckpt or
// .safetensors) holds — the U-Net, the VAE and the CLIP text tower, each
// where present — as ddgi files in dir, and returns model-set role → file
// name (unet, vae, text).
func SD(src map[string]Source, dir string, half bool, o LDMOptions, to CLIPTextOptions) (map[string]string, error) {
	has := func(names ...string) bool { // a network is there when its first layer is
		for _, n := range names {
			if _, ok := src[n]; ok {
				return true
			}
		}
		return false
	}
	unet := has(LDMUNetPrefix + "input_blocks.0.0.weight")
	vae := has(ldmVAEPrefix + "encoder.conv_in.weight")
	clip := has(sdTextPrefix+"text_model.embeddings.token_embedding.weight", sdTextPrefix+"embeddings.token_embedding.weight")
	if !unet && !vae && !clip {
		return nil, fmt.Errorf("no Stable Diffusion networks (%s*, %s*, %s*) in the file", LDMUNetPrefix, ldmVAEPrefix, sdTextPrefix)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	roles := map[string]string{}
	if unet {
		m, err := LDMUNet(src, o)
		if err != nil {
			return nil, err
		}
		if err := m.Save(filepath.Join(dir, "unet.safetensors"), half); err != nil {
			return nil, err
		}
		roles["unet"] = "unet.safetensors"
	}
	if vae {
		if err := SaveVAE(src, filepath.Join(dir, "vae.safetensors"), half); err != nil {
			return nil, err
		}
		roles["vae"] = "vae.safetensors"
	}
	if clip {
		if err := SaveCLIPText(src, filepath.Join(dir, "text.safetensors"), half, to); err != nil {
			return nil, err
		}
		roles["text"] = "text.safetensors"
	}
	return roles, nil
}

// SaveControlNet converts lllyasviel's ControlNet for condition kind and
// writes it as a ddgi branch file.
func SaveControlNet(src map[string]Source, kind kinds.Cond, path string, half bool, o LDMOptions) error {
	n, err := ControlNet(src, kind, o)
	if err != nil {
		return err
	}
	return n.Save(path, kind, half)
}

// SaveVAE converts the SD autoencoder (whole SD file or VAE alone).
func SaveVAE(src map[string]Source, path string, half bool) error {
	a, store, err := LDMVAE(src, LDMVAEOptions{})
	if err != nil {
		return err
	}
	return store.Save(path, nn.SaveOptions{Config: a.Config, Half: half})
}

// SaveCLIPText converts a CLIP text tower (OpenAI or HF layout, alone or
// inside an SD file).
func SaveCLIPText(src map[string]Source, path string, half bool, o CLIPTextOptions) error {
	e, store, err := CLIPText(src, o)
	if err != nil {
		return err
	}
	return store.Save(path, nn.SaveOptions{Config: text.CLIPConfig{Encoder: e.Config}, Half: half})
}

// ControlKind maps a --cond name to the branch's condition kind.
func ControlKind(cond string) (kinds.Cond, error) {
	if k, err := kinds.ParseCond(cond); err == nil {
		return k, nil
	}
	return "", fmt.Errorf("--cond %q: want mask or scribble", cond)
}
