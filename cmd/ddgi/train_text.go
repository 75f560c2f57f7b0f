package main

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"ddgi/data"
	prog "ddgi/internal/progress"
	"ddgi/train"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/synthface"
	"ddgi/text"
	"ddgi/torch"
)

func init() {
	registerIn("train", command{name: "tokenizer", summary: "learn the BPE caption vocabulary (weights/tokenizer.json)", run: runTrainTokenizer})
	registerIn("train", command{name: "text", summary: "train the text encoder contrastively (CLIP-style) on SynthFace; resumable", run: runTrainText})
}

func runTrainTokenizer(args []string) error {
	fs := newFlags("train tokenizer", "[flags]")
	out := fs.String("out", "weights/tokenizer.json", "vocabulary file to write")
	n := fs.Int("samples", 20000, "SynthFace training seeds whose captions form the corpus")
	vocab := fs.Int("vocab", 1024, "target vocabulary size (4 specials + 256 bytes + merges)")
	minCount := fs.Int("min-count", 5, "stop merging when the best pair occurs fewer times")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	corpus := text.Corpus(*n)
	tok, err := text.LearnBPE(corpus, *vocab, *minCount)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := tok.Save(*out); err != nil {
		return err
	}
	var tokens, words int
	for _, s := range corpus {
		tokens += len(tok.Encode(s))
		words += len(strings.Fields(s))
	}
	fmt.Printf("%d captions → vocabulary of %d tokens in %s (%.2f tokens per word)\n", len(corpus), tok.VocabSize(), *out, float64(tokens)/float64(words))
	return nil
}

// textState is state.json of a text-encoder run.
type textState struct {
	Step   int64           `json:"step"`
	Seed   uint64          `json:"seed"`
	Config text.CLIPConfig `json:"config"`
	// Fine-tuning: the exported encoder the text tower started from, and
	// which of its weights train (all or new-tokens).
	Init string `json:"init,omitempty"`
	Tune string `json:"tune,omitempty"`
	// Share of pairs drawn as artworks, and their styles.
	ArtProb float64  `json:"art_prob,omitempty"`
	Arts    []string `json:"arts,omitempty"`
}

// pairs is a rendered image/caption set held as uint8 NCHW.
type pairs struct {
	images   []uint8 // N×3×S×S
	captions [][]string
	attrs    [][]float64
	size     int
}

func renderPairs(split data.Split, n, size, workers int, label string) (*pairs, error) {
	return renderArtPairs(data.NewSynthFace(split, size, n), n, size, workers, label)
}

// renderArtPairs renders the first n samples of ds (which may mix in
// artworks, data.NewSynthFaceArt).
func renderArtPairs(ds data.Dataset, n, size, workers int, label string) (*pairs, error) {
	p := &pairs{images: make([]uint8, n*3*size*size), captions: make([][]string, n), attrs: make([][]float64, n), size: size}
	bar := prog.New(label, 0, int64(n), "img")
	var next, done int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < max(workers, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := int(next)
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				s, err := ds.Get(i)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				done++
				bar.Set(done, nil)
				mu.Unlock()
				if err != nil {
					return
				}
				hw := size * size
				for k := 0; k < hw; k++ {
					for c := 0; c < 3; c++ {
						p.images[i*3*hw+c*hw+k] = s.Image[3*k+c]
					}
				}
				p.captions[i] = s.Captions
				a := make([]float64, len(s.Attrs))
				for k, v := range s.Attrs {
					a[k] = float64(v)
				}
				p.attrs[i] = a
			}
		}()
	}
	wg.Wait()
	bar.Finish()
	return p, firstErr
}

// renderSplits renders the training pairs and the SynthFace-bench pairs.
func renderSplits(nTrain, nBench, size, workers int) (trainSet, bench *pairs, err error) {
	if trainSet, err = renderPairs(data.Train, nTrain, size, workers, "render trainSet"); err != nil {
		return nil, nil, err
	}
	bench, err = renderPairs(data.Bench, nBench, size, workers, "render bench")
	return trainSet, bench, err
}

// batch returns images idx as float [B,3,S,S] in [-1,1].
func (p *pairs) batch(idx []int) *torch.Tensor {
	m := 3 * p.size * p.size
	buf := make([]uint8, 0, len(idx)*m)
	for _, i := range idx {
		buf = append(buf, p.images[i*m:(i+1)*m]...)
	}
	s := int64(p.size)
	return torch.FromUint8(buf, int64(len(idx)), 3, s, s).To(torch.Float32).DivScalar(127.5).SubScalar(1)
}

