package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"ddgi/data"
	"ddgi/face"
	"ddgi/gan/eg3d"
	"ddgi/internal/imageio"
	"ddgi/internal/progress"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/torch"
)

func init() {
	register(command{name: "generate", summary: "generate a face from a prompt and a mask or scribble (2D, or 3D views with --gan eg3d)", run: runGenerate})
}

// job is one line of a --batch JSONL file (or the flags of a single run).
type job struct {
	Text     string `json:"text"`
	Mask     string `json:"mask"`
	Scribble string `json:"scribble"`
	Seed     int64  `json:"seed"`
	Out      string `json:"out"`

	line int   // in the --batch file
	bad  error // why the job cannot run (reported at the end; the others run)
}

func runGenerate(args []string) error {
	fs := newFlags("generate", `--text "…" (--mask m.png | --scribble s.png) --out face.png [--gan eg3d --views 8] | --batch jobs.jsonl`)
	prompt := fs.String("text", "", "caption, e.g. \"The woman has wavy blond hair and is smiling.\"")
	maskPath := fs.String("mask", "", "semantic mask PNG: one channel of labels 0–18 (CelebAMask-HQ order) or the palette; any size")
	scribblePath := fs.String("scribble", "", "scribble PNG: white strokes on black (or the inverse); any size")
	out := fs.String("out", "", "output PNG; the code goes beside it as <out>.latent.safetensors")
	gan := fs.String("gan", "stylegan2", "stylegan2 (2D) or eg3d (3D-aware); with --generator, read from that file")
	generator := fs.String("generator", "", "use this generator instead of the model set's (e.g. a `ddgi convert`ed public one); needs --inversion trained on it")
	inversionFile := fs.String("inversion", "", "M and T trained for --generator (`ddgi train inversion --generator … --export`)")
	views := fs.Int("views", 0, "eg3d: also render N views across the yaw range into <out>_views.png and <out>_turn.gif")
	yaw := fs.Float64("yaw", 0, "eg3d: camera yaw in degrees (±50 trained)")
	pitch := fs.Float64("pitch", 0, "eg3d: camera pitch in degrees (±20 trained)")
	camera := fs.String("camera", "", "eg3d: render from this EG3D camera instead of --yaw/--pitch: 25 numbers (4×4 cam-to-world, 3×3 intrinsics) separated by commas, a JSON array, or a file holding either")
	seed := fs.Int64("seed", 1, "noise seed of the encoder's z_T")
	batch := fs.String("batch", "", "JSONL file of jobs {\"text\",\"mask\"|\"scribble\",\"seed\",\"out\"}")
	weights := fs.String("weights", "weights", "model-set folder (default: $DDGI_WEIGHTS, else weights/ beside the binary, else ./weights)")
	step := fs.Int("step", -1, "denoising step t of the tapped U-Net pass (-1: T−1, one pass on noise; smaller t first runs the guided DDIM sampler down to t)")
	strength := fs.Float64("prompt-strength", 0, "how far the prompt moves the face through the inversion's text path: 1 as trained, above 1 follows the prompt more (guidance on the text offset, w = M(h) + P(e) + (s−1)(P(e) − P(∅)); docs/inversion.md); 0: "+fmt.Sprint(face.DefaultPromptStrength)+" where the inversion has a text path, else 1")
	spread := fs.Float64("spread", 0, spreadHelp)
	variation := fs.Float64("variation", 0, variationHelp)
	variationFrom := fs.Int("variation-from", 0, variationFromHelp)
	precision := precisionFlag(fs, "")
	devName := fs.String("device", "cpu", "cpu, cuda or cuda:N")
	art := fs.Bool("art", false, "style transfer (paper Sec. 4.4): the artwork-trained U-Net and inversion (weights/diffusion_small64_art, inversion_<gan>_<cond>_art); name the style in --text: \"A marble statue. …\", bronze statue, cartoon drawing, pencil sketch")
	applyLimits := imageLimitFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if *weights, err = modelSet(fs, *weights); err != nil {
		return err
	}
	if err := applyLimits(); err != nil {
		return err
	}
	dev, err := torch.ParseDevice(*devName)
	if err != nil {
		return err
	}
	var jobs []job
	if *batch != "" {
		if jobs, err = readJobs(*batch); err != nil {
			return err
		}
	} else {
		jobs = []job{{Text: *prompt, Mask: *maskPath, Scribble: *scribblePath, Seed: *seed, Out: *out}}
	}
	// A job that cannot run is reported at the end and the others run;
	// the first good job's condition kind is the batch's.
	var cond kinds.Cond
	good := 0
	for i := range jobs {
		if jobs[i].bad == nil {
			jobs[i].bad = checkJob(jobs[i], &cond)
		}
		if jobs[i].bad == nil {
			good++
		}
	}
	if len(jobs) == 1 && jobs[0].bad != nil {
		return jobs[0].bad
	}
	if good == 0 {
		for _, j := range jobs {
			fmt.Fprintf(os.Stderr, "ddgi generate: line %d of --batch: %v\n", j.line, j.bad)
		}
		return fmt.Errorf("none of the %d jobs of %s can run", len(jobs), *batch)
	}
	arch := kinds.GANArch(*gan) // CheckRender rejects an unknown one
	if err := face.CheckRender(arch, *views, 64, *yaw, *pitch); err != nil {
		return fmt.Errorf("--gan/--views/--yaw/--pitch: %w", err)
	}
	if w := face.RenderWarning(*yaw, *pitch); w != "" {
		fmt.Fprintln(os.Stderr, "ddgi generate: warning:", w)
	}
	var cam *[eg3d.CameraDim]float32
	if *camera != "" {
		switch {
		case arch != kinds.EG3D:
			return errors.New("--camera needs --gan eg3d (StyleGAN2 is 2D)")
		case *yaw != 0 || *pitch != 0:
			return errors.New("give --camera or --yaw/--pitch, not both")
		}
		c, err := face.ParseCamera(*camera)
		if err != nil {
			return fmt.Errorf("--camera: %w", err)
		}
		cam = &c
	}
	if (*generator == "") != (*inversionFile == "") {
		return fmt.Errorf("--generator and --inversion go together: M and T are trained for one generator")
	}
	if *generator != "" {
		if arch, err = face.GeneratorArch(*generator); err != nil {
			return err
		}
	}
	prec, err := precision()
	if err != nil {
		return err
	}
	p, err := face.Load(face.Options{Weights: *weights, GAN: arch, Cond: cond, Device: dev, Step: *step, Art: *art, Generator: *generator, Inversion: *inversionFile, PromptStrength: *strength, Spread: *spread,
		Variation: *variation, VariationFrom: *variationFrom, Precision: prec})
	if err != nil {
		return err
	}
	size := p.Size()
	hashes, err := setHashes(p.Opts.Files())
	if err != nil {
		return err
	}
	// A batch runs in chunks (memory stays that of one chunk, however long
	// the file) and goes on past a job whose inputs fail (the file itself
	// was checked above); failures are listed at the end.
	var failed []error
	fail := func(i int, err error) {
		if len(jobs) > 1 {
			err = fmt.Errorf("job %d (line %d of --batch): %w", i+1, jobs[i].line, err)
		}
		failed = append(failed, err)
	}
	// A batch shows a progress line on a terminal and names each file only
	// off it (in a log), where the line is silent.
	bar := progress.New("generate", 0, int64(len(jobs)), "job")
	verbose := len(jobs) == 1 || quietFlag || !progress.IsTerminal(os.Stderr)
	if len(jobs) == 1 {
		bar.Out = io.Discard
	}
	for start := 0; start < len(jobs); start += batchChunk {
		bar.Set(int64(start), nil)
		var reqs []face.Request
		var idx []int
		for i := start; i < min(start+batchChunk, len(jobs)); i++ {
			j := jobs[i]
			if j.bad != nil {
				fail(i, j.bad)
				continue
			}
			r := face.Request{Text: j.Text, Seed: j.Seed}
			if cond == kinds.Mask {
				r.Mask, err = data.ReadMask(j.Mask, size)
			} else {
				r.Scribble, err = data.ReadScribble(j.Scribble, size)
			}
			if err != nil {
				fail(i, err)
				continue
			}
			reqs, idx = append(reqs, r), append(idx, i)
		}
		if len(reqs) == 0 {
			continue
		}
		w, err := p.Codes(reqs)
		if err != nil {
			for _, i := range idx {
				fail(i, err)
			}
			continue
		}
		for k, i := range idx {
			if err := writeJob(p, w, k, jobs[i], arch, *views, *yaw, *pitch, cam, provenance(p, jobs[i], hashes, *step, *yaw, *pitch, *camera), verbose); err != nil {
				fail(i, err)
			}
		}
		w.Free()
	}
	bar.Set(int64(len(jobs)), nil)
	bar.Finish()
	if !verbose {
		fmt.Fprintf(os.Stderr, "wrote the images and latents of %d jobs\n", len(jobs)-len(failed))
	}
	switch {
	case len(failed) == 1 && len(jobs) == 1:
		return failed[0]
	case len(failed) > 0:
		for _, err := range failed {
			fmt.Fprintln(os.Stderr, "ddgi generate:", err)
		}
		return fmt.Errorf("%d of %d jobs failed (the others were written)", len(failed), len(jobs))
	}
	return nil
}

