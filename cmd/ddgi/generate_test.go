package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/data"
	"ddgi/face"
	"ddgi/gan/eg3d"
	"ddgi/internal/imageio"
	"ddgi/internal/testweights"
	"ddgi/inversion"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/synthface"
	"ddgi/torch"
)

func quiet(t *testing.T) {
	stderr := os.Stderr
	devnull, _ := os.Open(os.DevNull)
	os.Stderr = devnull
	t.Cleanup(func() { os.Stderr = stderr })
}

// tinyWeights silences progress output and writes random tiny weights
// (shipped file names) into a temporary folder: it returns the folder and
// its weights/ subfolder.
func tinyWeights(t *testing.T) (dir, weights string) {
	quiet(t)
	dir = t.TempDir()
	weights = filepath.Join(dir, "weights")
	if err := testweights.WriteTiny(weights, "../../weights/tokenizer.json"); err != nil {
		t.Fatal(err)
	}
	return dir, weights
}

// TestTrainInversionThenGenerate runs the user-facing commands on tiny
// untrained weights: a few steps of both training stages, export, then
// generate in 2D from a mask and in 3D with views from a scribble.
func TestTrainInversionThenGenerate(t *testing.T) {
	dir, w := tinyWeights(t)
	exported := filepath.Join(w, "inversion_stylegan2_mask.safetensors")
	os.Remove(exported)
	if code := run([]string{"train", "inversion", "--weights", w, "--out", filepath.Join(dir, "run"), "--steps1", "2", "--steps2", "2",
		"--batch", "2", "--n", "4", "--lpips", "0", "--id", "0", "--width", "16", "--checkpoint-every", "2", "--export", exported}); code != 0 {
		t.Fatalf("train inversion exited %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "loss.png")); err != nil {
		t.Fatal("no loss plot:", err)
	}
	// The frozen encoder in bf16 (its taps and the stage-2 I^d_0 samples).
	if code := run([]string{"train", "inversion", "--weights", w, "--out", filepath.Join(dir, "run_bf16"), "--steps1", "1", "--steps2", "1",
		"--batch", "2", "--n", "4", "--lpips", "0", "--id", "0", "--width", "16", "--precision", "bf16"}); code != 0 {
		t.Fatalf("train inversion --precision bf16 exited %d", code)
	}
	mask := make([]uint8, 50*50)
	for i := range mask {
		mask[i] = uint8((i / 50) % 19)
	}
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, mask, 50); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "face.png")
	if code := run([]string{"generate", "--weights", w, "--text", "The woman is smiling.", "--mask", mpath, "--out", out}); code != 0 {
		t.Fatalf("generate exited %d", code)
	}
	for _, f := range []string{out, filepath.Join(dir, "out", "face.latent.safetensors")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
	// The PNG records how it was made.
	if txt := pngText(t, out); txt["Description"] != "The woman is smiling." || txt["ddgi:seed"] == "" || len(txt["ddgi:weights-sha256"]) != 64 || len(txt["ddgi:condition-sha256"]) != 64 {
		t.Errorf("PNG text chunks %v", txt)
	}
	// --variation: another seed moves the fine styles; the PNG records β and the layers.
	v1, v2 := filepath.Join(dir, "out", "v1.png"), filepath.Join(dir, "out", "v2.png")
	for i, o := range []string{v1, v2} {
		if code := run([]string{"generate", "--weights", w, "--variation", "1", "--seed", fmt.Sprint(i + 5), "--text", "The woman is smiling.", "--mask", mpath, "--out", o}); code != 0 {
			t.Fatalf("generate --variation exited %d", code)
		}
	}
	if bytes.Equal(pngPixels(t, v1), pngPixels(t, v2)) {
		t.Error("--variation 1: seeds 5 and 6 drew the same face")
	}
	if txt := pngText(t, v1); txt["ddgi:variation"] != "1" || txt["ddgi:variation-from"] == "" {
		t.Errorf("--variation not recorded: %v", txt)
	}
	// --precision bf16: the U-Net's taps in bfloat16 give nearly the same
	// face (here max |Δ| 1, mean 0.02 of 255), and the PNG says so.
	bf := filepath.Join(dir, "out", "bf16.png")
	if code := run([]string{"generate", "--weights", w, "--precision", "bf16", "--text", "The woman is smiling.", "--mask", mpath, "--out", bf}); code != 0 {
		t.Fatalf("generate --precision bf16 exited %d", code)
	}
	if txt := pngText(t, bf); txt["ddgi:precision"] != "bf16" {
		t.Errorf("--precision bf16 not recorded: %v", txt)
	}
	if _, ok := pngText(t, out)["ddgi:precision"]; ok {
		t.Error("an fp32 PNG records a precision")
	}
	pa, pb := pngPixels(t, out), pngPixels(t, bf)
	if len(pa) != len(pb) || len(pa) == 0 {
		t.Fatalf("bf16 image has %d bytes, fp32 %d", len(pb), len(pa))
	}
	var worst, sum float64
	for i := range pa {
		d := math.Abs(float64(pa[i]) - float64(pb[i]))
		worst, sum = max(worst, d), sum+d
	}
	t.Logf("bf16 against fp32: max |Δ| %.0f, mean |Δ| %.3f of 255", worst, sum/float64(len(pa)))
	if worst > 16 || sum/float64(len(pa)) > 0.5 {
		t.Errorf("bf16 image differs from fp32 by max %.0f, mean %.3f", worst, sum/float64(len(pa)))
	}
	spath := filepath.Join(dir, "scribble.png")
	scr := make([]uint8, 40*40)
	for i := 0; i < 40; i++ {
		scr[i*40+20] = 255
	}
	if err := data.WriteMaskPNG(spath, scr, 40); err != nil {
		t.Fatal(err)
	}
	out3 := filepath.Join(dir, "out", "turn.png")
	if code := run([]string{"generate", "--weights", w, "--gan", "eg3d", "--views", "3", "--text", "A bald man.", "--scribble", spath, "--out", out3}); code != 0 {
		t.Fatalf("generate --gan eg3d exited %d", code)
	}
	for _, f := range []string{"turn_views.png", "turn_turn.gif"} {
		if _, err := os.Stat(filepath.Join(dir, "out", f)); err != nil {
			t.Fatal(err)
		}
	}
	// --camera with the 25 numbers of the yaw-30° orbit camera renders what --yaw 30 does.
	var nums []string
	for _, v := range eg3d.Camera(synthface.DefaultOrbit, 30, 0).Float32s() {
		nums = append(nums, fmt.Sprint(v))
	}
	byYaw, byCam := filepath.Join(dir, "out", "yaw.png"), filepath.Join(dir, "out", "cam.png")
	if code := run([]string{"generate", "--weights", w, "--gan", "eg3d", "--yaw", "30", "--text", "A bald man.", "--scribble", spath, "--out", byYaw}); code != 0 {
		t.Fatalf("generate --yaw exited %d", code)
	}
	if code := run([]string{"generate", "--weights", w, "--gan", "eg3d", "--camera", strings.Join(nums, ","), "--text", "A bald man.", "--scribble", spath, "--out", byCam}); code != 0 {
		t.Fatalf("generate --camera exited %d", code)
	}
	// Same pixels; the text chunks differ (one records the camera, the other yaw and pitch).
	a, b := pngPixels(t, byYaw), pngPixels(t, byCam)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("--camera with the yaw-30° camera differs from --yaw 30")
	}
	if pngText(t, byCam)["ddgi:camera"] == "" || pngText(t, byYaw)["ddgi:yaw"] != "30" {
		t.Error("the 3D settings are not recorded in the PNGs")
	}
	// Bad inputs: clear errors and exit status 1, nothing written.
	bad := filepath.Join(dir, "bad.png")
	os.WriteFile(bad, []byte("not a png"), 0o644)
	for _, args := range [][]string{
		{"generate", "--weights", w, "--text", "hi", "--mask", bad, "--out", filepath.Join(dir, "x.png")},
		{"generate", "--weights", w, "--text", "", "--mask", mpath, "--out", filepath.Join(dir, "x.png")},
		{"generate", "--weights", w, "--text", "hi", "--mask", mpath, "--scribble", spath, "--out", filepath.Join(dir, "x.png")},
		{"generate", "--weights", w, "--text", "hi", "--mask", mpath, "--views", "3", "--out", filepath.Join(dir, "x.png")},
		{"generate", "--weights", dir, "--text", "hi", "--mask", mpath, "--out", filepath.Join(dir, "x.png")},
		{"generate", "--weights", w, "--gan", "eg3d", "--camera", "1,2,3", "--text", "hi", "--mask", mpath, "--out", filepath.Join(dir, "x.png")},
		{"generate", "--weights", w, "--camera", strings.Join(nums, ","), "--text", "hi", "--mask", mpath, "--out", filepath.Join(dir, "x.png")},
		{"generate", "--weights", w, "--gan", "eg3d", "--camera", strings.Join(nums, ","), "--yaw", "5", "--text", "hi", "--mask", mpath, "--out", filepath.Join(dir, "x.png")},
		{"generate", "--weights", w, "--variation", "-1", "--text", "hi", "--mask", mpath, "--out", filepath.Join(dir, "x.png")},
		{"generate", "--weights", w, "--variation", "1", "--variation-from", "99", "--text", "hi", "--mask", mpath, "--out", filepath.Join(dir, "x.png")},
		{"generate", "--weights", w, "--precision", "fp64", "--text", "hi", "--mask", mpath, "--out", filepath.Join(dir, "x.png")},
	} {
		if code := run(args); code != 1 {
			t.Errorf("%v exited %d, want 1", args, code)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.png")); err == nil {
		t.Error("a failed run wrote its output")
	}
}