func runTrainText(args []string) error {
	fs := newFlags("train text", "[flags]")
	preset := fs.String("preset", "small64", "text encoder preset: tiny or small64")
	out := fs.String("out", "runs/text", "run folder (resumes when it holds a checkpoint)")
	tokPath := fs.String("tokenizer", "weights/tokenizer.json", "vocabulary from `ddgi trainSet tokenizer`, or a CLIP tokenizer (folder with vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz)")
	steps := fs.Int64("steps", 3000, "optimizer steps")
	batchSize := fs.Int("batch", 128, "image/caption pairs per step (the contrastive negatives)")
	lr := fs.Float64("lr", 1e-3, "peak learning rate (AdamW, warm-up then cosine)")
	nTrain := fs.Int("n", 8000, "SynthFace training samples rendered once and held in memory")
	nBench := fs.Int("bench", 256, "SynthFace-bench pairs for retrieval accuracy")
	size := fs.Int("size", 64, "image side")
	embed := fs.Int64("embed", 128, "shared embedding width")
	widths := fs.String("image-widths", "16,32,64,128", "image tower widths, one stride-2 level each")
	evalEvery := fs.Int64("eval-every", 500, "steps between bench retrieval evaluations")
	ckptMin := fs.Float64("ckpt-minutes", 3, "minutes between checkpoints")
	seed := fs.Uint64("seed", 1, "initialisation and sampling seed")
	export := fs.String("export", "", "also write the text encoder alone here at the end (fp16), e.g. weights/text_small64.safetensors")
	workers := fs.Int("workers", 2, "render workers")
	initFrom := fs.String("init", "", "start the text tower from this exported encoder (e.g. weights/text_small64.safetensors) instead of random weights; the image tower starts fresh")
	tune := fs.String("tune", "all", "text-tower weights the optimizer moves: all, or new-tokens (only the embeddings of tokens no photo caption uses, e.g. style words: photo captions keep their exact encoding)")
	artF := addArtFlags(fs, "share of training and bench pairs drawn as artworks with style-naming captions (style transfer, paper Sec. 4.4); kept in state.json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *tune != "all" && *tune != "new-tokens" {
		return fmt.Errorf("--tune %q: want all or new-tokens", *tune)
	}
	if *tune == "new-tokens" && *initFrom == "" {
		return errors.New("--tune new-tokens needs --init (new words behind a frozen random tower learn nothing useful)")
	}
	artProb, arts, err := artF.parse()
	if err != nil {
		return err
	}
	enc, err := text.EncoderPreset(*preset)
	if err != nil {
		return err
	}
	tok, err := text.LoadVocab(*tokPath)
	if err != nil {
		return err
	}
	if int64(tok.VocabSize()) > enc.Vocab {
		return fmt.Errorf("tokenizer has %d tokens, preset %s embeds only %d", tok.VocabSize(), *preset, enc.Vocab)
	}
	var iw []int64
	for _, f := range strings.Split(*widths, ",") {
		var w int64
		if _, err := fmt.Sscan(f, &w); err != nil || w < 4 {
			return fmt.Errorf("--image-widths %q: want positive integers", *widths)
		}
		iw = append(iw, w)
	}
	if *batchSize < 2 || *nTrain < *batchSize || *nBench < 5 || *nBench > data.BenchSize {
		return errors.New("need --batch ≥ 2, --n ≥ --batch, 5 ≤ --bench ≤ 2000")
	}
	run, err := train.Open(*out)
	if err != nil {
		return err
	}
	st := textState{Seed: *seed, Config: text.CLIPConfig{Encoder: enc, ImageWidths: iw, Embed: *embed}, Init: *initFrom, Tune: *tune}
	if artProb > 0 {
		st.ArtProb, st.Arts = artProb, artNames(arts)
	}
	resumed, err := run.LoadState(&st)
	if err != nil {
		return err
	}
	if resumed && (st.Init != *initFrom || st.Tune != *tune) {
		return fmt.Errorf("%s was started with --init %q --tune %s; resume it with the same flags", *out, st.Init, st.Tune)
	}
	if st.ArtProb > 0 {
		if arts, err = synthface.ParseArts(strings.Join(st.Arts, ",")); err != nil {
			return fmt.Errorf("%s/state.json: %w", *out, err)
		}
	}
	store := nn.NewStore(torch.CPU, st.Seed)
	var model *text.CLIP
	if err := torch.Try(func() { model = text.NewCLIP(store.Root(), st.Config) }); err != nil {
		return err
	}
	if err := model.Text.UseVocab(tok); err != nil {
		return err
	}
	// An embeddings-only fine-tune keeps the encoder's space: no weight
	// decay, which would shrink every trained token's embedding.
	wd := 0.1
	if st.Tune == "new-tokens" {
		wd = 0
	}
	opt := optim.NewAdam(optim.AdamConfig{LR: *lr, Beta1: 0.9, Beta2: 0.98, Eps: 1e-6, WeightDecay: wd, Decoupled: true})
	// Retrieval rows go to their own log: a run's plot needs uniform rows.
	evalRun, err := train.Open(run.Path("eval"))
	if err != nil {
		return err
	}
	if resumed {
		if err := loadCheckpoint(run, store, opt, st.Step); err != nil {
			return err
		}
		if err := evalRun.TruncateLog(st.Step); err != nil {
			return err
		}
	} else if st.Init != "" {
		if err := initTextTower(store, st.Init, enc); err != nil {
			return err
		}
	}
	var newRows *torch.Tensor // [Vocab,1]: 1 for tokens no photo caption uses
	if st.Tune == "new-tokens" {
		store.Freeze("text")
		store.Unfreeze("text.embeddings.token_embedding")
		var n int
		if newRows, n, err = unusedTokenRows(tok, enc.Vocab); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "tuning the embeddings of %d of %d tokens (those no photo caption uses)\n", n, enc.Vocab)
	}
	fmt.Fprintf(os.Stderr, "text encoder %s: %d parameters (with image tower and projections)\n", *preset, store.NumParams())
	var trainSet, bench *pairs
	if st.ArtProb > 0 {
		fmt.Fprintf(os.Stderr, "artworks: %.0f%% of training and bench pairs, styles %v\n", 100*st.ArtProb, arts)
		if trainSet, err = renderArtPairs(data.NewSynthFaceArt(data.Train, *size, *nTrain, st.ArtProb, arts), *nTrain, *size, *workers, "render trainSet"); err == nil {
			bench, err = renderArtPairs(data.NewSynthFaceArt(data.Bench, *size, *nBench, st.ArtProb, arts), *nBench, *size, *workers, "render bench")
		}
	} else {
		trainSet, bench, err = renderSplits(*nTrain, *nBench, *size, *workers)
	}
	if err != nil {
		return err
	}
	ctx := int(enc.Context)
	save := func() error { return saveCheckpoint(run, store, opt, st.Config, st, "text encoder (contrastive)") }
	evaluate := func() (map[string]float64, error) {
		var m map[string]float64
		err := torch.Try(func() {
			torch.NoGrad(func() {
				torch.Scoped(func() {
					caps := make([]string, len(bench.captions))
					idx := make([]int, len(caps))
					for i := range caps {
						caps[i], idx[i] = bench.captions[i][0], i
					}
					ids, err := tok.EncodeBatch(caps, ctx)
					if err != nil {
						panic(&torch.Error{Op: "eval", Msg: err.Error()})
					}
					a, b, c, d := text.Retrieval(model.EmbedText(ids), model.EmbedImage(bench.batch(idx)))
					m = map[string]float64{"t2i_top1": a, "t2i_top5": b, "i2t_top1": c, "i2t_top5": d}
				})
			})
		})
		return m, err
	}
	var rng *rand.Rand
	warm := int64(200)
	bar := prog.New("train text", st.Step, *steps, "step")
	ckpt := train.NewCheckpointer(time.Duration(*ckptMin * float64(time.Minute)))
	var lossAvg float64
	for st.Step < *steps {
		// The sampling stream is a function of the step, so a resumed run draws
		// what the uninterrupted one would have.
		rng = rand.New(rand.NewPCG(st.Seed, uint64(st.Step)))
		idx := rng.Perm(len(trainSet.captions))[:*batchSize]
		caps := make([]string, len(idx))
		for k, i := range idx {
			c := trainSet.captions[i]
			caps[k] = c[rng.IntN(len(c))]
		}
		ids, err := tok.EncodeBatch(caps, ctx)
		if err != nil {
			return err
		}
		frac := float64(st.Step) / float64(*steps)
		cur := *lr * 0.5 * (1 + math.Cos(math.Pi*frac))
		if st.Step < warm {
			cur = *lr * float64(st.Step+1) / float64(warm)
		}
		opt.SetLR(cur)
		var loss, scale float64
		err = torch.Try(func() {
			torch.Scoped(func() {
				txt, img := model.Embed(ids, trainSet.batch(idx))
				l := text.ContrastiveLoss(txt, img, model.LogitScale)
				l.Backward()
				if newRows != nil {
					g := store.Get("text.embeddings.token_embedding.weight").Grad()
					g.CopyIn(g.Mul(newRows))
				}
				optim.ClipGradNorm(store.Trainable(), 1)
				opt.Update(store.Trainable())
				loss, scale = l.Item(), math.Exp(model.LogitScale.Item())
			})
		})
		if err != nil {
			return err
		}
		st.Step++
		if lossAvg == 0 {
			lossAvg = loss
		}
		lossAvg = 0.95*lossAvg + 0.05*loss
		fields := map[string]float64{"loss": lossAvg, "scale": scale}
		if st.Step%20 == 0 {
			rec := map[string]float64{"loss": loss}
			if err := run.Log(st.Step, rec); err != nil {
				return err
			}
		}
		if st.Step%*evalEvery == 0 || st.Step == *steps {
			m, err := evaluate()
			if err != nil {
				return err
			}
			m["logit_scale"] = scale
			if err := evalRun.Log(st.Step, m); err != nil {
				return err
			}
			_ = evalRun.PlotLosses("bench retrieval")
			fmt.Fprintf(os.Stderr, "\nstep %d bench retrieval (%d pairs): caption→image top-1 %.3f top-5 %.3f, image→caption top-1 %.3f top-5 %.3f\n",
				st.Step, *nBench, m["t2i_top1"], m["t2i_top5"], m["i2t_top1"], m["i2t_top5"])
			for k, v := range m {
				fields[k] = v
			}
		}
		bar.Set(st.Step, fields)
		if err := ckpt.MaybeSave(st.Step == *steps, save); err != nil {
			return err
		}
	}
	bar.Finish()
	if err := save(); err != nil {
		return err
	}
	if err := probeReport(model, tok, trainSet, bench, ctx, run.Path("probe.txt")); err != nil {
		return err
	}
	if *export == "" {
		return nil
	}
	if err := exportEncoder(store, enc, tok, *export); err != nil {
		return err
	}
	// fp16 must not cost quality: the re-loaded tower in the CLIP, re-scored.
	half, _, err := text.LoadEncoder(*export, torch.CPU)
	if err != nil {
		return err
	}
	if err := half.UseVocab(tok); err != nil {
		return err
	}
	model.Text = half
	m, err := evaluate()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "fp16 %s: caption→image top-1 %.3f top-5 %.3f, image→caption top-1 %.3f top-5 %.3f\n",
		*export, m["t2i_top1"], m["t2i_top5"], m["i2t_top1"], m["i2t_top5"])
	return nil
}

