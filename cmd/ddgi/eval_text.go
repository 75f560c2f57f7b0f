package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/imagebatch"
	"ddgi/internal/imageio"
	prog "ddgi/internal/progress"
	"ddgi/metrics"
	"ddgi/torch"
)

func init() {
	register(command{name: "eval-text", summary: "measure how well a text encoder conditions a base U-Net on SynthFace-bench (held-out denoising loss with own, another face's and no caption; attribute accuracy of samples)", run: runEvalText})
}

// textCondReport is what eval-text measures for one U-Net + text encoder.
type textCondReport struct {
	UNet      string `json:"unet"`
	Text      string `json:"text_encoder"`
	Pairs     int    `json:"pairs"`
	Timesteps []int  `json:"timesteps"`
	// Held-out denoising loss (the training objective) on bench latents with
	// fixed noise, averaged over pairs and timesteps.
	LossOwn   float64 `json:"loss_own"`
	LossOther float64 `json:"loss_other"`
	LossEmpty float64 `json:"loss_empty"`
	// Relative drops: how much the own caption helps over none, and over a
	// different face's caption (what the caption says about this face).
	GainEmpty float64 `json:"gain_vs_empty"`
	GainOther float64 `json:"gain_vs_other"`
	// Attribute accuracy of text-only samples (no visual condition) from
	// the bench captions, and of the bench ground truth (the classifier's
	// ceiling).
	Samples int     `json:"samples"`
	AttrAcc float64 `json:"attr_acc"`
	AttrAGT float64 `json:"attr_acc_ground_truth"`
}

func runEvalText(args []string) error {
	fs := newFlags("eval-text", "--unet U.safetensors [--text-weights T.safetensors] [flags]")
	unet := fs.String("unet", "weights/diffusion_small64.safetensors", "base U-Net weights (a base run's latest/ema.safetensors works)")
	n := fs.Int("n", 500, "SynthFace-bench pairs for the denoising loss")
	tsFlag := fs.String("t", "100,300,500,700,900", "timesteps the loss is averaged over")
	samples := fs.Int("samples", 200, "text-only samples for attribute accuracy (0: skip)")
	steps := fs.Int("steps", 20, "DDIM steps of the samples")
	guidance := fs.Float64("guidance", 3, "classifier-free guidance on the text")
	attrW := fs.String("attributes", "weights/aux_attributes.safetensors", "attribute classifier")
	jsonOut := fs.String("json", "", "also write the report here")
	quiet := &quietFlag // every command has --quiet (newFlags)
	lw := addEncoderFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := weightsDefaults(fs, "unet", "tokenizer", "attributes"); err != nil {
		return err
	}
	var ts []int
	for _, f := range strings.Split(*tsFlag, ",") {
		t, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("--t %q: comma-separated integers", *tsFlag)
		}
		ts = append(ts, t)
	}
	switch {
	case *n < 2:
		return errors.New("--n must be ≥ 2 (the other-caption loss pairs each face with another)")
	case *samples < 0 || *steps < 1:
		return errors.New("--samples must be ≥ 0 and --steps ≥ 1")
	}
	var rep textCondReport
	err := torch.Try(func() {
		var err error
		rep, err = evalText(*unet, *lw, *n, ts, *samples, *steps, *guidance, *attrW, *quiet)
		if err != nil {
			panic(&torch.Error{Op: "eval-text", Msg: err.Error()})
		}
	})
	if err != nil {
		return err
	}
	fmt.Printf("| U-Net | text encoder | loss own | loss other | loss empty | gain vs empty | gain vs other | attr. acc. (%d samples) | GT attr. acc. |\n|---|---|---|---|---|---|---|---|---|\n", rep.Samples)
	fmt.Printf("| %s | %s | %.5f | %.5f | %.5f | %.2f%% | %.2f%% | %.1f%% | %.1f%% |\n", rep.UNet, rep.Text,
		rep.LossOwn, rep.LossOther, rep.LossEmpty, 100*rep.GainEmpty, 100*rep.GainOther, 100*rep.AttrAcc, 100*rep.AttrAGT)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		return imageio.WriteAtomic(*jsonOut, append(b, '\n'))
	}
	return nil
}

