package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"ddgi/data"
)

// TestRenderReproducesGenerate: `ddgi render` of the latent generate saved
// draws generate's pixels (2D, and 3D from the recorded yaw/pitch), its PNG
// carries generate's record with the latent's hash, another camera gives
// another image, and bad inputs are one-line errors with status 1 or 2.
func TestRenderReproducesGenerate(t *testing.T) {
	dir, w := tinyWeights(t)
	mask := make([]uint8, 32*32)
	for i := range mask {
		mask[i] = uint8((i / 32) % 19)
	}
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, mask, 32); err != nil {
		t.Fatal(err)
	}
	at := func(name string) string { return filepath.Join(dir, "out", name) }
	gen := func(out string, extra ...string) {
		t.Helper()
		args := append([]string{"generate", "--weights", w, "--text", "A smiling woman.", "--mask", mpath, "--seed", "7", "--out", out}, extra...)
		if code := run(args); code != 0 {
			t.Fatalf("%v exited %d", args, code)
		}
	}
	render := func(want int, args ...string) {
		t.Helper()
		if code := run(append([]string{"render", "--weights", w}, args...)); code != want {
			t.Fatalf("render %v exited %d, want %d", args, code, want)
		}
	}
	gen(at("f2.png"))
	gen(at("f3.png"), "--gan", "eg3d", "--yaw", "20", "--pitch", "5")
	render(0, "--latent", at("f2.latent.safetensors"), "--out", at("r2.png"))
	render(0, "--latent", at("f3.latent.safetensors"), "--out", at("r3.png"))
	for _, pair := range [][2]string{{"f2.png", "r2.png"}, {"f3.png", "r3.png"}} {
		d := maxPixelDiff(t, at(pair[0]), at(pair[1]))
		if d > 1 {
			t.Errorf("render of %s differs from generate's image by %d/255", pair[0], d)
		}
		t.Logf("%s vs %s: max |Δ| %d/255", pair[0], pair[1], d)
	}
	made, again := pngText(t, at("f3.png")), pngText(t, at("r3.png"))
	for _, k := range []string{"Description", "ddgi:seed", "ddgi:gan", "ddgi:yaw", "ddgi:pitch", "ddgi:weights-sha256", "ddgi:gan-sha256", "ddgi:condition-sha256"} {
		if made[k] == "" || again[k] != made[k] {
			t.Errorf("text chunk %s: generate %q, render %q", k, made[k], again[k])
		}
	}
	if len(again["ddgi:latent-sha256"]) != 64 {
		t.Errorf("the render does not record its latent's hash: %v", again)
	}
	// --yaw alone turns the head and keeps the recorded pitch.
	render(0, "--latent", at("f3.latent.safetensors"), "--yaw", "-30", "--views", "3", "--out", at("turned.png"))
	if d := maxPixelDiff(t, at("f3.png"), at("turned.png")); d == 0 {
		t.Error("--yaw -30 rendered the recorded view")
	}
	if txt := pngText(t, at("turned.png")); txt["ddgi:yaw"] != "-30" || txt["ddgi:pitch"] != "5" {
		t.Errorf("turned view records yaw %q pitch %q, want -30 and 5", txt["ddgi:yaw"], txt["ddgi:pitch"])
	}
	for _, f := range []string{"turned_views.png", "turned_turn.gif"} {
		if _, err := os.Stat(at(f)); err != nil {
			t.Error(err)
		}
	}
	// Bad inputs: status 1 (2 for a flag the parser refuses), nothing written.
	notPNG := at("f3.png")
	for _, c := range []struct {
		want int
		args []string
	}{
		{1, []string{"--latent", at("missing.latent.safetensors")}},
		{1, []string{"--latent", notPNG}},
		{1, []string{"--latent", at("f2.latent.safetensors"), "--gan", "eg3d"}},
		{1, []string{"--latent", at("f2.latent.safetensors"), "--yaw", "10"}},
		{1, []string{"--latent", at("f3.latent.safetensors"), "--yaw", "1e9"}},
		{1, []string{"--latent", at("f3.latent.safetensors"), "--generator", filepath.Join(w, "stylegan2_small64.safetensors")}},
		{1, []string{"--latent", at("f3.latent.safetensors"), "--camera", "1,2,3"}},
		{2, []string{"--latent", at("f3.latent.safetensors"), "--yaw", "NaN"}},
	} {
		code, _, stderr := captureRun(t, append([]string{"render", "--weights", w, "--out", at("bad.png")}, c.args...)...)
		if code != c.want {
			t.Errorf("render %v exited %d, want %d", c.args, code, c.want)
		}
		if c.want == 1 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("render %v: want a one-line error, got %q", c.args, stderr)
		}
	}
	if _, err := os.Stat(at("bad.png")); err == nil {
		t.Error("a failed render wrote its output")
	}
}

