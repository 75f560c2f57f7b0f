package texttrain

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"ddgi/imagebatch"
	"ddgi/internal/imageio"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/synthface"
	"ddgi/text"
	"ddgi/torch"
	"ddgi/train"
)

// warmup is the number of linear learning-rate warm-up steps.
const warmup = 200

// Step runs one contrastive step (train.Job): Batch random pairs, one
// random caption of each, symmetric cross-entropy; every EvalEvery steps
// and at the last it scores bench retrieval into the eval sub-run.
func (j *Job) Step(ctx context.Context, done int64) (train.Result, error) {
	if !j.evalTrimmed && j.evalRun != nil {
		if err := j.evalRun.TruncateLog(done); err != nil { // a resumed run repeats them
			return train.Result{}, err
		}
		j.evalTrimmed = true
	}
	// The sampling stream is a function of the step, so a resumed run draws
	// what the uninterrupted one would have.
	rng := rand.New(rand.NewPCG(j.st.Seed, uint64(done)))
	idx := rng.Perm(j.trainSet.Len())[:j.o.Batch]
	caps := make([]string, len(idx))
	for k, i := range idx {
		c := j.trainSet.Captions[i]
		caps[k] = c[rng.IntN(len(c))]
	}
	lo, n := j.shard.Rows(len(idx))
	idx, caps = idx[lo:lo+n], caps[lo:lo+n] // this rank's rows (all in one process)
	ids, err := j.tok.EncodeBatch(caps, int(j.st.Config.Encoder.Context))
	if err != nil {
		return train.Result{}, err
	}
	lr := j.o.LR * 0.5 * (1 + math.Cos(math.Pi*float64(done)/float64(j.o.Steps)))
	if done < warmup {
		lr = j.o.LR * float64(done+1) / float64(warmup)
	}
	j.opt.SetLR(lr)
	var loss, scale float64
	err = torch.Try(func() {
		torch.Scoped(func() {
			txt, img := j.model.Embed(ids, j.trainSet.Images(idx))
			l := text.ContrastiveLoss(j.shard.Gather(txt), j.shard.Gather(img), j.model.LogitScale)
			j.backward(l)
			if j.newRows != nil {
				g := j.store.Get("text.embeddings.token_embedding.weight").Grad()
				g.CopyIn(g.Mul(j.newRows))
			}
			optim.ClipGradNorm(j.store.Trainable(), 1)
			j.opt.Update(j.store.Trainable())
			loss, scale = l.Item(), math.Exp(j.model.LogitScale.Item())
		})
	})
	if err != nil {
		return train.Result{}, err
	}
	j.st.Step = done + 1
	if j.evalRun != nil && (j.st.Step%j.o.EvalEvery == 0 || j.st.Step == j.o.Steps) {
		m, err := j.evaluate()
		if err != nil {
			return train.Result{}, err
		}
		m["logit_scale"] = scale
		if err := j.evalRun.Log(j.st.Step, m); err != nil {
			return train.Result{}, err
		}
		_ = j.evalRun.PlotLosses("bench retrieval")
		fmt.Fprintf(j.out, "\nstep %d bench retrieval (%d pairs): caption→image top-1 %.3f top-5 %.3f, image→caption top-1 %.3f top-5 %.3f\n",
			j.st.Step, j.bench.Len(), m["t2i_top1"], m["t2i_top5"], m["i2t_top1"], m["i2t_top5"])
	}
	return train.Result{Losses: map[string]float64{"loss": loss}, Info: map[string]float64{"scale": scale, "lr": lr}}, nil
}

// backward backpropagates the loss over the gathered batch and completes
// each rank's gradients: the towers' are this rank's rows' share (added
// over the ranks, while backward runs), the temperature's is whole on
// every rank (averaged after).
func (j *Job) backward(l *torch.Tensor) {
	if j.shard.Size <= 1 {
		l.Backward()
		return
	}
	var towers, scale []nn.Named
	for _, p := range j.store.Trainable() {
		if p.T == j.model.LogitScale {
			scale = append(scale, p)
		} else {
			towers = append(towers, p)
		}
	}
	j.shard.BackwardSum(l, towers)
	j.shard.SyncGrads(scale)
}

