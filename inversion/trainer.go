package inversion

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/internal/imageio"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/safetensors"
	"ddgi/synthface"
	"ddgi/torch"
	"ddgi/train"
)

// Condition is the visual input x of one batch.
type Condition struct {
	Kind     kinds.Cond
	Mask     *torch.Tensor // [B,S,S] int64 labels (Kind "mask")
	Scribble *torch.Tensor // [B,1,S,S] in {0,1} (Kind "scribble")
}

// Encoder is the diffusion-based encoder E seen from the inversion.
type Encoder interface {
	// Timesteps is the schedule length T.
	Timesteps() int
	// Latents encodes images [B,3,S,S] in [-1,1] to clean latents z_0.
	Latents(images *torch.Tensor) *torch.Tensor
	// AddNoise forms z_t ~ q(z_t | z_0) for steps t [B] (int64) from the
	// caller's standard normal noise eps (shaped as z0): a data-parallel
	// rank draws the whole batch's noise and keeps its rows.
	AddNoise(z0, eps, t *torch.Tensor) *torch.Tensor
	// Prior draws z_T for inference.
	Prior(b int64, g *torch.Generator) *torch.Tensor
	// Features runs one U-Net(+ControlNet) pass and returns h_t and T's inputs.
	Features(zt, t *torch.Tensor, texts []string, cond Condition) (h *torch.Tensor, f Features)
	// Sample runs the full sampler and returns I^d_0 [B,3,S,S] in [-1,1];
	// item i starts from seeds[i] alone, so it does not depend on the batch.
	Sample(texts []string, cond Condition, seeds []int64) *torch.Tensor
	// ID fingerprints the encoder's weights and sampler settings for the
	// I^d_0 cache.
	ID() string
}

// Ablation selects a row of the paper's Table 2.
type Ablation string

const (
	Full   Ablation = ""        // M + T with attention, I^gt for M and I^d_0 for T
	MOnly  Ablation = "m-only"  // stage 1 only; w = w^m
	NoAttn Ablation = "no-attn" // T without A_t and Ā_t
	GTOnly Ablation = "gt-only" // both stages against I^gt
	D0Only Ablation = "d0-only" // both stages against I^d_0 (also style transfer, Sec. 4.4)
)

// ParseAblation validates a --ablation flag.
func ParseAblation(s string) (Ablation, error) {
	switch a := Ablation(s); a {
	case Full, MOnly, NoAttn, GTOnly, D0Only:
		return a, nil
	}
	return "", fmt.Errorf("unknown ablation %q (want m-only, no-attn, gt-only or d0-only)", s)
}

// TrainConfig is one training run: what decides its numbers. It is
// stored with the trained weights.
type TrainConfig struct {
	Stage1Steps, Stage2Steps int
	Batch                    int
	LR                       float64
	Weights                  Weights
	Ablation                 Ablation
	Cond                     kinds.Cond
	Seed                     uint64
	// TMin, TMax bound the sampled denoising steps (multi-step training).
	TMin, TMax int
	// D0Pool bounds the training pairs of the stages that need I^d_0
	// (0: all): each pair costs one full diffusion sample, once.
	D0Pool int
	// PairNoise makes the stages that learn from I^d_0 feed E, for the
	// samples at t = T−1, the very z_T their I^d_0 was sampled from (what
	// one-pass inference with that seed sees) instead of the ground truth
	// noised with fresh noise, so T can learn what of I^d_0 the noise
	// decides (ddgi's reading of "I^d_0 produced by E"; docs/inversion.md).
	PairNoise bool `json:",omitempty"`
	// TextPathOnly trains only M's text path in stage 1 (Map2Style and T
	// kept as --init gave them), rendering through T as inference does: the
	// prompt's offset learns while the code M reads from h_t, which T was
	// trained with, stays put (docs/inversion.md, session 27).
	TextPathOnly bool `json:",omitempty"`
	// SwapPrompts is the share of rows whose caption is replaced by a
	// counterfactual prompt (CounterfactualPrompt): one attribute the
	// condition does not show, for the attribute term to ask for. Only in
	// stages trained against I^gt: an I^d_0 target is sampled for the
	// pair's own caption.
	SwapPrompts float64 `json:",omitempty"`
	// ArtProb and Arts record the share and styles of artwork pairs in the
	// training data (style transfer, Sec. 4.4; synthface.WithArt).
	ArtProb float64  `json:",omitempty"`
	Arts    []string `json:",omitempty"`
	// Init, when set, is a trained inversion (same model config) that a
	// fresh run starts M and T from instead of random weights: to follow a
	// generator trained further, whose w space moved only a little. w̄ is
	// then reset to G's.
	Init string `json:",omitempty"`
}