func TestDemoOnTinyWeights(t *testing.T) {
	dir, w := tinyWeights(t)
	if code := run([]string{"demo", "--weights", w, "--out", filepath.Join(dir, "demo"), "--n", "1"}); code != 0 {
		t.Fatalf("demo exited %d", code)
	}
	for _, f := range []string{"demo_stylegan2_mask.png", "demo_stylegan2_scribble.png", "demo_eg3d_mask.png", "demo_eg3d_scribble.png"} {
		if _, err := os.Stat(filepath.Join(dir, "demo", f)); err != nil {
			t.Error(err)
		}
	}
	if txt := pngText(t, filepath.Join(dir, "demo", "demo_eg3d_scribble.png")); txt["ddgi:condition"] != "scribble" || len(txt["ddgi:weights-sha256"]) != 64 || !strings.Contains(txt["Description"], "blond") {
		t.Errorf("demo sheet text chunks %v", txt)
	}
	if code := run([]string{"demo", "--weights", dir, "--out", filepath.Join(dir, "demo2")}); code != 1 {
		t.Errorf("demo without weights exited %d, want 1", code)
	}
}

func TestEvalRunsDdgiAndBaselineOnTinyWeights(t *testing.T) {
	dir, w := tinyWeights(t)
	out := filepath.Join(dir, "eval")
	if code := run([]string{"eval", "--method", "ddgi-2d,ddgi-3d,controlnet", "--n", "4", "--batch", "2", "--size", "32", "--weights", w, "--out", out, "--quiet"}); code != 0 {
		t.Fatalf("eval exited %d", code)
	}
	for _, f := range []string{"table.md", "results.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if code := run([]string{"eval", "--method", "ddgi-2d:m-only", "--n", "2", "--size", "32", "--weights", w, "--quiet"}); code != 1 {
		t.Errorf("eval of an ablation without weights exited %d, want 1", code)
	}
	// The view report needs the identity and perceptual nets.
	views := []string{"eval", "--method", "ddgi-3d", "--n", "0", "--views", "3", "--size", "32", "--weights", w, "--out", out, "--quiet"}
	if code := run(views); code != 1 {
		t.Errorf("--views without aux nets exited %d, want 1", code)
	}
	for _, f := range []string{"aux_perceptual.safetensors", "aux_identity.safetensors"} {
		copyFile(t, filepath.Join("..", "..", "weights", f), filepath.Join(w, f))
	}
	if code := run(append(views, "--view-yaws", "-20,20")); code != 0 {
		t.Fatalf("eval --views exited %d", code)
	}
	for _, f := range []string{"views.md", "views.json", "grid_views_mask.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	for _, yaws := range []string{"30", "-30,x", "0,100"} {
		if code := run(append(views, "--view-yaws", yaws)); code != 1 {
			t.Errorf("--view-yaws %s exited %d, want 1", yaws, code)
		}
	}
}

