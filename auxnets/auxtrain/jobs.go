package auxtrain

import (
	"fmt"
	"math"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/imagebatch"
	"ddgi/metrics"
	"ddgi/nn"
	"ddgi/optim"
	"ddgi/synthface"
	"ddgi/torch"
	"ddgi/train"
)

func newJob(c auxnets.Config, o Options) (job, error) {
	adam := optim.NewAdam(optim.DefaultAdam(o.LR))
	seed := uint64(o.Seed)
	switch c.Net {
	case auxnets.NetParser:
		p := auxnets.NewParser(c, seed)
		return &parserJob{base: base{p.Store, c, adam, o.LR}, net: p}, nil
	case auxnets.NetAttributes, auxnets.NetFID:
		m := auxnets.NewClassifier(c, seed)
		return &classifierJob{base: base{m.Store, c, adam, o.LR}, net: m, balance: o.Balance}, nil
	case auxnets.NetArt:
		m := auxnets.NewClassifier(c, seed)
		return &artJob{base: base{m.Store, c, adam, o.LR}, net: m}, nil
	case auxnets.NetIdentity:
		r := auxnets.NewIdentity(c, seed)
		per := max(o.PerIdentity, 1)
		// The last person may have fewer renders than per.
		classes := int64((o.Samples + per - 1) / per)
		if classes < 2 {
			return nil, fmt.Errorf("identity: %d samples at %d per person make %d person; ArcFace needs at least 2 (raise --samples or lower --per-identity)", o.Samples, per, classes)
		}
		head := nn.NewStore(torch.CPU, seed+1)
		return &identityJob{net: r, headStore: head, head: auxnets.NewArcFace(head.Root().Sub("arcface"), classes, c.EmbedDim), adam: adam, lr: o.LR, per: per, margin: o.Margin}, nil
	case auxnets.NetPerceptual:
		if o.Backbone == "" {
			return nil, fmt.Errorf("perceptual: --backbone (attribute weights) is required")
		}
		src, err := auxnets.LoadClassifier(o.Backbone, auxnets.NetAttributes, torch.CPU)
		if err != nil {
			return nil, err
		}
		c.Width = src.Config.Width
		f := auxnets.NewPerceptual(c, seed)
		if err := f.CopyBackbone(src); err != nil {
			return nil, err
		}
		return &perceptualJob{base: base{f.Store, c, adam, o.LR}, net: f}, nil
	}
	return nil, fmt.Errorf("unknown net %q", c.Net)
}

// base is the part of a job with one store, shipped whole.
type base struct {
	store *nn.Store
	cfg   auxnets.Config
	adam  *optim.Adam
	lr    float64
}

func (b *base) stores() map[string]*nn.Store      { return map[string]*nn.Store{"model": b.store} }
func (b *base) opt() *optim.Adam                  { return b.adam }
func (b *base) ship() (*nn.Store, auxnets.Config) { return b.store, b.cfg }
func (b *base) dataset(o Options) data.Dataset {
	return data.NewSynthFace(data.Train, auxnets.InputSize, o.Samples)
}

// renderBench loads the parser's and classifiers' evaluation set: o.Bench
// (its samples must hold the labels scored), or EvalSamples of
// SynthFace-bench.
func renderBench(o Options) ([]*data.Sample, error) {
	if o.Bench == nil {
		return renderAll(data.NewSynthFace(data.Bench, auxnets.InputSize, o.EvalSamples), o.Workers, o.Quiet, "render bench")
	}
	bench, err := renderAll(o.Bench, o.Workers, o.Quiet, "read held-out samples")
	if err == nil && len(bench) < 2 {
		err = fmt.Errorf("%d held-out samples; --val needs at least 2", len(bench))
	}
	if err == nil {
		err = checkLabels(o.Net, bench)
	}
	if err != nil {
		return nil, fmt.Errorf("evaluation: %w", err)
	}
	return bench, nil
}

// ---- parser ----

type parserJob struct {
	base
	net *auxnets.Parser
}

func (j *parserJob) step(ss []*data.Sample, _ []int, g *torch.Generator, frac float64, sh train.Shard) float64 {
	x, rows := rankRows(auxnets.Augment(imagebatch.SampleImages(ss), g, true), ss, sh)
	loss := auxnets.ParserLoss(j.net.Logits(x), imagebatch.SampleMasks(rows))
	sh.Backward(loss, j.net.Store.Trainable())
	update(j.adam, j.net.Store, j.lr, frac)
	return loss.Item()
}

// rankRows narrows a batch's augmented images x and its samples ss to the
// rows sh owns.
func rankRows(x *torch.Tensor, ss []*data.Sample, sh train.Shard) (*torch.Tensor, []*data.Sample) {
	lo, n := sh.Rows(len(ss))
	return x.Narrow(0, int64(lo), int64(n)), ss[lo : lo+n]
}