// Total is the number of steps of both stages (stage 1 only for m-only).
func (c TrainConfig) Total() int {
	if c.Ablation == MOnly {
		return c.Stage1Steps
	}
	return c.Stage1Steps + c.Stage2Steps
}

// stageOf is the stage a step belongs to.
func (c TrainConfig) stageOf(step int) int {
	if step < c.Stage1Steps {
		return 1
	}
	return 2
}

// Trainer runs the two-stage, multi-step training of Sec. 3.4 as a
// train.Job: Train hands it to a train.Loop, which owns the run folder.
type Trainer struct {
	Cfg   TrainConfig
	Model *Model
	G     Generator
	E     Encoder
	F     Perceptual
	R     Identity
	// A, when set with Cfg.Weights.Attr ≠ 0, scores the prompt's stated
	// attributes on every render (PromptAttributeLoss, both stages).
	A    AttributeCritic
	Data data.Dataset
	// PreviewData holds the fixed samples of the preview grids (nil: the
	// first training samples); SynthFace-bench keeps them held out.
	PreviewData data.Dataset
	Cache       *D0Cache
	Dev         torch.Device
	// Stage1From, when set, is a stage-1 model (stage1_m-only.safetensors of
	// a full run) whose M a fresh run takes instead of training stage 1:
	// the full method, no-attn and gt-only share stage 1 exactly (Eq. 6
	// against I^gt, T not run), so their Table 2 rows need one stage 1.
	Stage1From string

	run          *train.Run
	previewEvery int64
	opt          *optim.Adam
	optStage     int         // the stage opt's moments belong to; 0: none yet
	frozen       int         // the stage the store is frozen for; 0: not yet
	done         int64       // steps done, for Preview's stage
	shard        train.Shard // this rank's rows of every batch (one process: all)
	attrFocus    []float32   // Cfg.Weights.AttrFocus per attribute (AttrFocusRow)
	// stage1 is the full method's model at the end of stage 1, kept in
	// every later checkpoint (Stage1File).
	stage1 *safetensors.File
}

// Files of a checkpoint folder.
const (
	modelFile = "model.safetensors"
	optFile   = "optimizer.safetensors"
	stateFile = "state.json"
	// Stage1File is the full method's stage 1 saved as the m-only model.
	Stage1File = "stage1_m-only.safetensors"
)

// trainState is the resume state besides the weights.
type trainState struct {
	Step     int64 `json:"step"`
	OptStage int   `json:"opt_stage"` // 0: no optimizer file
}

// needsD0 says whether a stage trains against the diffusion output I^d_0
// rather than I^gt.
func (c TrainConfig) needsD0(stage int) bool {
	switch c.Ablation {
	case GTOnly, MOnly:
		return false
	case D0Only:
		return true
	}
	return stage == 2
}

// TrainsAgainstTruth says whether any stage that runs (steps > 0) trains
// against I^gt: the only stages where SwapPrompts acts, since I^d_0 was
// drawn from the data's own caption.
func (c TrainConfig) TrainsAgainstTruth() bool {
	if c.Stage1Steps > 0 && !c.needsD0(1) {
		return true
	}
	return c.Total() > c.Stage1Steps && !c.needsD0(2)
}

