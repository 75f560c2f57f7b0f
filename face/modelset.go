package face

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"ddgi/internal/imageio"
)

// ManifestName is a model set's manifest inside its folder.
const ManifestName = "manifest.json"

// Manifest names a model set's files by role, so a folder of converted or
// renamed weights works with --weights DIR. Roles: tokenizer, text,
// text.art, vae, unet, unet.art, branch.mask, branch.scribble,
// branch.<cond>.art (the art U-Net's own branch; default: the photo one),
// gan.stylegan2, gan.eg3d, inversion.<gan>.<cond>[.<variant>] (variant:
// art, or an ablation such as m-only). A role the manifest does not name
// falls back to the shipped file name.
type Manifest struct {
	Format string            `json:"format"` // "ddgi-model-set"
	Files  map[string]string `json:"files"`  // role → file, relative to the folder
}

// ReadManifest reads dir's manifest; a folder without one gives nil.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestName), err)
	}
	if m.Format != "ddgi-model-set" {
		return nil, fmt.Errorf("%s: format %q, want \"ddgi-model-set\"", filepath.Join(dir, ManifestName), m.Format)
	}
	for role, f := range m.Files {
		if f == "" || filepath.IsAbs(f) || strings.HasPrefix(filepath.Clean(f), "..") {
			return nil, fmt.Errorf("%s: role %s names %q: want a file inside the folder", filepath.Join(dir, ManifestName), role, f)
		}
	}
	return &m, nil
}

// file is the path of role in the set at dir: the manifest's name for it,
// else the shipped name.
// role says whether the manifest names a file for role.
func (m *Manifest) role(role string) (string, bool) {
	if m == nil {
		return "", false
	}
	f, ok := m.Files[role]
	return f, ok
}

func (m *Manifest) file(dir, role, shipped string) string {
	if m != nil {
		if f, ok := m.Files[role]; ok {
			return filepath.Join(dir, f)
		}
	}
	return filepath.Join(dir, shipped)
}

// AddToManifest records role → file entries in dir's manifest, creating it
// when absent; the file is replaced atomically.
func AddToManifest(dir string, roles map[string]string) error {
	m, err := ReadManifest(dir)
	if err != nil {
		return err
	}
	if m == nil {
		m = &Manifest{Format: "ddgi-model-set", Files: map[string]string{}}
	}
	if m.Files == nil {
		m.Files = map[string]string{}
	}
	for role, f := range roles {
		m.Files[role] = f
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return imageio.WriteAtomic(filepath.Join(dir, ManifestName), append(b, '\n'))
}
