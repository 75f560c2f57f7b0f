package invtrain

import (
	"context"
	"path/filepath"
	"testing"

	"ddgi/auxnets"
	"ddgi/face"
	"ddgi/internal/testweights"
	"ddgi/inversion"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/torch"
)

// TestTrainingStepsOnTheRequestedDevice builds the whole trainer (E with
// its text tower and VAE, G, F, R, M and T, the data) on libtorch's meta
// device, a stand-in for a GPU that every machine has, and runs a stage-1
// and a stage-2 step (the latter sampling I^d_0 through the full guided
// sampler). A tensor created on the CPU anywhere on that path fails the
// first op that mixes it with the model's, as it would on CUDA.
// Convolutions on meta are shape-only (torch/shim.cpp), so the backward
// pass stops at them; the forward, the losses and Adam run whole.
func TestTrainingStepsOnTheRequestedDevice(t *testing.T) {
	dir := testweights.Tiny(t, "../../weights/tokenizer.json")
	for net, file := range map[string]string{auxnets.NetPerceptual: "aux_perceptual.safetensors", auxnets.NetIdentity: "aux_identity.safetensors"} {
		c, err := auxnets.Preset(net, "tiny")
		if err != nil {
			t.Fatal(err)
		}
		var s *nn.Store
		if net == auxnets.NetPerceptual {
			s = auxnets.NewPerceptual(c, 1).Store
		} else {
			s = auxnets.NewIdentity(c, 1).Store
		}
		if err := s.Save(filepath.Join(dir, file), nn.SaveOptions{Config: c}); err != nil {
			t.Fatal(err)
		}
	}
	for _, gan := range []kinds.GANArch{kinds.StyleGAN2, kinds.EG3D} {
		for _, cond := range []kinds.Cond{kinds.Mask, kinds.Scribble} {
			tr, err := Build(Options{Out: t.TempDir(), N: 4, Width: 16, TextPath: true, D0Steps: 2,
				Face: face.Options{Weights: dir, GAN: gan, Cond: cond, Device: torch.Meta},
				Train: inversion.TrainConfig{Stage1Steps: 2, Stage2Steps: 1, Batch: 2, LR: 1e-4, Cond: cond, Seed: 1, TMax: -1,
					Weights: inversion.Weights{L2: 1, LPIPS: 0.8, ID: 0.1, Reg: 0.005}}})
			if err != nil {
				t.Fatalf("%s %s: %v", gan, cond, err)
			}
			tr.Cache = nil // the cache stores PNGs, and meta tensors hold no pixels
			// Steps 0 and 2: the last step of stage 1 would also snapshot M
			// to bytes, which meta tensors do not have.
			for _, step := range []int64{0, 2} {
				if _, err := tr.Step(context.Background(), step); err != nil {
					t.Fatalf("%s %s step %d: %v", gan, cond, step, err)
				}
			}
			for _, n := range tr.Model.Store.Names() {
				if d := tr.Model.Store.Get(n).Device(); d != torch.Meta {
					t.Fatalf("%s %s: %s on %s", gan, cond, n, d)
				}
			}
		}
	}
}
