package face_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/face"
	"ddgi/internal/testweights"
	"ddgi/torch"
)

// TestShippedManifestNamesEveryFile: the shipped weights/ is a model set
// whose manifest names files that exist.
func TestShippedManifestNamesEveryFile(t *testing.T) {
	dir := filepath.Join("..", "weights")
	m, err := face.ReadManifest(dir)
	if err != nil || m == nil {
		t.Fatalf("weights/%s: %v", face.ManifestName, err)
	}
	for role, f := range m.Files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("role %s: %v", role, err)
		}
	}
	for _, o := range []face.Options{{Weights: dir, GAN: "eg3d", Cond: "scribble"}, {Weights: dir, GAN: "stylegan2", Cond: "mask", Art: true}} {
		if err := o.CheckFiles(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// TestManifestRenamesFiles: a model set whose files carry other names
// loads through its manifest; a bad manifest is a clear error.
func TestManifestRenamesFiles(t *testing.T) {
	dir := testweights.Tiny(t, filepath.Join("..", "weights", "tokenizer.json"))
	if err := os.Rename(filepath.Join(dir, "stylegan2_small64.safetensors"), filepath.Join(dir, "my-gan.safetensors")); err != nil {
		t.Fatal(err)
	}
	o := face.Options{Weights: dir, GAN: "stylegan2", Cond: "mask", Device: torch.CPU}
	if err := o.CheckFiles(); err == nil {
		t.Fatal("a missing GAN file passed CheckFiles")
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, face.ManifestName), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"format": "ddgi-model-set", "files": {"gan.stylegan2": "my-gan.safetensors"}}`)
	if err := o.CheckFiles(); err != nil {
		t.Fatal(err)
	}
	p, err := face.Load(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.G.(face.StyleGAN2); !ok {
		t.Fatalf("loaded a %T", p.G)
	}
	for manifest, want := range map[string]string{
		`{"format": "ddgi-model-set", "files": {"gan.stylegan2": "../../etc/passwd"}}`: "inside the folder",
		`{"format": "something else"}`: "format",
		`{not json`:                    "invalid character",
	} {
		write(manifest)
		if err := o.CheckFiles(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("manifest %s: got %v, want an error about %q", manifest, err, want)
		}
	}
}

// TestCameraRanges: impossible angles are errors, angles the 3D model was
// not trained on are allowed with a warning.
func TestCameraRanges(t *testing.T) {
	if err := face.CheckRender("eg3d", 0, 64, 1e9, 0); err == nil {
		t.Error("yaw 1e9 accepted")
	}
	if err := face.CheckRender("eg3d", 0, 64, 0, 90); err == nil {
		t.Error("pitch 90 accepted")
	}
	if err := face.CheckRender("eg3d", 0, 64, 70, 0); err != nil || face.RenderWarning(70, 0) == "" {
		t.Errorf("yaw 70: %v, warning %q", err, face.RenderWarning(70, 0))
	}
	if face.RenderWarning(30, 10) != "" {
		t.Error("a trained angle warned")
	}
}

// The art pipeline takes "branch.<cond>.art" when the manifest has one (the
// branch its U-Net was trained with) and the photo branch otherwise.
func TestArtBranchRole(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, face.ManifestName), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := func(art bool) string {
		return face.Options{Weights: dir, GAN: "stylegan2", Cond: "mask", Art: art}.Files()["branch"]
	}
	write(`{"format": "ddgi-model-set", "files": {"branch.mask": "new.safetensors"}}`)
	if got, want := files(true), filepath.Join(dir, "new.safetensors"); got != want {
		t.Fatalf("art branch without its own role: %s, want %s", got, want)
	}
	write(`{"format": "ddgi-model-set", "files": {"branch.mask": "new.safetensors", "branch.mask.art": "old.safetensors"}}`)
	if got, want := files(true), filepath.Join(dir, "old.safetensors"); got != want {
		t.Fatalf("art branch: %s, want %s", got, want)
	}
	if got, want := files(false), filepath.Join(dir, "new.safetensors"); got != want {
		t.Fatalf("photo branch: %s, want %s", got, want)
	}
}