// unusedTokenRows marks the tokens that no caption of the photo corpus the
// tokenizer was learned from (text.Corpus) encodes to: a [vocab,1] mask.
// Adam leaves a row whose gradient is always zero exactly where it was.
func unusedTokenRows(tok text.Vocab, vocab int64) (*torch.Tensor, int, error) {
	used := make([]bool, vocab)
	for _, c := range text.Corpus(20000) {
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
// root) into the CLIP's text tower; its config must match the preset's.
func initTextTower(store *nn.Store, path string, enc text.EncoderConfig) error {
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
	fmt.Fprintf(os.Stderr, "text tower initialised from %s\n", path)
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
	if err := dst.Save(path, nn.SaveOptions{Config: cfg, Half: true}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", path)
	return nil
}

// probeReport fits per-attribute linear probes from the pooled text
// embedding of a caption to its face's attributes (train captions → bench
// captions), beside a bag-of-tokens probe (what the words alone carry) and
// the majority guess, and writes the table to path.
func probeReport(model *text.CLIP, tok text.Vocab, trainSet, bench *pairs, ctx int, path string) error {
	feats := func(p *pairs, n int) (emb, bow, y [][]float64, err error) {
		n = min(n, len(p.captions))
		err = torch.Try(func() {
			torch.NoGrad(func() {
				for lo := 0; lo < n; lo += 256 {
					torch.Scoped(func() {
						hi := min(lo+256, n)
						caps := make([]string, 0, hi-lo)
						for i := lo; i < hi; i++ {
							caps = append(caps, p.captions[i][0])
						}
						ids, e := tok.EncodeBatch(caps, ctx)
						if e != nil {
							panic(&torch.Error{Op: "probe", Msg: e.Error()})
						}
						h := model.Text.Forward(ids)
						pooled := model.Text.Pooled(ids, h)
						w := int(pooled.Size(1))
						v := pooled.Float32s()
						for r := 0; r < hi-lo; r++ {
							row := make([]float64, w)
							for k := range row {
								row[k] = float64(v[r*w+k])
							}
							emb = append(emb, row)
							b := make([]float64, tok.VocabSize())
							for _, id := range tok.Encode(caps[r]) {
								b[id] = 1
							}
							bow = append(bow, b)
							y = append(y, p.attrs[lo+r])
						}
					})
				}
			})
		})
		return
	}
	trE, trB, trY, err := feats(trainSet, 4000)
	if err != nil {
		return err
	}
	teE, teB, teY, err := feats(bench, len(bench.captions))
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
	fmt.Fprint(os.Stderr, sb.String())
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}