// evaluate scores retrieval between the bench images and their first
// captions.
func (j *Job) evaluate() (map[string]float64, error) {
	var m map[string]float64
	var encErr error
	err := torch.Try(func() {
		torch.NoGrad(func() {
			torch.Scoped(func() {
				caps := make([]string, j.bench.Len())
				idx := make([]int, len(caps))
				for i := range caps {
					caps[i], idx[i] = j.bench.Captions[i][0], i
				}
				lo, n := j.shard.Rows(len(idx))
				idx, caps = idx[lo:lo+n], caps[lo:lo+n] // this rank's rows (all in one process)
				ids, err := j.tok.EncodeBatch(caps, int(j.st.Config.Encoder.Context))
				if err != nil {
					encErr = err
					return
				}
				a, b, c, d := text.Retrieval(j.model.EmbedText(ids), j.model.EmbedImage(j.bench.Images(idx)))
				m = map[string]float64{"t2i_top1": a, "t2i_top5": b, "i2t_top1": c, "i2t_top5": d}
			})
		})
	})
	if err == nil {
		err = encErr
	}
	return m, err
}

// Finish runs after the last step: the probe report in the run folder,
// then, when o.Export is set, the text tower alone (fp16), re-scored from
// the written file (fp16 must not cost quality).
func (j *Job) Finish(run *train.Run) error {
	if err := j.probeReport(run.Path(FileProbe)); err != nil {
		return err
	}
	if j.o.Export == "" {
		return nil
	}
	if err := exportEncoder(j.store, j.st.Config.Encoder, j.tok, j.o.Export); err != nil {
		return err
	}
	fmt.Fprintf(j.out, "wrote %s\n", j.o.Export)
	half, _, err := text.LoadEncoder(j.o.Export, torch.CPU)
	if err != nil {
		return err
	}
	if err := half.UseVocab(j.tok); err != nil {
		return err
	}
	j.model.Text = half
	m, err := j.evaluate()
	if err != nil {
		return err
	}
	fmt.Fprintf(j.out, "fp16 %s: caption→image top-1 %.3f top-5 %.3f, image→caption top-1 %.3f top-5 %.3f\n",
		j.o.Export, m["t2i_top1"], m["t2i_top5"], m["i2t_top1"], m["i2t_top5"])
	return nil
}

// unusedTokenRows marks the tokens that no caption of the photo corpus the
// tokenizer was learned from (Corpus) encodes to: a [vocab,1] mask.
// Adam leaves a row whose gradient is always zero exactly where it was.
func unusedTokenRows(tok text.Vocab, vocab int64) (*torch.Tensor, int, error) {
	used := make([]bool, vocab)
	for _, c := range Corpus(20000) {
		for _, id := range tok.Encode(c) {
			used[id] = true
		}
	}
	sp := tok.Specials()
	for _, id := range []int64{sp.BOS, sp.EOS, sp.Pad} {
		used[id] = true
	}
	mask := make([]float32, vocab)
	n := 0
	for i, u := range used {
		if !u {
			mask[i], n = 1, n+1
		}
	}
	var t *torch.Tensor
	err := torch.Try(func() { t = torch.FromFloat32(mask, vocab, 1) })
	return t, n, err
}

// initTextTower loads an exported encoder (exportEncoder's keys, at the
// root) into the CLIP's text tower; its config must match the run's.
func initTextTower(store *nn.Store, path string, enc text.EncoderConfig, out io.Writer) error {
	src, s, err := text.LoadEncoder(path, torch.CPU)
	if err != nil {
		return fmt.Errorf("--init: %w", err)
	}
	if src.Config != enc {
		return fmt.Errorf("--init %s: encoder config %+v differs from the preset's %+v", path, src.Config, enc)
	}
	if err := store.CopyFrom(s, func(n string) string { return strings.TrimPrefix(n, "text.") }); err != nil {
		return fmt.Errorf("--init %s: %w", path, err)
	}
	fmt.Fprintf(out, "text tower initialised from %s\n", path)
	return nil
}

