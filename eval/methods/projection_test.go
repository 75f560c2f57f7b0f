package methods

import (
	"testing"

	"ddgi/auxnets"
	"ddgi/face"
	"ddgi/gan/eg3d"
	"ddgi/internal/testweights"
	"ddgi/kinds"
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
			out := p.project(target, cams)
			before := start.Sub(target).Square().MeanAll().Item()
			after := out.Sub(target).Square().MeanAll().Item()
			if !(after < 0.7*before) {
				t.Errorf("%s: L2 to the target %.4g after projection, %.4g from w̄", gan, after, before)
			}
		})
	}
}