// batchChunk is how many --batch jobs share one encoder pass.
const batchChunk = 8

// checkJob is why job j cannot run ("" prompt, no or two conditions, a
// condition kind other than the batch's *cond, a bad --out), or nil; the
// first good job sets *cond.
func checkJob(j job, cond *kinds.Cond) error {
	if err := face.CheckPrompt(j.Text); err != nil {
		return fmt.Errorf("--text: %w", err)
	}
	c, err := condOf(j)
	if err != nil {
		return err
	}
	switch {
	case *cond != "" && c != *cond:
		return fmt.Errorf("a batch uses one condition kind: this job has a %s, the batch's first job a %s", c, *cond)
	case j.Out == "":
		return errors.New("--out is required")
	case !strings.HasSuffix(strings.ToLower(j.Out), ".png"):
		return fmt.Errorf("--out %q must end in .png", j.Out)
	}
	*cond = c
	return nil
}

func condOf(j job) (kinds.Cond, error) {
	c, err := face.CondKind(j.Mask != "", j.Scribble != "")
	if err != nil {
		return "", fmt.Errorf("--mask/--scribble: %w", err)
	}
	return c, nil
}

func readJobs(path string) ([]job, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var jobs []job
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var j job
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			j = job{bad: fmt.Errorf("not a job: %v", err)}
		}
		j.line = n
		jobs = append(jobs, j)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("%s: no jobs", path)
	}
	return jobs, nil
}

