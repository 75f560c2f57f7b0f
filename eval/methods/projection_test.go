package methods

import (
	"path/filepath"
	"testing"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/eval"
	"ddgi/face"
	"ddgi/gan/eg3d"
	"ddgi/internal/testweights"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/synthface"
	"ddgi/torch"
)

// TestProjectionFitsImagesInGANRange: targets rendered by G itself from
// random codes are reproduced better after the projection's steps than by
// G(w̄), where it starts; 2D and 3D.
func TestProjectionFitsImagesInGANRange(t *testing.T) {
	dir := testweights.Tiny(t, "../../weights/tokenizer.json")
	fc, _ := auxnets.Preset(auxnets.NetPerceptual, "tiny")
	rc, _ := auxnets.Preset(auxnets.NetIdentity, "tiny")
	f, r := auxnets.NewPerceptual(fc, 1), auxnets.NewIdentity(rc, 1)
	f.Store.Freeze("")
	r.Store.Freeze("")
	for _, gan := range kinds.GANArchs {
		g, err := face.LoadGAN(gan, face.Options{Weights: dir, GAN: gan}.Files()["gan"], torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		p := &projection{name: "project", gan: gan, cfg: Config{ProjectSteps: 30}, g: g, f: f, r: r}
		torch.Scoped(func() {
			n, l, d := int64(2), p.g.Styles(), p.g.StyleDim()
			var cams *torch.Tensor
			if p.g.Is3D() {
				cams = torch.Cat([]*torch.Tensor{eg3d.Camera(synthface.DefaultOrbit, 20, 0), eg3d.Camera(synthface.DefaultOrbit, -20, 0)}, 0)
			}
			w := p.g.MeanLatent().Reshape(1, 1, d).Add(torch.Randn(torch.NewGenerator(5), []int64{n, l, d}, torch.Float32, torch.CPU).MulScalar(0.7))
			var target, start *torch.Tensor
			torch.NoGrad(func() {
				target = p.g.Synthesize(w, cams)
				start = p.g.Synthesize(p.g.MeanLatent().Reshape(1, 1, d).Expand(n, l, d), cams)
			})
			var out *torch.Tensor
			w = p.project(target, cams)
			torch.NoGrad(func() { out = p.g.Synthesize(w, cams) })
			before := start.Sub(target).Square().MeanAll().Item()
			after := out.Sub(target).Square().MeanAll().Item()
			if !(after < 0.7*before) {
				t.Errorf("%s: L2 to the target %.4g after projection, %.4g from w̄", gan, after, before)
			}
		})
	}
}

// TestProjectionOnTheRequestedDevice runs the projection row on libtorch's
// meta device, the stand-in GPU (face's device test): its GAN, F, R, the
// targets, cameras and the optimised codes must all live there.
func TestProjectionOnTheRequestedDevice(t *testing.T) {
	dir := testweights.Tiny(t, "../../weights/tokenizer.json")
	fc, _ := auxnets.Preset(auxnets.NetPerceptual, "tiny")
	rc, _ := auxnets.Preset(auxnets.NetIdentity, "tiny")
	f, r := auxnets.NewPerceptual(fc, 1), auxnets.NewIdentity(rc, 1)
	if err := f.Store.Save(filepath.Join(dir, "aux_perceptual.safetensors"), nn.SaveOptions{Config: fc}); err != nil {
		t.Fatal(err)
	}
	if err := r.Store.Save(filepath.Join(dir, "aux_identity.safetensors"), nn.SaveOptions{Config: rc}); err != nil {
		t.Fatal(err)
	}
	for _, gan := range kinds.GANArchs {
		g, err := face.LoadGAN(gan, face.Options{Weights: dir, GAN: gan}.Files()["gan"], torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		size := int(g.Resolution())
		ds := data.NewSynthFace(data.Bench, size, 2)
		var ss []*data.Sample
		for i := range 2 {
			s, err := ds.Get(i)
			if err != nil {
				t.Fatal(err)
			}
			ss = append(ss, s)
		}
		p := &projection{name: "project", gan: gan, cfg: Config{Weights: dir, Device: torch.Meta, ProjectSteps: 2}}
		torch.Scoped(func() {
			out, err := p.Generate(&eval.Batch{Cond: kinds.Mask, Size: size, Samples: ss, Index: []int{0, 1}})
			if err != nil {
				t.Fatalf("%s: %v", gan, err)
			}
			if out.Device() != torch.Meta || out.Size(0) != 2 {
				t.Fatalf("%s: %v on %s", gan, out.Shape(), out.Device())
			}
		})
	}
}