// TestEvalTextOnTinyWeights runs eval-text end to end on a random tiny
// U-Net: the three held-out losses are positive and finite, the JSON
// report is written, and a timestep outside the schedule is refused.
func TestEvalTextOnTinyWeights(t *testing.T) {
	dir, w := tinyWeights(t)
	js := filepath.Join(dir, "text.json")
	args := []string{"eval-text", "--unet", filepath.Join(w, "diffusion_small64.safetensors"), "--text-weights", filepath.Join(w, "text_small64.safetensors"),
		"--tokenizer", filepath.Join(w, "tokenizer.json"), "--attributes", "../../weights/aux_attributes.safetensors",
		"--n", "4", "--t", "10,900", "--samples", "2", "--steps", "2", "--quiet"}
	if code := run(append(args, "--json", js)); code != 0 {
		t.Fatalf("eval-text exited %d", code)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep textCondReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"own": rep.LossOwn, "other": rep.LossOther, "empty": rep.LossEmpty} {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("loss %s = %v", name, v)
		}
	}
	if rep.Samples != 2 || rep.AttrAcc < 0 || rep.AttrAcc > 1 {
		t.Errorf("samples %d, attribute accuracy %v", rep.Samples, rep.AttrAcc)
	}
	if code := run(append(args, "--t", "5000")); code != 1 {
		t.Errorf("timestep 5000 exited %d, want 1", code)
	}
}