// writeJob renders job i's code and writes the image, the code and, for
// --views, a strip and an animated turn; verbose names what it wrote.
func writeJob(p *face.Pipeline, w *torch.Tensor, i int, j job, gan kinds.GANArch, views int, yaw, pitch float64, cam *[eg3d.CameraDim]float32, prov map[string]string, verbose bool) error {
	if err := os.MkdirAll(filepath.Dir(j.Out), 0o755); err != nil {
		return err
	}
	var pic image.Image
	var err error
	if cam != nil {
		pic, err = p.ViewCamera(w, i, *cam)
	} else {
		pic, err = p.View(w, i, yaw, pitch)
	}
	if err != nil {
		return err
	}
	// The latent goes first: an image on disk always has its latent.
	var wi *torch.Tensor
	if err := torch.Try(func() { wi = w.Narrow(0, int64(i), 1); torch.Persist(wi) }); err != nil {
		return err
	}
	defer wi.Free()
	base := strings.TrimSuffix(j.Out, filepath.Ext(j.Out))
	latent := base + ".latent.safetensors"
	st, err := nn.ToSafetensors(wi, false)
	if err != nil {
		return err
	}
	meta := map[string]string{"format": "ddgi", "gan": string(gan), "prompt": j.Text, "seed": fmt.Sprint(j.Seed),
		"note": "w+ code [1,L,dim]; render it with the same GAN's synthesis network"}
	for k, v := range prov {
		if strings.HasPrefix(k, "ddgi:") {
			meta[k] = v
		}
	}
	if err := safetensors.Save(latent, &safetensors.File{Metadata: meta, Tensors: map[string]safetensors.Tensor{"w_plus": st}}); err != nil {
		return err
	}
	if err := imageio.SavePNGText(j.Out, pic, prov); err != nil {
		return err
	}
	if verbose {
		fmt.Fprintf(os.Stderr, "wrote %s and %s\n", j.Out, latent)
	}
	if views < 1 {
		return nil
	}
	return writeTurn(p, w, i, views, pitch, base, verbose)
}

