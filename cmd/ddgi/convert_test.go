package main

import (
	"os"
	"path/filepath"
	"testing"

	"ddgi/data"
	"ddgi/diffusion"
	"ddgi/face"
	"ddgi/internal/golden"
	"ddgi/text"
	"ddgi/torch"
)

// TestConvertThenSample runs the public-checkpoint path as a user would:
// `ddgi convert` on a rosinality checkpoint written by the reference code,
// then `ddgi sample gan --w-plus --raw` on the fixture's codes; the float
// images match the reference implementation's.
func TestConvertThenSample(t *testing.T) {
	quiet(t)
	dir := t.TempDir()
	fixture := filepath.Join("..", "..", "convert", "testdata", "rosinality")
	g := filepath.Join(dir, "g.safetensors")
	if code := run([]string{"convert", "--in", filepath.Join(fixture, "ckpt.pt"), "--out", g}); code != 0 {
		t.Fatalf("convert exited %d", code)
	}
	if code := run([]string{"convert", "--in", filepath.Join(fixture, "ckpt.pt"), "--out", g}); code != 1 {
		t.Errorf("convert over an existing --out without --force exited %d, want 1", code)
	}
	io := golden.Load(t, filepath.Join(fixture, "io.safetensors"))
	codes := filepath.Join(dir, "codes.safetensors")
	golden.Save(t, codes, map[string]*torch.Tensor{"w_plus": io["w_plus"]})
	raw := filepath.Join(dir, "raw.safetensors")
	if code := run([]string{"sample", "gan", "--generator", g, "--w-plus", codes, "--noise", "const", "--raw", raw, "--out", filepath.Join(dir, "grid.png")}); code != 0 {
		t.Fatalf("sample gan exited %d", code)
	}
	got := golden.Load(t, raw)["image"]
	if d := got.Sub(io["img_wplus"]).Abs().MaxAll().Item(); !(d <= 1e-4) {
		t.Errorf("sample gan --w-plus vs rosinality's image: max |Δ| = %.3g", d)
	}
	if _, err := os.Stat(filepath.Join(dir, "grid.png")); err != nil {
		t.Error(err)
	}
	// Codes of the wrong shape, and a file that is not a checkpoint, are one-line errors.
	golden.Save(t, codes, map[string]*torch.Tensor{"w_plus": io["w_plus"].Narrow(1, 0, 3)})
	if code := run([]string{"sample", "gan", "--generator", g, "--w-plus", codes, "--out", filepath.Join(dir, "x.png")}); code != 1 {
		t.Errorf("wrong-shaped codes exited %d, want 1", code)
	}
	junk := filepath.Join(dir, "junk.pt")
	os.WriteFile(junk, []byte("not a checkpoint at all"), 0o644)
	if code := run([]string{"convert", "--in", junk, "--out", filepath.Join(dir, "j.safetensors")}); code != 1 {
		t.Errorf("junk input exited %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "j.safetensors")); err == nil {
		t.Error("a failed conversion left an output file")
	}
}

// TestPublicGeneratorThroughTheMethod takes converted public generators
// (NVlabs StyleGAN2 at 32², NVlabs EG3D at 64², both random weights) through
// the method as a user would: `train inversion --generator` (W+ sized from
// the generator's config, renders resized for the losses), then `generate
// --generator --inversion`.
func TestPublicGeneratorThroughTheMethod(t *testing.T) {
	dir, w := tinyWeights(t)
	mask := make([]uint8, 40*40)
	for i := range mask {
		mask[i] = uint8((i / 40) % 19)
	}
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, mask, 40); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, fixture string }{
		{"nvlabs", "nvlabs/network-snapshot.pkl"},
		{"eg3d", "eg3d/network-snapshot.pkl"},
	} {
		g := filepath.Join(dir, c.name+".safetensors")
		if code := run([]string{"convert", "--in", filepath.Join("..", "..", "convert", "testdata", c.fixture), "--out", g}); code != 0 {
			t.Fatalf("convert %s exited %d", c.name, code)
		}
		inv := filepath.Join(dir, "inv_"+c.name+".safetensors")
		if code := run([]string{"train", "inversion", "--weights", w, "--generator", g, "--out", filepath.Join(dir, "run_"+c.name), "--steps1", "2", "--steps2", "1",
			"--batch", "2", "--n", "4", "--lpips", "0", "--id", "0", "--width", "16", "--checkpoint-every", "2", "--export", inv}); code != 0 {
			t.Fatalf("train inversion --generator %s exited %d", c.name, code)
		}
		out := filepath.Join(dir, "out_"+c.name, "face.png")
		if code := run([]string{"generate", "--weights", w, "--generator", g, "--inversion", inv, "--text", "The woman is smiling.", "--mask", mpath, "--out", out}); code != 0 {
			t.Fatalf("generate --generator %s exited %d", c.name, code)
		}
		if _, err := os.Stat(out); err != nil {
			t.Fatal(err)
		}
	}
	// The shipped-size inversion does not fit a converted generator: a clear error.
	if code := run([]string{"generate", "--weights", w, "--generator", filepath.Join(dir, "nvlabs.safetensors"), "--inversion", filepath.Join(w, "inversion_stylegan2_mask.safetensors"),
		"--text", "hi", "--mask", mpath, "--out", filepath.Join(dir, "x.png")}); code != 1 {
		t.Errorf("mismatched inversion exited %d, want 1", code)
	}
}

