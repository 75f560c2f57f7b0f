package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"ddgi/eval"
	"ddgi/eval/methods"
	"ddgi/face"
	"ddgi/kinds"
	"ddgi/synthface"
	"ddgi/torch"
)

func init() {
	register(command{name: "eval", summary: "score methods on SynthFace-bench (FID, KID, LPIPS, MS-SSIM, ID, ACC, mIoU, attribute acc.)", run: runEval})
}

func runEval(args []string) error {
	fs := newFlags("eval", "--method m1,m2 [flags]")
	mc := methods.DefaultConfig()
	names := evalMethods(mc).Names()
	methodList := fs.String("method", "gt,blur,paint", "comma-separated methods (registered: "+strings.Join(names, ", ")+"; gt/blur/paint are sanity checks)")
	bench := fs.String("bench", "synthface", "benchmark: synthface (SynthFace-bench, the tables' pairs) or synthface-val (SynthFace's held-out val split, which no trainer draws and no table scores: choose settings there, report on the bench)")
	n := fs.Int("n", 2000, "bench pairs (0 with --controls: the controllability report only)")
	controls := fs.Int("controls", 0, "also run the controllability report on the first N bench conditions: prompt pairs that differ in one attribute (hair colour, gender, age, smiling, makeup, lipstick, and eyeglasses/hat/beard where the truth has room), same condition and seed; writes controls.md/controls.json")
	views := fs.Int("views", 0, "also run the view-consistency report on the first N bench heads (3-D methods): each head drawn from every --view-yaws camera, by SynthFace and by each 3-D method from its one code; the identity net's similarity between views of one head against neighbouring heads (ROC-AUC), and how far the views turn; writes views.md/views.json/grid_views_<cond>.png")
	viewYaws := fs.String("view-yaws", "-30,0,30", "yaws in degrees (pitch 0) of --views' cameras, at least two")
	size := fs.Int("size", 64, "image side the methods generate at")
	conds := fs.String("cond", "mask,scribble", "conditions: mask, scribble or both")
	out := fs.String("out", "", "output folder for table.md, results.json, grid_<cond>.png (empty: print the table only)")
	weights := fs.String("weights", mc.Weights, "folder holding aux_*.safetensors and the models of the ddgi, controlnet and project methods")
	batch := fs.Int("batch", 50, "pairs per batch")
	gridRows := fs.Int("grid-rows", 6, "samples shown in each image grid")
	workers := fs.Int("workers", min(2, runtime.NumCPU()), "bench render workers")
	quiet := &quietFlag // every command has --quiet (newFlags)
	devName := fs.String("device", "cpu", "cpu, cuda or cuda:N (for ddgi and controlnet methods)")
	condGuidance := fs.Float64("cond-guidance", mc.Guidance.Cond, "guidance scale on the mask/scribble of full diffusion samples (the controlnet method) and of ddgi's denoising before --step < T−1 (1 = off)")
	textGuidance := fs.Float64("text-guidance", mc.Guidance.Text, "classifier-free guidance scale on the text of full diffusion samples (the controlnet method); higher draws a prompt's style more strongly")
	step := fs.Int("step", mc.Step, "ddgi methods: inference step t (-1: T−1; see ddgi generate --step)")
	strength := fs.Float64("prompt-strength", 0, "ddgi methods: how far the prompt moves the face through the inversion's text path: 1 as trained, above 1 follows the prompt more (guidance on the text offset, w = M(h) + P(e) + (s−1)(P(e) − P(∅)); docs/inversion.md); 0: "+fmt.Sprint(face.DefaultPromptStrength)+" where the inversion has a text path, else 1")
	spread := fs.Float64("spread", 0, spreadHelp)
	variation := fs.Float64("variation", 0, variationHelp)
	variationFrom := fs.Int("variation-from", 0, variationFromHelp)
	precision := precisionFlag(fs, "for the ddgi and controlnet methods")
	art := fs.String("art", "photo", "draw the bench as artworks of this style, captions naming it (style transfer; methods ddgi-2d:art, ddgi-3d:art, controlnet:art): statue, bronze, cartoon or sketch")
	cache := fs.String("cache", "", "folder where the ControlNet baseline keeps its samples (content-addressed by weights, settings, prompt, condition and seed): a rerun samples only new pairs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if *weights, err = modelSet(fs, *weights); err != nil {
		return err
	}
	dev, err := torch.ParseDevice(*devName)
	if err != nil {
		return err
	}
	if *textGuidance <= 0 || *condGuidance <= 0 {
		return fmt.Errorf("--text-guidance %g, --cond-guidance %g: want > 0", *textGuidance, *condGuidance)
	}
	mc.Weights, mc.Device, mc.Step, mc.Cache, mc.PromptStrength, mc.Spread = *weights, dev, *step, *cache, *strength, *spread
	mc.Variation, mc.VariationFrom = *variation, *variationFrom
	if mc.Precision, err = precision(); err != nil {
		return err
	}
	mc.Guidance.Text, mc.Guidance.Cond = *textGuidance, *condGuidance
	reg := evalMethods(mc)
	if *bench != "synthface" && *bench != "synthface-val" {
		return fmt.Errorf("unknown bench %q (synthface or synthface-val)", *bench)
	}
	a, err := synthface.ParseArt(*art)
	if err != nil {
		return fmt.Errorf("--art: %w", err)
	}
	if *n < 0 || *controls < 0 || *views < 0 || (*n == 0 && *controls == 0 && *views == 0) {
		return fmt.Errorf("--n %d, --controls %d, --views %d: want n ≥ 1, or n = 0 with controls or views ≥ 2", *n, *controls, *views)
	}
	yaws, err := parseYaws(*viewYaws)
	if err != nil {
		return fmt.Errorf("--view-yaws: %w", err)
	}
	if *n > 0 && *n < 500 {
		fmt.Fprintf(os.Stderr, "ddgi eval: warning: FID and KID on %d pairs are noisy (KID can come out negative); the tables use 2,000\n", *n)
	}
	cfg := eval.Config{N: *n, Size: *size, Batch: *batch, Workers: *workers, GridRows: *gridRows, Quiet: *quiet, Art: a, Val: *bench == "synthface-val"}
	for _, c := range strings.Split(*conds, ",") {
		cd, err := kinds.ParseCond(strings.TrimSpace(c))
		if err != nil {
			return err
		}
		cfg.Conds = append(cfg.Conds, cd)
	}
	for _, name := range strings.Split(*methodList, ",") {
		m, err := reg.New(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		cfg.Methods = append(cfg.Methods, m)
	}
	var notes []string
	if err := torch.Try(func() {
		var err error
		cfg.Nets, notes, err = eval.LoadNets(*weights)
		if err != nil {
			panic(&torch.Error{Op: "load aux nets", Msg: err.Error()})
		}
	}); err != nil {
		return err
	}
	if *n > 0 {
		rep, err := eval.Run(cfg)
		if err != nil {
			return err
		}
		rep.Notes = append(rep.Notes, notes...)
		fmt.Fprint(os.Stdout, rep.Markdown())
		if *out != "" {
			if err := rep.WriteFiles(*out); err != nil {
				return err
			}
		}
	}
	if *controls > 0 {
		c := cfg
		c.N = *controls
		crep, err := eval.RunControls(c)
		if err != nil {
			return err
		}
		fmt.Fprint(os.Stdout, "\n"+crep.Markdown())
		if *out != "" {
			if err := crep.WriteFiles(*out); err != nil {
				return err
			}
		}
	}
	if *views > 0 {
		c := cfg
		c.N = *views
		vrep, err := eval.RunViews(c, yaws)
		if err != nil {
			return err
		}
		fmt.Fprint(os.Stdout, "\n"+vrep.Markdown())
		if *out != "" {
			return vrep.WriteFiles(*out)
		}
	}
	return nil
}

// parseYaws reads "-30,0,30" and checks it as the report will
// (eval.CheckYaws), before any pair is scored.
func parseYaws(s string) ([]float64, error) {
	var ys []float64
	for _, f := range strings.Split(s, ",") {
		y, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: want comma-separated degrees", f)
		}
		ys = append(ys, y)
	}
	if err := eval.CheckYaws(ys); err != nil {
		return nil, err
	}
	return ys, nil
}

// evalMethods is every method `ddgi eval` knows, the trained ones set up
// by c.
func evalMethods(c methods.Config) *eval.Registry {
	r := eval.NewRegistry()
	methods.Register(r, c)
	return r
}