// exportEncoder writes the text tower alone, keys at the root, fp16.
func exportEncoder(src *nn.Store, enc text.EncoderConfig, tok text.Vocab, path string) error {
	dst := nn.NewStore(torch.CPU, 0)
	text.NewEncoder(dst.Root(), enc)
	if err := dst.CopyFrom(src, func(n string) string { return "text." + n }); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	cfg := map[string]any{"encoder": enc, "tokenizer": "tokenizer.json", "tokenizer_vocab": tok.VocabSize()}
	return dst.Save(path, nn.SaveOptions{Config: cfg, Half: true})
}

// probeReport fits per-attribute linear probes from the pooled text
// embedding of a caption to its face's attributes (train captions → bench
// captions), beside a bag-of-tokens probe (what the words alone carry) and
// the majority guess, and writes the table to path. Data without face
// attributes (a folder lacking them) gets a note instead.
func (j *Job) probeReport(path string) error {
	for _, h := range []*imagebatch.Held{j.trainSet, j.bench} {
		for _, a := range h.Attrs {
			if len(a) != len(synthface.AttributeNames) {
				fmt.Fprintf(j.out, "no probe report: the data lacks the %d face attributes\n", len(synthface.AttributeNames))
				return nil
			}
		}
	}
	trE, trB, trY, err := j.probeFeatures(j.trainSet, 4000)
	if err != nil {
		return err
	}
	teE, teB, teY, err := j.probeFeatures(j.bench, j.bench.Len())
	if err != nil {
		return err
	}
	accE := text.ProbeAccuracy(trE, trY, teE, teY, 1)
	accB := text.ProbeAccuracy(trB, trY, teB, teY, 1)
	var sb strings.Builder
	fmt.Fprintf(&sb, "linear probes, first caption → face attribute (train %d captions, bench %d)\n", len(trE), len(teE))
	fmt.Fprintf(&sb, "%-22s %8s %8s %8s\n", "attribute", "encoder", "tokens", "majority")
	type row struct {
		name       string
		e, b, base float64
	}
	var rows []row
	var sumE, sumB, sumM float64
	for k, name := range synthface.AttributeNames {
		pos := 0.0
		for _, y := range teY {
			pos += y[k]
		}
		base := math.Max(pos, float64(len(teY))-pos) / float64(len(teY))
		rows = append(rows, row{name, accE[k], accB[k], base})
		sumE, sumB, sumM = sumE+accE[k], sumB+accB[k], sumM+base
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].b-rows[i].base > rows[j].b-rows[j].base })
	for _, r := range rows {
		fmt.Fprintf(&sb, "%-22s %8.3f %8.3f %8.3f\n", r.name, r.e, r.b, r.base)
	}
	n := float64(len(rows))
	fmt.Fprintf(&sb, "%-22s %8.3f %8.3f %8.3f\n", "mean", sumE/n, sumB/n, sumM/n)
	fmt.Fprint(j.out, sb.String())
	return imageio.WriteAtomic(path, []byte(sb.String()))
}

// probeFeatures returns, for the first captions of the first n pairs of
// p, the pooled text embedding, the bag of tokens and the attributes.
func (j *Job) probeFeatures(p *imagebatch.Held, n int) (emb, bow, y [][]float64, err error) {
	n = min(n, p.Len())
	var encErr error
	err = torch.Try(func() {
		torch.NoGrad(func() {
			for lo := 0; lo < n && encErr == nil; lo += 256 {
				torch.Scoped(func() {
					hi := min(lo+256, n)
					caps := make([]string, 0, hi-lo)
					for i := lo; i < hi; i++ {
						caps = append(caps, p.Captions[i][0])
					}
					ids, e := j.tok.EncodeBatch(caps, int(j.st.Config.Encoder.Context))
					if e != nil {
						encErr = e
						return
					}
					h := j.model.Text.Forward(ids)
					pooled := j.model.Text.Pooled(ids, h)
					w := int(pooled.Size(1))
					v := pooled.Float32s()
					for r := 0; r < hi-lo; r++ {
						row := make([]float64, w)
						for k := range row {
							row[k] = float64(v[r*w+k])
						}
						emb = append(emb, row)
						b := make([]float64, j.tok.VocabSize())
						for _, id := range j.tok.Encode(caps[r]) {
							b[id] = 1
						}
						bow = append(bow, b)
						y = append(y, p.Attrs[lo+r])
					}
				})
			}
		})
	})
	if err == nil {
		err = encErr
	}
	return emb, bow, y, err
}