func evalText(unet string, lw encoder.Files, n int, ts []int, samples, steps int, guidance float64, attrW string, quiet bool) (textCondReport, error) {
	rep := textCondReport{UNet: unet, Text: lw.Text, Pairs: n, Timesteps: ts, Samples: samples}
	m, err := diffusion.Load(unet, torch.CPU)
	if err != nil {
		return rep, err
	}
	m.Store.Freeze("")
	for _, t := range ts {
		if t < 0 || t >= m.Schedule.T() {
			return rep, fmt.Errorf("--t %d outside [0,%d)", t, m.Schedule.T())
		}
	}
	te, store, err := encoder.LoadText(lw, m.Config.ContextDim, false, torch.CPU)
	if err != nil {
		return rep, err
	}
	store.Freeze("")
	ae, err := encoder.Autoencoder(m.Config, lw, torch.CPU)
	if err != nil {
		return rep, err
	}
	attr, err := auxnets.LoadClassifier(attrW, auxnets.NetAttributes, torch.CPU)
	if err != nil {
		return rep, err
	}
	// Render the bench once: the loss pairs and the sampled captions share it.
	bench, err := auxnets.Cache(data.NewSynthFace(data.Bench, int(m.Config.ImageSize()), max(n, samples)), 2, quiet, "render bench")
	if err != nil {
		return rep, err
	}
	caps := make([]string, len(bench)) // first captions, as the bench batches use
	for i, s := range bench {
		if len(s.Captions) > 0 {
			caps[i] = s.Captions[0]
		}
	}
	const batch = 25
	bar := prog.New("eval-text loss", 0, int64(n), "pair")
	if quiet {
		bar.Out = io.Discard
	}
	var own, other, empty float64
	var gtHits, gtN float64
	for start := 0; start < n; start += batch {
		k := min(batch, n-start)
		torch.NoGrad(func() {
			torch.Scoped(func() {
				b := imagebatch.FromSamples(bench[start:start+k], torch.CPU)
				g := torch.NewGenerator(uint64(1_000 + start))
				z0 := ae.ToLatent(b.Image, g)
				// another face's caption: the next one in the bench (wraps).
				others := make([]string, k)
				for i := range others {
					others[i] = caps[(start+i+1)%n]
				}
				ctxOwn := must(te.Encode(b.Captions))
				ctxOther := must(te.Encode(others))
				ctxEmpty := must(te.Encode(make([]string, k)))
				for _, t := range ts {
					tt := torch.Full([]int64{int64(k)}, float64(t), torch.Int64, torch.CPU)
					eps := torch.Randn(g, z0.Shape(), torch.Float32, torch.CPU)
					zt := m.Schedule.AddNoise(z0, eps, tt)
					w := float64(k) / float64(n*len(ts))
					own += w * m.Schedule.Loss(m.Predict(zt, tt, ctxOwn, diffusion.Conditions{}), z0, eps, tt).Item()
					other += w * m.Schedule.Loss(m.Predict(zt, tt, ctxOther, diffusion.Conditions{}), z0, eps, tt).Item()
					empty += w * m.Schedule.Loss(m.Predict(zt, tt, ctxEmpty, diffusion.Conditions{}), z0, eps, tt).Item()
				}
				if start < samples {
					h, c := metrics.AttributeAccuracy(attr.AttributeProbs(b.Image), b.Captions)
					gtHits, gtN = gtHits+h, gtN+c
				}
			})
		})
		bar.Set(int64(start+k), nil)
	}
	bar.Finish()
	rep.LossOwn, rep.LossOther, rep.LossEmpty = own, other, empty
	rep.GainEmpty, rep.GainOther = 1-own/empty, 1-own/other
	if gtN > 0 {
		rep.AttrAGT = gtHits / gtN
	}
	if samples == 0 {
		return rep, nil
	}
	p := &diffusion.Pipeline{Model: m, Text: te, AE: ae, Sampler: diffusion.SamplerOpts{Sampler: "ddim"}}
	sbar := prog.New("eval-text samples", 0, int64(samples), "img")
	if quiet {
		sbar.Out = io.Discard
	}
	var hits, mentions float64
	for start := 0; start < samples; start += batch {
		k := min(batch, samples-start)
		var serr error
		torch.NoGrad(func() {
			torch.Scoped(func() {
				texts := caps[start : start+k]
				img, err := p.Sample(texts, diffusion.Conditions{}, steps, diffusion.Guidance{Text: guidance, Cond: 1}, uint64(start+1))
				if err != nil {
					serr = err
					return
				}
				h, c := metrics.AttributeAccuracy(attr.AttributeProbs(img), texts)
				hits, mentions = hits+h, mentions+c
			})
		})
		if serr != nil {
			return rep, serr
		}
		sbar.Set(int64(start+k), nil)
	}
	sbar.Finish()
	if mentions > 0 {
		rep.AttrAcc = hits / mentions
	}
	return rep, nil
}

// must unwraps an error inside a torch.Try block.
func must(t *torch.Tensor, err error) *torch.Tensor {
	if err != nil {
		panic(&torch.Error{Op: "eval-text", Msg: err.Error()})
	}
	return t
}