// TestTrainInversionOnArtworks: --art-prob trains on artwork pairs and the
// share and styles land in the exported weights' training config.
func TestTrainInversionOnArtworks(t *testing.T) {
	dir, w := tinyWeights(t)
	exported := filepath.Join(dir, "art.safetensors")
	args := []string{"train", "inversion", "--weights", w, "--out", filepath.Join(dir, "run"), "--steps1", "1", "--steps2", "1",
		"--batch", "2", "--n", "4", "--lpips", "0", "--id", "0", "--width", "16", "--ablation", "d0-only", "--d0-pool", "2"}
	if code := run(append(args, "--art-prob", "1", "--arts", "statue", "--export", exported)); code != 0 {
		t.Fatalf("train inversion exited %d", code)
	}
	_, tc, err := inversion.Load(exported, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if tc.ArtProb != 1 || strings.Join(tc.Arts, ",") != "statue" {
		t.Errorf("train config records art %v %v", tc.ArtProb, tc.Arts)
	}
	if code := run(append(args, "--out", filepath.Join(dir, "run2"), "--art-prob", "1", "--arts", "oil")); code != 1 {
		t.Errorf("unknown style exited %d, want 1", code)
	}
}

// TestSwapPromptsNeedsAStageAgainstTheTruth: --swap-prompts where every
// stage that runs trains against I^d_0 is an error, not a silent no-op
// (inversion.TestTrainsAgainstTruth has the other step/ablation cases).
func TestSwapPromptsNeedsAStageAgainstTheTruth(t *testing.T) {
	dir, w := tinyWeights(t)
	critic := filepath.Join(dir, "critic.safetensors")
	if code := run([]string{"train", "aux", "--net", "attributes", "--preset", "tiny", "--steps", "1", "--batch", "4", "--samples", "8", "--eval", "8",
		"--run", filepath.Join(dir, "critic"), "--out", critic}); code != 0 {
		t.Fatalf("train aux exited %d", code)
	}
	args := []string{"train", "inversion", "--weights", w, "--batch", "2", "--n", "4", "--lpips", "0", "--id", "0", "--width", "16",
		"--text-path", "--attr", "1", "--attr-net", critic, "--swap-prompts", "0.5"}
	if code := run(append(args, "--steps1", "1", "--steps2", "1", "--ablation", "d0-only", "--out", filepath.Join(dir, "d0"))); code != 1 {
		t.Errorf("--ablation d0-only: exited %d, want 1", code)
	}
	if code := run(append(args, "--steps1", "1", "--steps2", "0", "--out", filepath.Join(dir, "ok"))); code != 0 {
		t.Errorf("stage 1 against the truth: exited %d", code)
	}
}

// TestGenerateArtNeedsArtWeights: --art looks for the style-transfer files
// and, where they are missing, says which with exit 1.
func TestGenerateArtNeedsArtWeights(t *testing.T) {
	dir, w := tinyWeights(t)
	f := face.Options{Weights: w, GAN: "eg3d", Cond: "mask", Art: true}.Files()
	if filepath.Base(f["unet"]) != "diffusion_small64_art.safetensors" || filepath.Base(f["text"]) != "text_small64_art.safetensors" ||
		filepath.Base(f["inversion"]) != "inversion_eg3d_mask_art.safetensors" {
		t.Fatalf("art files: %v", f)
	}
	mask := make([]uint8, 32*32)
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, mask, 32); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"generate", "--art", "--weights", w, "--text", "A marble statue. The man is smiling.", "--mask", mpath, "--out", filepath.Join(dir, "o.png")}); code != 1 {
		t.Errorf("generate --art without art weights exited %d, want 1", code)
	}
}