// D0 returns I^d_0 for the batch's samples (dataset indexes start…), from
// the cache or by sampling (and caching) the missing ones. Errors panic as
// *torch.Error: Step runs inside torch.Try.
func (tr *Trainer) D0(b imagebatch.Batch, start int, cond Condition, size int) *torch.Tensor {
	keys := make([]string, len(b.Samples))
	seeds := tr.d0Seeds(b, start)
	for i, s := range b.Samples {
		condBytes := s.Mask
		if cond.Kind == kinds.Scribble {
			condBytes = s.Scribble
		}
		keys[i] = Key(tr.E.ID(), cond.Kind, b.Captions[i], condBytes, 0, 0, seeds[i], size)
	}
	// The missing pairs are sampled together, each from its own seed, so a
	// cached image depends only on what its key hashes.
	imgs, err := tr.Cache.Fill(keys, size, 0, tr.Dev, func(idx []int) (*torch.Tensor, error) {
		ix := make([]int64, len(idx))
		texts := make([]string, len(idx))
		sub := make([]int64, len(idx))
		for j, i := range idx {
			ix[j], texts[j], sub[j] = int64(i), b.Captions[i], seeds[i]
		}
		sel := torch.FromInt64(ix, int64(len(ix))).ToDevice(tr.Dev)
		c := Condition{Kind: cond.Kind}
		if cond.Mask != nil {
			c.Mask = cond.Mask.IndexSelect(0, sel)
		}
		if cond.Scribble != nil {
			c.Scribble = cond.Scribble.IndexSelect(0, sel)
		}
		var out *torch.Tensor
		torch.NoGrad(func() { out = tr.E.Sample(texts, c, sub) })
		return out, nil
	})
	if err != nil {
		panic(&torch.Error{Op: "d0", Msg: err.Error()})
	}
	return torch.Cat(imgs, 0)
}

// d0Seeds are the seeds of the batch's I^d_0 samples (dataset indexes
// start…): the renderer's seed, or for a folder sample (which has none)
// its index.
func (tr *Trainer) d0Seeds(b imagebatch.Batch, start int) []int64 {
	seeds := make([]int64, len(b.Samples))
	for i, s := range b.Samples {
		seeds[i] = s.Seed
		if seeds[i] < 0 {
			seeds[i] = int64((start + i) % tr.Data.Len())
		}
	}
	return seeds
}

// PairedLatent is E's input for the I^d_0 stages under PairNoise: z_T
// (the latent I^d_0 was sampled from) where t = T−1, z_t elsewhere.
func PairedLatent(zt, zT, steps *torch.Tensor, T int) *torch.Tensor {
	last := steps.EqScalar(float64(T-1)).Reshape(-1, 1, 1, 1)
	return torch.Where(last.Expand(zt.Shape()...), zT, zt)
}

// SeedPriors are the z_T of seeds [B,C,H,W], each drawn from its own seed
// alone: one-pass inference and PairNoise training draw them here, so a
// seed gives both the same latent.
func SeedPriors(e Encoder, seeds []int64) *torch.Tensor {
	zs := make([]*torch.Tensor, len(seeds))
	for i, s := range seeds {
		zs[i] = e.Prior(1, torch.NewGenerator(uint64(s)))
	}
	return torch.Cat(zs, 0)
}

// SampleSteps draws t for every sample uniformly in [TMin, TMax]: the
// multi-step training of Sec. 3.4.
func SampleSteps(g *torch.Generator, b int, tmin, tmax int, dev torch.Device) *torch.Tensor {
	return torch.RandInt(g, int64(tmin), int64(tmax)+1, []int64{int64(b)}, dev)
}

