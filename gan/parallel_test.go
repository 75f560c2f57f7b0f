package gan

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"ddgi/dist/disttest"
	"ddgi/gan/eg3d"
	"ddgi/gan/stylegan2"
	"ddgi/synthface"
	"ddgi/torch"
	"ddgi/train"
)

// The ranks of TestTwoRanksTrainGANsLikeOneProcess are this test binary
// run again (disttest.Main).
func TestMain(m *testing.M) { disttest.Main(m, parallelTrain) }

// parallelOpts trains 6 steps of a global batch of 4, so every branch runs:
// R1 and path length every 2 steps, style mixing, EG3D's pose swap.
func parallelOpts(group train.Group) (sg2, e3 Opts) {
	c := stylegan2.Presets["tiny"]
	sg2 = Opts{Resolution: c.Resolution, Batch: 4, LR: c.LR, R1Gamma: c.R1Gamma, R1Interval: 2, StyleMixing: 0.9,
		EMAKimg: c.EMAKimg, EMARampup: c.EMARampup, PLWeight: 2, PLInterval: 2, DataN: 16, Seed: 3, Kimg: 0.024,
		Quiet: true, Group: group}
	bb := eg3d.Presets["tiny"].Backbone
	e3 = Opts{Resolution: eg3d.Presets["tiny"].ImgRes, Batch: 4, LR: bb.LR, R1Gamma: bb.R1Gamma, R1Interval: 2,
		StyleMixing: 0.9, EMAKimg: bb.EMAKimg, DataN: 16, Seed: 3, Kimg: 0.024, PoseSwap: 0.5, YawSpread: 0.5,
		Quiet: true, Group: group}
	return sg2, e3
}

// parallelTrain trains a tiny StyleGAN2 and a tiny EG3D in dir as one rank
// of group (nil: one process) and returns G, D and G_ema of both.
func parallelTrain(dir string, group train.Group) ([]float32, error) {
	torch.SetThreads(1)
	sg2, e3 := parallelOpts(group)
	p, err := stylegan2.NewPair(stylegan2.Presets["tiny"], 1)
	if err != nil {
		return nil, err
	}
	if err := Train(context.Background(), filepath.Join(dir, "stylegan2"), p, sg2); err != nil {
		return nil, err
	}
	e, err := eg3d.NewPair(eg3d.Presets["tiny"], synthface.DefaultOrbit, 1)
	if err != nil {
		return nil, err
	}
	if err := Train(context.Background(), filepath.Join(dir, "eg3d"), e, e3); err != nil {
		return nil, err
	}
	g, d, ema := p.Stores()
	eg, ed, eema := e.Stores()
	return disttest.Weights(g, d, ema, eg, ed, eema), nil
}

// Two ranks of 2 rows each over loopback Gloo train both GANs as one
// process with batches of 4 does: every random number (latents, mixing,
// cameras, noise maps, ray jitter, path-length directions) is drawn for the
// whole batch, each rank keeps every second row so D's minibatch-stddev
// groups stay whole, gradients, w̄ and the path-length mean are averaged.
// G and G_ema end within 1.4e-6; D within 8.5e-5, all of it from the first
// R1 step: a few of D's weights get gradients at float-noise level (~1e-8,
// the ranks' sums differ from one process's in the last bits), which Adam
// with β₁ = 0 turns into steps of up to ±lr (2e-3). Without the gradient
// all-reduce of D's gradients the weights differ by 2.5e-2.
func TestTwoRanksTrainGANsLikeOneProcess(t *testing.T) {
	disttest.CheckLikeOneProcess(t, parallelTrain, 2, 2e-4)
}

// A batch whose minibatch-stddev groups would straddle the ranks is refused
// before training, with the batch that works.
func TestDistributeRefusesSplitGroups(t *testing.T) {
	p := tinyPair(t) // mbstd groups of 2
	o := tinyOpts()
	for _, c := range []struct {
		batch, ranks int
		want         string
	}{
		{2, 2, "multiple of 4"},  // one group of 2: each rank would hold half of it
		{6, 2, "multiple of 4"},  // three groups over two ranks
		{5, 2, "does not split"}, // uneven rows
	} {
		o.Batch = c.batch
		err := NewTrainer(p, o).Distribute(train.Shard{Rank: 0, Size: c.ranks})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("batch %d over %d ranks: %v, want an error saying %q", c.batch, c.ranks, err, c.want)
		}
	}
	o.Batch = 8
	if err := NewTrainer(p, o).Distribute(train.Shard{Rank: 1, Size: 2}); err != nil {
		t.Errorf("batch 8 over 2 ranks: %v", err)
	}
}