func (j *parserJob) eval(o Options) (Result, error) {
	bench, err := renderBench(o)
	if err != nil {
		return nil, err
	}
	clean, degraded := metrics.NewConfusion(synthface.NumClasses), metrics.NewConfusion(synthface.NumClasses)
	g := torch.NewGenerator(7)
	inBatches(bench, 64, func(_ int, b []*data.Sample) {
		x, m := imagebatch.SampleImages(b), imagebatch.SampleMasks(b).Int64s()
		must(clean.Add(j.net.Parse(x).Int64s(), m))
		must(degraded.Add(j.net.Parse(auxnets.Augment(x, g, true)).Int64s(), m))
	})
	res := Result{"bench_miou": clean.MeanIoU(), "bench_acc": clean.PixelAccuracy(),
		"bench_miou_augmented": degraded.MeanIoU(), "bench_acc_augmented": degraded.PixelAccuracy()}
	for c, v := range clean.IoU() {
		res["iou_"+synthface.Classes[c]] = v
	}
	return res, nil
}

func must(err error) {
	if err != nil {
		panic(&torch.Error{Op: "eval", Msg: err.Error()})
	}
}

// ---- attribute and FID classifiers ----

type classifierJob struct {
	base
	net       *auxnets.Classifier
	balance   bool
	posWeight *torch.Tensor
}

// setCache measures each attribute's frequency for the balanced loss.
func (j *classifierJob) setCache(c []*data.Sample) {
	if !j.balance {
		return
	}
	freq := make([]float64, auxnets.NumAttributes)
	for _, s := range c {
		for a, v := range s.Attrs {
			freq[a] += float64(v) / float64(len(c))
		}
	}
	j.posWeight = auxnets.PosWeights(freq, j.net.Config.Outputs())
	torch.Persist(j.posWeight)
}

// ClassifierTargets are the attribute bits and, with areas, the mask's
// class fractions.
func ClassifierTargets(ss []*data.Sample, areas bool) *torch.Tensor {
	k := len(ss[0].Attrs)
	w := k
	if areas {
		w += synthface.NumClasses
	}
	v := make([]float32, len(ss)*w)
	for i, s := range ss {
		copy(v[i*w:], s.Attrs)
		if areas {
			inv := 1 / float32(len(s.Mask))
			for _, l := range s.Mask {
				v[i*w+k+int(l)] += inv
			}
		}
	}
	return torch.FromFloat32(v, int64(len(ss)), int64(w))
}

func (j *classifierJob) step(ss []*data.Sample, _ []int, g *torch.Generator, frac float64, sh train.Shard) float64 {
	x, rows := rankRows(auxnets.Augment(imagebatch.SampleImages(ss), g, false), ss, sh)
	loss := auxnets.ClassifierLoss(j.net.Logits(x), ClassifierTargets(rows, j.net.Config.Areas), j.posWeight)
	sh.Backward(loss, j.net.Store.Trainable())
	update(j.adam, j.net.Store, j.lr, frac)
	return loss.Item()
}

func (j *classifierJob) eval(o Options) (Result, error) {
	bench, err := renderBench(o)
	if err != nil {
		return nil, err
	}
	k := int(auxnets.NumAttributes)
	hits := make([]float64, k)
	pos := make([]float64, k)
	var mentions, mentionHits float64
	var feats [][]float64
	inBatches(bench, 64, func(_ int, b []*data.Sample) {
		x := imagebatch.SampleImages(b)
		p := j.net.AttributeProbs(x).Float32s()
		for i, s := range b {
			for a := 0; a < k; a++ {
				if (p[i*k+a] > 0.5) == (s.Attrs[a] > 0.5) {
					hits[a]++
				}
				pos[a] += float64(s.Attrs[a])
			}
			for _, c := range s.Captions {
				ms := synthface.CaptionAttributes(c)
				mentions += float64(len(ms))
				mentionHits += metrics.MentionHits(p[i*k:(i+1)*k], ms)
			}
		}
		feats = append(feats, metrics.Rows(j.net.Features(x))...)
	})
	n := float64(len(bench))
	res := Result{}
	if mentions > 0 { // a folder may have no captions
		res["caption_attr_acc"] = mentionHits / mentions
	}
	var mean, majority float64
	for a, name := range synthface.AttributeNames {
		res["acc_"+name] = hits[a] / n
		mean += hits[a] / n / float64(k)
		majority += math.Max(pos[a]/n, 1-pos[a]/n) / float64(k)
	}
	res["mean_attr_acc"], res["majority_baseline_acc"] = mean, majority
	h := len(feats) / 2
	res["fid_bench_half_vs_half"] = metrics.FID(feats[:h], feats[h:])
	return res, nil
}

// ---- identity ----

type identityJob struct {
	net       *auxnets.Identity
	headStore *nn.Store
	head      *auxnets.ArcFace
	adam      *optim.Adam
	lr        float64
	per       int
	margin    float64
}