// update runs one optimisation step of stage 1 (M, Eq. 6) or stage 2 (T,
// Eq. 7) and returns the logged terms.
func (tr *Trainer) update(stage, step int, g *torch.Generator) map[string]float64 {
	var vals map[string]float64
	sc := torch.NewScope()
	defer sc.Close()
	start := step * tr.Cfg.Batch
	if tr.Cfg.needsD0(stage) && tr.Cfg.D0Pool > 0 {
		start %= tr.Cfg.D0Pool
	}
	// A rank computes rows lo… of the global batch, with the draws one
	// process would give those rows.
	lo, n := tr.shard.Rows(tr.Cfg.Batch)
	b := imagebatch.Get(tr.Data, start+lo, n, tr.Dev)
	size := int(b.Image.Size(3))
	cond := Condition{Kind: tr.Cfg.Cond, Mask: b.Mask, Scribble: b.Scribble}
	if tr.Cfg.SwapPrompts > 0 && !tr.Cfg.needsD0(stage) {
		attrs := make([][]float32, len(b.Samples))
		for i, s := range b.Samples {
			attrs[i] = s.Attrs
		}
		b.Captions = swapPrompts(b.Captions, attrs, tr.Cfg.SwapPrompts, tr.Cfg.Seed, step, tr.Cfg.Batch, lo)
	}
	steps := SampleSteps(g, tr.Cfg.Batch, tr.Cfg.TMin, tr.Cfg.TMax, tr.Dev).Narrow(0, int64(lo), int64(n))
	var h *torch.Tensor
	var f Features
	var d0 *torch.Tensor
	torch.NoGrad(func() {
		// E is frozen: its pass runs without gradients in a scope of its
		// own, so the VAE's and U-Net's activations are freed before G's
		// forward and backward; only the taps stay.
		es := torch.NewScope()
		z0 := tr.E.Latents(b.Image)
		eps := torch.Randn(g, append([]int64{int64(tr.Cfg.Batch)}, z0.Shape()[1:]...), torch.Float32, z0.Device()).Narrow(0, int64(lo), int64(n))
		zt := tr.E.AddNoise(z0, eps, steps)
		if tr.Cfg.PairNoise && tr.Cfg.needsD0(stage) {
			zt = PairedLatent(zt, SeedPriors(tr.E, tr.d0Seeds(b, start+lo)), steps, tr.E.Timesteps())
		}
		h, f = tr.E.Features(zt, steps, b.Captions, cond)
		es.Keep(append([]*torch.Tensor{h}, f.tensors()...)...)
		es.Close()
		if tr.Cfg.needsD0(stage) {
			d0 = tr.D0(b, start+lo, cond, size)
		}
	})
	target := b.Image
	if d0 != nil {
		target = d0
	}
	idTarget := b.Image
	if tr.Cfg.Ablation == D0Only {
		idTarget = d0
	}
	wavg := tr.G.MeanLatent()
	// Stage 1 renders M's code alone (Eq. 6), except when only the text
	// path trains: its offset is then learnt through the trained, frozen T,
	// whose modulation (Eq. 4) scales it at inference too.
	codes := tr.Model.Invert(h, f, steps, stage == 1 && !tr.Cfg.TextPathOnly)
	w := codes.W
	out := Render(tr.G, w, b.Camera)
	out, target, idTarget = lossSize(out, target, idTarget)
	var terms Terms
	if stage == 1 {
		terms = MappingLoss(tr.Cfg.Weights, target, out, w, wavg, tr.F, tr.R)
		if tr.Cfg.Ablation == D0Only {
			terms = weighted(tr.Cfg.Weights, target, idTarget, out, w, wavg, tr.F, tr.R)
		}
	} else {
		terms = AnchoredModulationLoss(tr.Cfg.Weights, tr.Cfg.Weights.Anchor, target, idTarget, out, w, wavg, tr.F, tr.R)
	}
	if lam := tr.Cfg.Weights.Attr; lam != 0 && tr.A != nil {
		y, stated := StatedAttributes(b.Captions, int64(len(synthface.AttributeNames)), tr.Dev)
		terms.Attr = PromptAttributeLoss(tr.A, out, y, FocusStated(stated, tr.attrFocus))
		terms.Total = terms.Total.Add(terms.Attr.MulScalar(lam))
	}
	vals = terms.Values()
	sc.FreeExcept(terms.Total)
	tr.shard.Backward(terms.Total, tr.Model.Store.Trainable())
	tr.opt.Update(tr.Model.Store.Trainable())
	return vals
}