// writeTurn renders code i of w from views cameras across the yaw range
// into <base>_views.png (a strip) and <base>_turn.gif (there and back).
func writeTurn(p *face.Pipeline, w *torch.Tensor, i, views int, pitch float64, base string, verbose bool) error {
	bar := progress.New("views", 0, int64(views), "view")
	if !verbose { // a --batch's own bar is on the line
		bar.Out = io.Discard
	}
	frames, err := p.ViewsEach(w, i, views, pitch, func(k int) { bar.Set(int64(k), nil) })
	if err != nil {
		return err
	}
	bar.Finish()
	if err := imageio.SavePNG(base+"_views.png", imageio.Grid(frames, nil, len(frames), 2)); err != nil {
		return err
	}
	turn := append([]image.Image(nil), frames...)
	if len(frames) > 2 { // swing back: a seamless loop
		turn = append(turn, reversed(frames[1:len(frames)-1])...)
	}
	if err := imageio.SaveGIF(base+"_turn.gif", turn, 12); err != nil {
		return err
	}
	if verbose {
		fmt.Fprintf(os.Stderr, "wrote %s_views.png and %s_turn.gif\n", base, base)
	}
	return nil
}

func reversed(xs []image.Image) []image.Image {
	out := make([]image.Image, len(xs))
	for i, x := range xs {
		out[len(xs)-1-i] = x
	}
	return out
}

// provenance is what a generated PNG records about itself (PNG text
// chunks): the prompt, seed and settings, and SHA-256 hashes of the
// condition file and of the weights (hashes, from setHashes), so an image
// can be reproduced or traced to the models that made it.
func provenance(p *face.Pipeline, j job, hashes map[string]string, step int, yaw, pitch float64, camera string) map[string]string {
	cond := j.Mask
	if cond == "" {
		cond = j.Scribble
	}
	m := map[string]string{
		"Description":    j.Text,
		"Software":       "ddgi " + Version,
		"ddgi:seed":      fmt.Sprint(j.Seed),
		"ddgi:gan":       string(p.Opts.GAN),
		"ddgi:condition": string(p.Opts.Cond),
		"ddgi:step":      fmt.Sprint(step),
	}
	maps.Copy(m, hashes)
	if h, err := filesHash(map[string]string{"c": cond}); err == nil {
		m["ddgi:condition-sha256"] = h
	}
	if p.G.Is3D() {
		if camera != "" {
			m["ddgi:camera"] = camera
		} else {
			m["ddgi:yaw"], m["ddgi:pitch"] = fmt.Sprint(yaw), fmt.Sprint(pitch)
		}
	}
	if p.Opts.Art {
		m["ddgi:art"] = "true"
	}
	// The inference-time knobs, where set, so the image can be remade.
	if s := p.Opts.PromptStrength; s != 0 {
		m["ddgi:prompt-strength"] = fmt.Sprint(s)
	}
	if s := p.Opts.Spread; s != 0 && s != 1 {
		m["ddgi:spread"] = fmt.Sprint(s)
	}
	if b := p.Opts.Variation; b != 0 {
		from := p.Opts.VariationFrom
		if from == 0 {
			from = face.DefaultVariationFrom(p.G)
		}
		m["ddgi:variation"], m["ddgi:variation-from"] = fmt.Sprint(b), fmt.Sprint(from)
	}
	if pr := p.Opts.Precision; pr != "" && pr != nn.FP32 {
		m["ddgi:precision"] = string(pr)
	}
	return m
}