func (j *identityJob) stores() map[string]*nn.Store {
	return map[string]*nn.Store{"model": j.net.Store, "head": j.headStore}
}
func (j *identityJob) opt() *optim.Adam { return j.adam }
func (j *identityJob) ship() (*nn.Store, auxnets.Config) {
	return j.net.Store, j.net.Config
}
func (j *identityJob) dataset(o Options) data.Dataset {
	return data.NewSynthFaceIdentities(data.Train, auxnets.InputSize, o.Samples, j.per)
}

// arcMargin ramps ArcFace's margin from 0 to m over the first 40% so the
// small net converges from scratch.
func arcMargin(m, frac float64) float64 { return m * math.Min(1, frac/0.4) }

// step embeds the rank's rows, then normalises and scores the gathered
// whole batch on every rank: the batch norm's statistics and the ArcFace
// loss are those of one process. Each rank's backward reaches the net only
// through its own rows, so the net's gradients are summed over the ranks;
// the head sees every row on every rank, so its gradients are averaged.
func (j *identityJob) step(ss []*data.Sample, idx []int, g *torch.Generator, frac float64, sh train.Shard) float64 {
	lab := make([]int64, len(idx))
	for i, k := range idx {
		lab[i] = int64(k / j.per)
	}
	x, _ := rankRows(auxnets.Augment(imagebatch.SampleImages(ss), g, true), ss, sh)
	j.net.Training = true
	defer func() { j.net.Training = false }()
	emb := j.net.Normalize(sh.Gather(j.net.Features(x)))
	loss := j.head.Loss(emb, torch.FromInt64(lab, int64(len(lab))), arcMargin(j.margin, frac))
	loss.Backward()
	sh.SumGrads(j.net.Store.Trainable())
	sh.SyncGrads(j.headStore.Trainable())
	j.adam.SetLR(lrAt(j.lr, frac))
	torch.NoGrad(func() { j.adam.Update(append(j.net.Store.Trainable(), j.headStore.Trainable()...)) })
	return loss.Item()
}

// eval verifies held-out SynthFace-bench people: every same-person pair and
// as many random different-person pairs; threshold chosen on one half of
// the people and applied to the other (and vice versa).
func (j *identityJob) eval(o Options) (Result, error) {
	const per = 4
	people := max(o.EvalSamples/per, 4)
	bench, err := renderAll(data.NewSynthFaceIdentities(data.Bench, auxnets.InputSize, people*per, per), o.Workers, o.Quiet, "render bench")
	if err != nil {
		return nil, err
	}
	emb := make([][]float64, 0, len(bench))
	inBatches(bench, 64, func(_ int, b []*data.Sample) {
		emb = append(emb, metrics.Rows(j.net.Embed(imagebatch.SampleImages(b)))...)
	})
	scores, same, half := VerificationPairs(emb, per, 1)
	var a, b []int
	for i := range scores {
		if half[i] == 0 {
			a = append(a, i)
		} else {
			b = append(b, i)
		}
	}
	sub := func(ix []int) ([]float64, []bool) {
		s, p := make([]float64, len(ix)), make([]bool, len(ix))
		for k, i := range ix {
			s[k], p[k] = scores[i], same[i]
		}
		return s, p
	}
	sa, pa := sub(a)
	sb, pb := sub(b)
	ta, _ := metrics.BestThreshold(sa, pa)
	tb, _ := metrics.BestThreshold(sb, pb)
	acc := (metrics.Accuracy(sb, pb, ta)*float64(len(sb)) + metrics.Accuracy(sa, pa, tb)*float64(len(sa))) / float64(len(scores))
	return Result{"verification_acc": acc, "roc_auc": metrics.ROCAUC(scores, same),
		"tar_at_far_1e-2": metrics.TARAtFAR(scores, same, 1e-2), "people": float64(people), "pairs": float64(len(scores))}, nil
}

// VerificationPairs scores all same-person pairs of embeddings grouped per
// consecutive rows and an equal number of different-person pairs (seeded);
// half says which half of the people a pair belongs to.
func VerificationPairs(emb [][]float64, per int, seed uint64) (scores []float64, same []bool, half []int) {
	people := len(emb) / per
	cos := func(a, b []float64) float64 {
		var s float64
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	for p := 0; p < people; p++ {
		for i := 0; i < per; i++ {
			for k := i + 1; k < per; k++ {
				scores = append(scores, cos(emb[p*per+i], emb[p*per+k]))
				same = append(same, true)
				half = append(half, p%2)
			}
		}
	}
	nPos := len(scores)
	x := seed*0x9e3779b97f4a7c15 + 1
	next := func(n int) int { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return int(x % uint64(n)) }
	for len(scores) < 2*nPos {
		p := next(people)
		q := p%2 + 2*next((people-p%2+1)/2) // a person in the same half
		if q >= people || q == p {
			continue
		}
		scores = append(scores, cos(emb[p*per+next(per)], emb[q*per+next(per)]))
		same = append(same, false)
		half = append(half, p%2)
	}
	return scores, same, half
}