// Train runs both stages in run under loop (its Label, Total and
// PreviewEvery default here), resuming from the run's newest checkpoint;
// a fresh run first applies Cfg.Init and Stage1From. The trained M and T
// are in tr.Model when it returns nil.
func (tr *Trainer) Train(ctx context.Context, run *train.Run, loop train.Loop) error {
	if loop.Label == "" {
		loop.Label = "train inversion (" + string(tr.Cfg.Cond) + ")"
	}
	loop.Total = int64(tr.Cfg.Total())
	if tr.Cfg.Weights.Attr != 0 && tr.A == nil {
		return fmt.Errorf("attribute weight %g needs an attribute critic", tr.Cfg.Weights.Attr)
	}
	focus, err := AttrFocusRow(tr.Cfg.Weights.AttrFocus, int64(len(synthface.AttributeNames)))
	if err != nil {
		return err
	}
	tr.attrFocus = focus
	tr.run, tr.previewEvery = run, loop.PreviewEvery
	cks, err := run.Checkpoints()
	if err != nil {
		return err
	}
	fresh := len(cks) == 0
	if _, err := os.Stat(run.Path(stateFile)); err == nil {
		fresh = false // an older ddgi's run, which the loop refuses
	}
	if fresh {
		if err := tr.start(run, loop); err != nil {
			return err
		}
	}
	return loop.Run(ctx, run, tr)
}

// start prepares a fresh run: M and T from Cfg.Init, and with Stage1From
// M from a shared stage 1, checkpointed as the end of stage 1 so the loop
// starts at stage 2.
func (tr *Trainer) start(run *train.Run, loop train.Loop) error {
	if c := tr.Cfg; c.Init != "" {
		if err := tr.loadInit(c.Init); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "M and T start from %s\n", c.Init)
	}
	if tr.Stage1From == "" {
		return nil
	}
	if err := tr.loadStage1(tr.Stage1From); err != nil {
		return err
	}
	tr.done = int64(tr.Cfg.Stage1Steps)
	if loop.Group != nil && loop.Group.Rank() != 0 {
		return nil // rank 0 writes the checkpoint; the loop loads it here
	}
	if err := run.Checkpoint(tr.done, tr.Save, max(loop.Keep, 1)); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	fmt.Fprintf(os.Stderr, "stage 1 (M) from %s; training stage 2\n", tr.Stage1From)
	return nil
}

// Step runs training step done (train.Job): T frozen in stage 1 and M in
// stage 2, fresh Adam moments for each stage, the step's own generator.
func (tr *Trainer) Step(ctx context.Context, done int64) (train.Result, error) {
	c := tr.Cfg
	step := int(done)
	stage := c.stageOf(step)
	if tr.frozen != stage {
		tr.freezeFor(stage)
		tr.frozen = stage
	}
	if tr.optStage != stage {
		if tr.opt != nil {
			tr.opt.Free()
		}
		tr.opt, tr.optStage = optim.NewAdam(optim.DefaultAdam(c.LR)), stage
	}
	g := torch.NewGenerator(c.Seed*1_000_003 + uint64(step))
	vals := tr.update(stage, step, g)
	tr.done = done + 1
	if step+1 == c.Stage1Steps && c.Total() > c.Stage1Steps {
		if c.Ablation == Full {
			// Stage 1 of the full method is exactly the m-only ablation's
			// training: keep it, so Table 2's M-only row needs no extra run.
			mc := c
			mc.Ablation = MOnly
			f, err := tr.Model.File(mc, true)
			if err != nil {
				return train.Result{}, err
			}
			tr.stage1 = f
		}
		if tr.shard.Rank == 0 && (tr.previewEvery <= 0 || int64(c.Stage1Steps)%tr.previewEvery != 0) {
			// The loop previews on its own cadence; stage 1's end gets one
			// too, named as the loop names its own.
			if err := tr.Preview(tr.run.Path(fmt.Sprintf("preview-%09d.png", tr.done))); err != nil {
				return train.Result{}, fmt.Errorf("preview: %w", err)
			}
		}
	}
	return train.Result{Losses: vals, Info: map[string]float64{"stage": float64(stage)}}, nil
}