// TestConvertStableDiffusionSet converts an LDM single file (small SD1.5-
// structured U-Net, random weights, written by lllyasviel's code) into a
// model-set folder, adds the matching ControlNet .pth, an SD VAE and a
// CLIP text tower to it, and loads the U-Net with its branch from the
// folder: the controlled ε matches the reference code's.
func TestConvertStableDiffusionSet(t *testing.T) {
	quiet(t)
	set := filepath.Join(t.TempDir(), "sd")
	td := filepath.Join("..", "..", "convert", "testdata")
	for _, args := range [][]string{
		{"convert", "--from", "ldm", "--in", filepath.Join(td, "ldm_unet", "ldm_tiny.ckpt"), "--out", set, "--config", filepath.Join(td, "ldm_unet", "tiny.yaml")},
		{"convert", "--from", "controlnet", "--cond", "mask", "--in", filepath.Join(td, "ldm_unet", "control_tiny.pth"), "--out", set + "/", "--config", filepath.Join(td, "ldm_unet", "tiny.yaml")},
		{"convert", "--from", "vae", "--in", filepath.Join(td, "ldm_vae", "model.safetensors"), "--out", set + "/"},
		{"convert", "--from", "clip", "--in", filepath.Join(td, "clip", "model.pt"), "--out", set + "/", "--text-heads", "4"},
	} {
		if code := run(args); code != 0 {
			t.Fatalf("%v exited %d", args, code)
		}
	}
	m, err := face.ReadManifest(set)
	if err != nil || m == nil {
		t.Fatal(err)
	}
	for _, role := range []string{"unet", "branch.mask", "vae", "text"} {
		if m.Files[role] == "" {
			t.Errorf("manifest lacks %s: %v", role, m.Files)
		}
	}
	u, err := diffusion.Load(filepath.Join(set, m.Files["unet"]), torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.LoadControl(filepath.Join(set, m.Files["branch.mask"])); err != nil {
		t.Fatal(err)
	}
	io := golden.Load(t, filepath.Join(td, "ldm_unet", "io.safetensors"))
	torch.NoGrad(func() {
		torch.Scoped(func() {
			eps := u.Predict(io["x"], io["t"], io["context"], diffusion.Conditions{Mask: io["hint"]})
			if d := eps.Sub(io["eps_control"]).Abs().MaxAll().Item(); !(d <= 1e-4) {
				t.Errorf("controlled ε from the converted set differs from cldm's by %g", d)
			}
		})
	})
	// Files of the wrong kind and an unknown condition are one-line errors that write nothing.
	bad := t.TempDir()
	for _, args := range [][]string{
		{"convert", "--from", "ldm", "--in", filepath.Join(td, "ldm_unet", "control_tiny.pth"), "--out", filepath.Join(bad, "x")},
		{"convert", "--from", "controlnet", "--cond", "depth", "--in", filepath.Join(td, "ldm_unet", "control_tiny.pth"), "--out", filepath.Join(bad, "y.safetensors")},
		{"convert", "--from", "controlnet", "--in", filepath.Join(td, "ldm_vae", "model.safetensors"), "--out", filepath.Join(bad, "z.safetensors")},
		{"convert", "--from", "vae", "--in", filepath.Join(td, "clip", "model.pt"), "--out", filepath.Join(bad, "v.safetensors")},
		{"convert", "--from", "clip", "--in", filepath.Join(td, "rosinality", "ckpt.pt"), "--out", filepath.Join(bad, "c.safetensors")},
		{"convert", "--in", filepath.Join(td, "ldm_vae", "model.safetensors"), "--out", filepath.Join(bad, "g.safetensors")},
	} {
		if code := run(args); code != 1 {
			t.Errorf("%v exited %d, want 1", args, code)
		}
	}
	for _, f := range []string{"y.safetensors", "z.safetensors", "v.safetensors", "c.safetensors", "g.safetensors"} {
		if _, err := os.Stat(filepath.Join(bad, f)); err == nil {
			t.Errorf("a failed conversion wrote %s", f)
		}
	}
}

// TestConvertDiffusersSet converts a diffusers pipeline folder (detected
// by its model_index.json) and a diffusers ControlNetModel folder into one
// model set (small random models written by diffusers' own classes): the
// manifest names every part, a VAE or text encoder folder converts alone,
// the tokenizer folder loads from the set, the controlled ε matches
// diffusers', and the U-Net samples on the scheduler's leading+1 grid with
// no flag.
func TestConvertDiffusersSet(t *testing.T) {
	quiet(t)
	set := filepath.Join(t.TempDir(), "sd")
	td := filepath.Join("..", "..", "convert", "testdata", "diffusers")
	for _, args := range [][]string{
		{"convert", "--in", filepath.Join(td, "sd"), "--out", set},
		{"convert", "--from", "controlnet", "--cond", "mask", "--in", filepath.Join(td, "controlnet"), "--out", set + "/"},
		// One network from its folder, as from a file.
		{"convert", "--from", "vae", "--in", filepath.Join(td, "sd", "vae"), "--out", filepath.Join(set, "vae2.safetensors")},
		{"convert", "--from", "clip", "--in", filepath.Join(td, "sd", "text_encoder"), "--out", filepath.Join(set, "text2.safetensors")},
	} {
		if code := run(args); code != 0 {
			t.Fatalf("%v exited %d", args, code)
		}
	}
	m, err := face.ReadManifest(set)
	if err != nil || m == nil {
		t.Fatal(err)
	}
	for _, role := range []string{"unet", "branch.mask", "vae", "text", "tokenizer"} {
		if m.Files[role] == "" {
			t.Errorf("manifest lacks %s: %v", role, m.Files)
		}
	}
	if _, err := text.LoadCLIP(filepath.Join(set, m.Files["tokenizer"])); err != nil {
		t.Fatal(err)
	}
	u, err := diffusion.Load(filepath.Join(set, m.Files["unet"]), torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if ts := u.Schedule.DDIMTimesteps(20); ts[0] != 951 || ts[19] != 1 {
		t.Errorf("DDIM grid %v, want SD1.5's 951 … 1", ts)
	}
	if _, err := u.LoadControl(filepath.Join(set, m.Files["branch.mask"])); err != nil {
		t.Fatal(err)
	}
	io := golden.Load(t, filepath.Join(td, "io.safetensors"))
	torch.NoGrad(func() {
		torch.Scoped(func() {
			eps := u.Predict(io["x"], io["t"], io["context"], diffusion.Conditions{Mask: io["hint"]})
			if d := eps.Sub(io["eps_control"]).Abs().MaxAll().Item(); !(d <= 1e-4) {
				t.Errorf("controlled ε from the converted set differs from diffusers' by %g", d)
			}
		})
	})
	bad := t.TempDir()
	for _, args := range [][]string{
		{"convert", "--from", "diffusers", "--in", filepath.Join(td, "controlnet"), "--out", filepath.Join(bad, "x")},
		{"convert", "--from", "vae", "--in", filepath.Join(td, "sd"), "--out", filepath.Join(bad, "v.safetensors")},
		{"convert", "--from", "clip", "--in", filepath.Join(td, "sd", "vae"), "--out", filepath.Join(bad, "c.safetensors")},
		{"convert", "--from", "ldm", "--in", filepath.Join(td, "sd", "unet"), "--out", filepath.Join(bad, "l")},
	} {
		if code := run(args); code != 1 {
			t.Errorf("%v exited %d, want 1", args, code)
		}
	}
}

// TestDiffuseFromModelSet runs the diffusion baseline from a model-set
// folder whose manifest renames its U-Net, as a converted set does; a
// set whose VAE does not fit its U-Net is refused with the reason.
func TestDiffuseFromModelSet(t *testing.T) {
	dir, w := tinyWeights(t)
	if err := os.Rename(filepath.Join(w, "diffusion_small64.safetensors"), filepath.Join(w, "unet.safetensors")); err != nil {
		t.Fatal(err)
	}
	if err := face.AddToManifest(w, map[string]string{"unet": "unet.safetensors"}); err != nil {
		t.Fatal(err)
	}
	mask := make([]uint8, 32*32)
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, mask, 32); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "d.png")
	if code := run([]string{"diffuse", "--weights", w, "--text", "A man.", "--mask", mpath, "--steps", "2", "--out", out}); code != 0 {
		t.Fatalf("diffuse --weights exited %d", code)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}