// diffuseProvenance is provenance for `ddgi diffuse`: the prompt, the
// settings (as ddgi:<name>), and SHA-256 hashes of the condition files
// given and of the weight files used.
func diffuseProvenance(weights, conds map[string]string, prompt string, settings map[string]string) (map[string]string, error) {
	all, err := filesHash(weights)
	if err != nil {
		return nil, err
	}
	m := map[string]string{"Description": prompt, "Software": "ddgi " + Version, "ddgi:weights-sha256": all}
	for k, v := range settings {
		m["ddgi:"+k] = v
	}
	for kind, path := range conds {
		if path == "" {
			continue
		}
		h, err := filesHash(map[string]string{"c": path})
		if err != nil {
			return nil, err
		}
		m["ddgi:"+kind+"-sha256"] = h
	}
	return m, nil
}

// setHashes are the SHA-256 hashes a generated image records of the model
// set's files: all of them, and the generator alone (what `ddgi render`
// checks a latent against).
func setHashes(files map[string]string) (map[string]string, error) {
	all, err := filesHash(files)
	if err != nil {
		return nil, err
	}
	gan, err := filesHash(map[string]string{"gan": files["gan"]})
	if err != nil {
		return nil, err
	}
	return map[string]string{"ddgi:weights-sha256": all, "ddgi:gan-sha256": gan}, nil
}

// filesHash is the SHA-256 of the files' contents, in the order of their
// sorted keys (hex); files a model set lacks (an optional VAE or text
// encoder) are skipped. A folder (a CLIP tokenizer: vocab.json and
// merges.txt) counts as its regular files' contents in name order.
func filesHash(files map[string]string) (string, error) {
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	add := func(path string) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(h, f)
		return err
	}
	for _, k := range keys {
		st, err := os.Stat(files[k])
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if !st.IsDir() {
			if err := add(files[k]); err != nil {
				return "", err
			}
			continue
		}
		ents, err := os.ReadDir(files[k]) // sorted by name
		if err != nil {
			return "", err
		}
		for _, e := range ents {
			if e.Type().IsRegular() {
				if err := add(filepath.Join(files[k], e.Name())); err != nil {
					return "", err
				}
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// variationHelp and variationFromHelp describe --variation and
// --variation-from for generate and eval.
const (
	variationHelp     = "β of the seed's variation in the GAN's fine styles: those layers of the inversion's code move by β(w_seed − w̄), w_seed the GAN's own code for --seed, so colour, light and background change with the seed while the structure and the prompt's attributes stay (docs/inversion.md); 0: none"
	variationFromHelp = "first style layer --variation moves (0: the GAN's two finest resolutions, layers L−4…L−1)"
)

// spreadHelp describes --spread for generate and eval.
const spreadHelp = "ψ of the truncation trick on the inversion's code, w̄ + ψ(w − w̄): above 1 spreads faces away from the GAN's average face (the encoder pulls toward it), below 1 pulls them in; 0 or 1: as trained (docs/inversion.md)"