// Distribute makes the trainer one rank of a data-parallel run
// (train.Distributed): its rows of each batch, gradients averaged.
func (tr *Trainer) Distribute(s train.Shard) error {
	tr.shard = s
	return s.Check(tr.Cfg.Batch)
}

// Replicated is what every rank must hold alike (train.Distributed): M and
// T, and the current stage's Adam moments.
func (tr *Trainer) Replicated() []*torch.Tensor {
	var ts []*torch.Tensor
	for _, name := range tr.Model.Store.Names() {
		ts = append(ts, tr.Model.Store.Get(name))
	}
	if tr.opt != nil {
		ts = append(ts, tr.opt.Moments()...)
	}
	return ts
}

// Save writes a checkpoint (train.Job): M and T in full precision with the
// configs, the current stage's Adam state, the resume state and, past the
// full method's stage 1, Stage1File.
func (tr *Trainer) Save(dir string) error {
	if err := tr.Model.Save(filepath.Join(dir, modelFile), tr.Cfg, false); err != nil {
		return err
	}
	st := trainState{Step: tr.done}
	if tr.opt != nil {
		if err := tr.opt.Save(filepath.Join(dir, optFile)); err != nil {
			return err
		}
		st.OptStage = tr.optStage
	}
	if tr.stage1 != nil {
		if err := safetensors.Save(filepath.Join(dir, Stage1File), tr.stage1); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return imageio.WriteAtomic(filepath.Join(dir, stateFile), b)
}

// Load restores a checkpoint written by Save (train.Job).
func (tr *Trainer) Load(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return err
	}
	var st trainState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", stateFile, err)
	}
	if _, err := tr.Model.Store.Load(filepath.Join(dir, modelFile)); err != nil {
		return err
	}
	if tr.opt != nil {
		tr.opt.Free()
	}
	tr.opt, tr.optStage = nil, 0
	if st.OptStage > 0 {
		opt := optim.NewAdam(optim.DefaultAdam(tr.Cfg.LR))
		if err := opt.Load(filepath.Join(dir, optFile), tr.Dev); err != nil {
			return err
		}
		tr.opt, tr.optStage = opt, st.OptStage
	}
	tr.stage1 = nil
	if _, err := os.Stat(filepath.Join(dir, Stage1File)); err == nil {
		if tr.stage1, err = safetensors.Load(filepath.Join(dir, Stage1File)); err != nil {
			return err
		}
	}
	tr.done, tr.frozen = st.Step, 0
	return nil
}

// stage1Shared says whether an ablation's stage 1 is the full method's:
// M trained by Eq. 6 against I^gt with T not run.
func stage1Shared(a Ablation) bool { return a == Full || a == NoAttn || a == GTOnly || a == MOnly }

// stage1Weights are the weights stage 1 uses (the anchor is stage 2's).
func stage1Weights(w Weights) Weights {
	w.Anchor = 0
	return w
}