// TestEvalBaselineCache: with --cache the baseline's samples land in the
// folder (one per pair and condition) and a rerun reads them back: the same
// table, no new files.
func TestEvalBaselineCache(t *testing.T) {
	dir, w := tinyWeights(t)
	cache := filepath.Join(dir, "cache")
	evalOnce := func(out string) []byte {
		t.Helper()
		if code := run([]string{"eval", "--method", "controlnet", "--n", "3", "--batch", "2", "--size", "32", "--weights", w, "--cache", cache, "--out", out, "--quiet"}); code != 0 {
			t.Fatalf("eval exited %d", code)
		}
		b, err := os.ReadFile(filepath.Join(out, "results.json"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	count := func() int {
		n := 0
		filepath.WalkDir(cache, func(_ string, d os.DirEntry, _ error) error {
			if d != nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	first := evalOnce(filepath.Join(dir, "a"))
	if got := count(); got != 6 {
		t.Fatalf("%d cached samples, want 3 pairs × 2 conditions", got)
	}
	second := evalOnce(filepath.Join(dir, "b"))
	if got := count(); got != 6 {
		t.Errorf("rerun left %d cached samples, want the same 6", got)
	}
	scores := func(b []byte) string {
		var r struct{ Rows []map[string]any }
		if err := json.Unmarshal(b, &r); err != nil || len(r.Rows) != 2 {
			t.Fatalf("results.json: %v, %d rows", err, len(r.Rows))
		}
		for _, row := range r.Rows {
			delete(row, "generate_seconds")
		}
		return fmt.Sprint(r.Rows)
	}
	if a, b := scores(first), scores(second); a != b {
		t.Errorf("rerun from the cache changed the scores:\n%s\n%s", a, b)
	}
}

// TestQuantizeThenGenerate: `ddgi quantize` shrinks an inversion file,
// generate runs on it, and bad inputs (a truncated file, quantizing twice,
// missing flags, an existing --out without --force) exit 1.
func TestQuantizeThenGenerate(t *testing.T) {
	dir, w := tinyWeights(t)
	inv := filepath.Join(w, "inversion_stylegan2_mask.safetensors")
	before, _ := os.Stat(inv)
	if code := run([]string{"quantize", "--in", inv, "--out", inv}); code != 1 {
		t.Fatalf("quantize over its own input without --force exited %d, want 1", code)
	}
	if st, _ := os.Stat(inv); st.Size() != before.Size() {
		t.Fatal("a refused quantize changed its --out")
	}
	if code := run([]string{"quantize", "--in", inv, "--out", inv, "--force"}); code != 0 {
		t.Fatalf("quantize exited %d", code)
	}
	after, _ := os.Stat(inv)
	if after.Size() >= before.Size() {
		t.Fatalf("quantized file %d bytes, was %d", after.Size(), before.Size())
	}
	mask := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mask, make([]uint8, 32*32), 32); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"generate", "--weights", w, "--text", "A smiling woman.", "--mask", mask, "--out", filepath.Join(dir, "out.png")}); code != 0 {
		t.Fatalf("generate on the int8 inversion exited %d", code)
	}
	data, _ := os.ReadFile(inv)
	cut := filepath.Join(dir, "cut.safetensors")
	os.WriteFile(cut, data[:len(data)/2], 0o644)
	for _, args := range [][]string{{"--in", inv, "--out", cut, "--force"}, {"--in", cut, "--out", inv, "--force"}, {"--in", inv}} {
		if code := run(append([]string{"quantize"}, args...)); code != 1 {
			t.Errorf("quantize %v exited %d, want 1", args, code)
		}
	}
}

// TestRunShapeKeepsTheStoredPrior: a new run takes --shape-prior with the
// current head core; a run folder's checkpoint keeps its whole stored prior
// (here an older core: other radii, the 0 shell of the first runs), and an
// explicit flag that disagrees with its strength is refused.
func TestRunShapeKeepsTheStoredPrior(t *testing.T) {
	dir := t.TempDir()
	fresh, err := runShape(dir, 30, true)
	if err != nil || fresh.ShapePrior != 30 || fresh.ShapeRadii != eg3d.HeadEllipsoid.Radii || fresh.ShapeShell != eg3d.HeadEllipsoid.Shell {
		t.Fatalf("new run: %+v, %v", fresh, err)
	}
	c := eg3d.Presets["tiny"]
	c.ShapePrior, c.ShapeRadii, c.ShapeCentre = 10, [3]float64{0.2, 0.2, 0.2}, [3]float64{0, 0.01, 0}
	g, err := eg3d.NewGenerator(nn.NewStore(torch.CPU, 1).Root(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Save(filepath.Join(dir, "G.safetensors"), false); err != nil {
		t.Fatal(err)
	}
	for _, explicit := range []bool{false, true} {
		got, err := runShape(dir, 10, explicit)
		if err != nil || got.ShapePrior != 10 || got.ShapeRadii != c.ShapeRadii || got.ShapeCentre != c.ShapeCentre || got.ShapeShell != 0 {
			t.Fatalf("resume (explicit %v): %+v, %v", explicit, got, err)
		}
	}
	if _, err := runShape(dir, 30, true); err == nil {
		t.Fatal("a --shape-prior that disagrees with the checkpoint was accepted")
	}
}

// TestGenerateBatchGoesOnPastBadJobs: a --batch file of 11 jobs (more than
// one chunk) where two masks cannot be read writes the nine good faces,
// names the bad jobs and exits 1.
func TestGenerateBatchGoesOnPastBadJobs(t *testing.T) {
	dir, w := tinyWeights(t)
	mask := make([]uint8, 32*32)
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, mask, 32); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 11 {
		m := mpath
		if i == 3 {
			m = filepath.Join(dir, "missing.png")
		}
		if i == 9 {
			m = filepath.Join(dir, "corrupt.png")
		}
		lines = append(lines, fmt.Sprintf(`{"text": "A smiling woman.", "mask": %q, "seed": %d, "out": %q}`, m, i, filepath.Join(dir, "out", fmt.Sprintf("%d.png", i))))
	}
	os.WriteFile(filepath.Join(dir, "corrupt.png"), []byte("not a png"), 0o644)
	jobs := filepath.Join(dir, "jobs.jsonl")
	if err := os.WriteFile(jobs, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"generate", "--weights", w, "--batch", jobs}); code != 1 {
		t.Fatalf("a batch with bad jobs exited %d, want 1", code)
	}
	for i := range 11 {
		_, err := os.Stat(filepath.Join(dir, "out", fmt.Sprintf("%d.png", i)))
		if bad := i == 3 || i == 9; bad != (err != nil) {
			t.Errorf("job %d: written = %v", i, err == nil)
		}
	}
}

// pngText reads a PNG's tEXt chunks.
func pngText(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return imageio.PNGText(b)
}

// pngPixels decodes a PNG to its RGBA bytes.
func pngPixels(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	rgba := image.NewRGBA(img.Bounds())
	draw.Draw(rgba, rgba.Bounds(), img, image.Point{}, draw.Src)
	return rgba.Pix
}

// TestWeightsAreFound: without --weights, generate takes $DDGI_WEIGHTS;
// with nothing to find it names every place it looked.
func TestWeightsAreFound(t *testing.T) {
	dir, w := tinyWeights(t)
	mask := make([]uint8, 32*32)
	mpath := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mpath, mask, 32); err != nil {
		t.Fatal(err)
	}
	args := []string{"generate", "--text", "A man.", "--mask", mpath, "--out", filepath.Join(dir, "f.png")}
	t.Setenv("DDGI_WEIGHTS", "")
	if code := run(args); code != 1 { // the test runs in cmd/ddgi, which has no weights/
		t.Fatalf("no model set anywhere: exit %d, want 1", code)
	}
	t.Setenv("DDGI_WEIGHTS", w)
	if code := run(args); code != 0 {
		t.Fatalf("DDGI_WEIGHTS: exit %d", code)
	}
	if code := run(append(args, "--weights", filepath.Join(dir, "nope"))); code != 1 {
		t.Errorf("a missing --weights folder: exit %d, want 1", code)
	}
}

// TestFilesHashReadsTokenizerFolder hashes a model set whose tokenizer is
// a CLIP folder (vocab.json, merges.txt): its files count in name order,
// as if concatenated, and a missing file is skipped.
func TestFilesHashReadsTokenizerFolder(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "tokenizer")
	if err := os.MkdirAll(filepath.Join(tok, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"tokenizer/vocab.json": "V", "tokenizer/merges.txt": "M", "unet.safetensors": "U", "flat": "MVU"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := filesHash(map[string]string{"tokenizer": tok, "unet": filepath.Join(dir, "unet.safetensors"), "vae": filepath.Join(dir, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	want, err := filesHash(map[string]string{"x": filepath.Join(dir, "flat")})
	if err != nil || got != want {
		t.Fatalf("hash %s (%v), want that of the contents in order %s", got, err, want)
	}
}

// TestBlendThenGenerate: `ddgi blend` of an inversion with its int8 copy
// gives a file generate runs on; bad inputs (a truncated file, another
// network, one trained on another condition, t outside [0, 1], missing flags, an existing --out without
// --force) exit 1 and leave --out alone.
func TestBlendThenGenerate(t *testing.T) {
	dir, w := tinyWeights(t)
	inv := filepath.Join(w, "inversion_stylegan2_mask.safetensors")
	q := filepath.Join(dir, "q.safetensors")
	if code := run([]string{"quantize", "--in", inv, "--out", q}); code != 0 {
		t.Fatalf("quantize exited %d", code)
	}
	out := filepath.Join(dir, "blend", "b.safetensors")
	if code := run([]string{"blend", "--from", q, "--to", inv, "--t", "0.25", "--out", out, "--quantize"}); code != 0 {
		t.Fatalf("blend exited %d", code)
	}
	os.Rename(out, inv)
	mask := filepath.Join(dir, "mask.png")
	if err := data.WriteMaskPNG(mask, make([]uint8, 32*32), 32); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"generate", "--weights", w, "--text", "A smiling woman.", "--mask", mask, "--out", filepath.Join(dir, "out.png")}); code != 0 {
		t.Fatalf("generate on the blended inversion exited %d", code)
	}
	raw, _ := os.ReadFile(inv)
	cut := filepath.Join(dir, "cut.safetensors")
	os.WriteFile(cut, raw[:len(raw)/2], 0o644)
	exists := filepath.Join(dir, "exists.safetensors")
	os.WriteFile(exists, []byte("keep"), 0o644)
	other := filepath.Join(w, "stylegan2_small64.safetensors")
	// The same network trained on another condition.
	withCond := func(cond string) string {
		f, err := safetensors.Load(inv)
		if err != nil {
			t.Fatal(err)
		}
		f.Metadata["config"] = `{"model":{},"train":{"Cond":"` + cond + `"}}`
		p := filepath.Join(dir, cond+".safetensors")
		if err := safetensors.Save(p, f); err != nil {
			t.Fatal(err)
		}
		return p
	}
	maskInv, scribbleInv := withCond("mask"), withCond("scribble")
	if code := run([]string{"blend", "--from", maskInv, "--to", maskInv, "--out", filepath.Join(dir, "same.safetensors")}); code != 0 {
		t.Fatalf("blend of one condition exited %d", code)
	}
	for _, args := range [][]string{
		{"--from", cut, "--to", inv, "--out", filepath.Join(dir, "x1")},
		{"--from", other, "--to", inv, "--out", filepath.Join(dir, "x2")},
		{"--from", scribbleInv, "--to", maskInv, "--out", filepath.Join(dir, "x4")},
		{"--from", q, "--to", inv, "--t", "1.5", "--out", filepath.Join(dir, "x3")},
		{"--from", q, "--to", inv},
		{"--from", q, "--to", inv, "--out", exists},
	} {
		if code := run(append([]string{"blend"}, args...)); code != 1 {
			t.Errorf("blend %v exited %d, want 1", args, code)
		}
	}
	if b, _ := os.ReadFile(exists); string(b) != "keep" {
		t.Error("a refused blend changed its --out")
	}
	for _, x := range []string{"x1", "x2", "x3", "x4"} {
		if _, err := os.Stat(filepath.Join(dir, x)); err == nil {
			t.Errorf("a failed blend left %s", x)
		}
	}
}