// maxPixelDiff is the largest difference of two same-size PNGs' RGBA
// bytes (255 when their sizes differ).
func maxPixelDiff(t *testing.T, a, b string) int {
	t.Helper()
	pa, pb := pngPixels(t, a), pngPixels(t, b)
	if len(pa) != len(pb) || len(pa) == 0 {
		return 255
	}
	d := 0
	for i := range pa {
		d = max(d, abs(int(pa[i])-int(pb[i])))
	}
	return d
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestGenerateRefusesImpossibleValues: a step past the schedule and
// angles beyond a sphere are one-line errors; yaw outside the trained
// range is a warning, and the image is still written.
func TestGenerateRefusesImpossibleValues(t *testing.T) {
	dir, w := tinyWeights(t)
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, make([]uint8, 32*32), 32); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "f.png")
	args := []string{"generate", "--weights", w, "--text", "A man.", "--mask", mpath, "--out", out}
	for _, bad := range [][]string{{"--step", "1000000"}, {"--gan", "eg3d", "--yaw", "1e9"}, {"--gan", "eg3d", "--pitch", "95"}} {
		code, _, stderr := captureRun(t, append(append([]string(nil), args...), bad...)...)
		if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("generate %v: exit %d, stderr %q; want 1 and one line", bad, code, stderr)
		}
	}
	for _, other := range [][]string{
		{"diffuse", "--weights", w, "--text", "A man.", "--steps", "1000000", "--out", out},
		{"diffuse", "--weights", w, "--text", "A man.", "--n", "1000000", "--out", out},
		{"sample", "gan", "--weights", w, "--trunc", "1e9", "--out", out},
		{"selfcheck", "--steps", "1000000"},
	} {
		if code, _, stderr := captureRun(t, other...); code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 1 and one line", other, code, stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a refused run wrote its image")
	}
	code, _, stderr := captureRun(t, append(args, "--gan", "eg3d", "--yaw", "70")...)
	if code != 0 || !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "trained") {
		t.Errorf("--yaw 70: exit %d, stderr %q; want 0 and a warning about the trained range", code, stderr)
	}
}

// TestGeneratedPNGsRecordThemselves: the images of diffuse and sample gan
// carry their settings and the hashes of what made them, as generate's do.
func TestGeneratedPNGsRecordThemselves(t *testing.T) {
	dir, w := tinyWeights(t)
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, make([]uint8, 32*32), 32); err != nil {
		t.Fatal(err)
	}
	d, g := filepath.Join(dir, "d.png"), filepath.Join(dir, "g.png")
	if code := run([]string{"diffuse", "--weights", w, "--text", "A man.", "--mask", mpath, "--steps", "2", "--seed", "5", "--out", d}); code != 0 {
		t.Fatalf("diffuse exited %d", code)
	}
	if code := run([]string{"sample", "gan", "--weights", w, "--seeds", "3-4", "--out", g}); code != 0 {
		t.Fatalf("sample gan exited %d", code)
	}
	txt := pngText(t, d)
	if txt["Description"] != "A man." || txt["ddgi:seed"] != "5" || txt["ddgi:steps"] != "2" || len(txt["ddgi:mask-sha256"]) != 64 || len(txt["ddgi:weights-sha256"]) != 64 {
		t.Errorf("diffuse PNG text chunks %v", txt)
	}
	txt = pngText(t, g)
	if txt["ddgi:seeds"] != "3-4" || txt["ddgi:gan"] != "stylegan2" || len(txt["ddgi:gan-sha256"]) != 64 {
		t.Errorf("sample gan PNG text chunks %v", txt)
	}
}