// loadStage1 copies M from a stage-1 model saved by a run whose stage 1
// this run's would repeat step for step (same ablation family, same
// stage-1 length, same M shape); T keeps its initialisation.
func (tr *Trainer) loadStage1(path string) error {
	c := tr.Cfg
	if !stage1Shared(c.Ablation) || c.Ablation == MOnly {
		return fmt.Errorf("--stage1-from: ablation %q trains no stage 2 after the shared stage 1", c.Ablation)
	}
	m, train, err := Load(path, tr.Dev)
	if err != nil {
		return fmt.Errorf("--stage1-from: %w", err)
	}
	if train == nil {
		return fmt.Errorf("--stage1-from %s: no training config in its metadata", path)
	}
	src, tc := m.Config, *train
	switch {
	case !stage1Shared(tc.Ablation):
		return fmt.Errorf("--stage1-from %s: its stage 1 trained as %q, not against I^gt", path, tc.Ablation)
	case tc.Stage1Steps != c.Stage1Steps || tc.Batch != c.Batch || tc.LR != c.LR || tc.Seed != c.Seed ||
		!reflect.DeepEqual(stage1Weights(tc.Weights), stage1Weights(c.Weights)) || tc.Cond != c.Cond || tc.TMin != c.TMin || tc.TMax != c.TMax:
		return fmt.Errorf("--stage1-from %s: its stage 1 (%d steps, batch %d, lr %g, seed %d, %s, t∈[%d,%d], λ %+v) differs from this run's (%d, %d, %g, %d, %s, [%d,%d], %+v)",
			path, tc.Stage1Steps, tc.Batch, tc.LR, tc.Seed, tc.Cond, tc.TMin, tc.TMax, tc.Weights,
			c.Stage1Steps, c.Batch, c.LR, c.Seed, c.Cond, c.TMin, c.TMax, c.Weights)
	}
	src.UseAttention = tr.Model.Config.UseAttention
	if fmt.Sprint(src) != fmt.Sprint(tr.Model.Config) {
		return fmt.Errorf("--stage1-from %s: model config %+v, this run builds %+v", path, src, tr.Model.Config)
	}
	onlyM := func(name string) string {
		if strings.HasPrefix(name, "mapping.") {
			return name
		}
		return ""
	}
	return tr.Model.Store.CopyFrom(m.Store, onlyM)
}

// loadInit copies M and T of a trained inversion into the model and gives
// M this run's w̄.
func (tr *Trainer) loadInit(path string) error {
	m, _, err := Load(path, tr.Dev)
	if err != nil {
		return fmt.Errorf("--init: %w", err)
	}
	src := m.Config
	if src.TextDim == 0 {
		src.TextDim = tr.Model.Config.TextDim // a text path starts at zero offset
	}
	if fmt.Sprint(src) != fmt.Sprint(tr.Model.Config) {
		return fmt.Errorf("--init %s: model config %+v, this run builds %+v", path, m.Config, tr.Model.Config)
	}
	if err := tr.Model.Store.CopyFrom(m.Store, nil); err != nil {
		return fmt.Errorf("--init %s: %w", path, err)
	}
	return tr.Model.Mapping.SetMeanLatent(tr.G.MeanLatent())
}

// resizeTo brings an image to like's size (area filter; for the preview
// grid's ground truth beside the renders).
func resizeTo(x, like *torch.Tensor) *torch.Tensor {
	if x.Size(2) == like.Size(2) && x.Size(3) == like.Size(3) {
		return x
	}
	return torch.Interpolate(x, like.Size(2), like.Size(3), torch.Area, false)
}

// lossSize brings G's render and the targets (the data, read at the
// encoder's image size, and I^d_0, sampled at it) to one size for the
// losses: the smaller of the two, the larger side area-downsampled — a
// 1024² StyleGAN2 under SD's 512² encoder is compared at 512², as pSp pools
// its 1024² renders for the losses; nothing is upsampled into blocks.
func lossSize(out, target, idTarget *torch.Tensor) (o, t, id *torch.Tensor) {
	if out.Size(2)*out.Size(3) > target.Size(2)*target.Size(3) {
		return resizeTo(out, target), target, resizeTo(idTarget, target)
	}
	return out, resizeTo(target, out), resizeTo(idTarget, out)
}

// freezeFor freezes T in stage 1 and M in stage 2 (Sec. 3.4); with
// TextPathOnly stage 1 trains M's text path alone.
func (tr *Trainer) freezeFor(stage int) {
	s := tr.Model.Store
	s.Unfreeze("")
	if stage == 1 {
		s.Freeze("absmnet")
		if tr.Cfg.TextPathOnly {
			s.Freeze("mapping.map2style")
		}
	} else {
		s.Freeze("mapping")
	}
}

// saveOpts stores both configs with the weights, so `ddgi generate` can
// rebuild M and T and knows how they were trained.
func saveOpts(c Config, t TrainConfig) nn.SaveOptions {
	return nn.SaveOptions{Config: struct {
		Model Config      `json:"model"`
		Train TrainConfig `json:"train"`
	}{c, t}}
}