// TestHelpExamplesAreSafe: every example in the commands' help names a
// command ddgi has and writes only under /tmp/ddgi-out (safe to paste).
func TestHelpExamplesAreSafe(t *testing.T) {
	writes := map[string]bool{"--out": true, "--grid": true, "--gif": true, "--raw": true, "--json": true, "--export": true}
	for name, exs := range helpExamples {
		cmd, target, _ := strings.Cut(name, " ")
		if _, ok := commands[cmd]; !ok {
			t.Errorf("examples for unknown command %q", name)
		}
		if _, ok := groups[cmd][target]; target != "" && !ok {
			t.Errorf("examples for unknown target %q", name)
		}
		for _, ex := range exs {
			if !strings.Contains(ex, "ddgi "+name) {
				t.Errorf("%s example %q does not run ddgi %s", name, ex, name)
			}
			cmdline, _, _ := strings.Cut(ex, " #") // not the comment
			f := strings.Fields(cmdline)
			for i, w := range f[:len(f)-1] {
				if writes[w] && !strings.HasPrefix(f[i+1], "/tmp/ddgi-out/") {
					t.Errorf("%s example writes %s %s outside /tmp/ddgi-out", name, w, f[i+1])
				}
				if n, err := strconv.Atoi(f[i+1]); (w == "--n" || w == "--samples") && (err != nil || n > 100) {
					t.Errorf("%s example %q: keep %s at most 100 (minutes, not hours)", name, ex, w)
				}
			}
		}
	}
}

// TestGenerateBatchGoesOnPastBadLines: lines that cannot run (broken
// JSON, an empty prompt, a scribble in a mask batch, no --out) are listed
// with their line numbers at the end, exit 1, and the good jobs around
// them are written.
func TestGenerateBatchGoesOnPastBadLines(t *testing.T) {
	dir, w := tinyWeights(t)
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, make([]uint8, 32*32), 32); err != nil {
		t.Fatal(err)
	}
	out := func(i int) string { return filepath.Join(dir, "out", strconv.Itoa(i)+".png") }
	lines := []string{
		`{"text": "A man.", "mask": "` + mpath + `", "out": "` + out(1) + `"}`,
		`{"text": "A man.", "mask": `,
		`{"text": "", "mask": "` + mpath + `", "out": "` + out(3) + `"}`,
		``,
		`{"text": "A man.", "scribble": "` + mpath + `", "out": "` + out(5) + `"}`,
		`{"text": "A man.", "mask": "` + mpath + `"}`,
		`{"text": "A woman.", "mask": "` + mpath + `", "seed": 2, "out": "` + out(7) + `"}`,
	}
	jobs := filepath.Join(dir, "jobs.jsonl")
	if err := os.WriteFile(jobs, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := captureRun(t, "generate", "--weights", w, "--batch", jobs)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, stderr)
	}
	for _, want := range []string{"line 2 of", "line 3 of", "line 5 of", "line 6 of", "4 of 6 jobs failed"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	for i, want := range map[int]bool{1: true, 3: false, 5: false, 7: true} {
		if _, err := os.Stat(out(i)); (err == nil) != want {
			t.Errorf("line %d: written %v, want %v", i, err == nil, want)
		}
	}
}

// TestExampleMasksInBothForms: each shipped example mask reads to the same
// 512² labels from its label PNG and its palette PNG, and the examples
// together hold every CelebAMask-HQ class but few.
func TestExampleMasksInBothForms(t *testing.T) {
	seen := map[uint8]bool{}
	for i := range 3 {
		labels, err := data.ReadMask(filepath.Join("..", "..", "examples", fmt.Sprintf("mask_%d.png", i)), 512)
		if err != nil {
			t.Fatal(err)
		}
		colors, err := data.ReadMask(filepath.Join("..", "..", "examples", fmt.Sprintf("mask_%d_color.png", i)), 512)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(labels, colors) {
			t.Errorf("mask_%d: the palette form reads to other labels", i)
		}
		for _, c := range labels {
			seen[c] = true
		}
	}
	t.Logf("the examples hold %d of the 19 classes", len(seen))
	if len(seen) < 10 {
		t.Errorf("the examples hold only %d classes", len(seen))
	}
}

// TestDiffuseAndEvalFindTheModelSet: commands whose file flags default
// into weights/ take the model set from $DDGI_WEIGHTS like generate, and
// name every place they looked when there is none.
func TestDiffuseAndEvalFindTheModelSet(t *testing.T) {
	dir, w := tinyWeights(t)
	out := filepath.Join(dir, "d.png")
	args := []string{"diffuse", "--text", "A man.", "--steps", "2", "--out", out}
	t.Setenv("DDGI_WEIGHTS", "")
	if code, _, stderr := captureRun(t, args...); code != 1 || !strings.Contains(stderr, "DDGI_WEIGHTS") {
		t.Errorf("no model set anywhere: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := captureRun(t, "eval", "--method", "gt", "--n", "2"); code != 1 || !strings.Contains(stderr, "DDGI_WEIGHTS") {
		t.Errorf("eval without a model set: exit %d, stderr %q", code, stderr)
	}
	t.Setenv("DDGI_WEIGHTS", w)
	if code := run(args); code != 0 {
		t.Fatalf("diffuse with DDGI_WEIGHTS: exit %d", code)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}
