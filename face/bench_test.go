package face_test

import (
	"os"
	"testing"

	"ddgi/diffusion"
	"ddgi/encoder"
	"ddgi/face"
	"ddgi/gan/eg3d"
	"ddgi/internal/testweights"
	"ddgi/kinds"
	"ddgi/synthface"
	"ddgi/torch"
)

// benchPipeline builds small64-shaped networks with random weights: the
// shipped architectures, so timings hold for trained weights too.
func benchPipeline(b *testing.B, gan kinds.GANArch) *face.Pipeline {
	b.Helper()
	dir, err := os.MkdirTemp("", "ddgi-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	if err := testweights.WriteRandom(dir, "../weights/tokenizer.json", "small64"); err != nil {
		b.Fatal(err)
	}
	p, err := face.Load(face.Options{Weights: dir, GAN: gan, Cond: "mask", Device: torch.CPU, Step: -1})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func maskRequest(p *face.Pipeline) face.Request {
	m := make([]uint8, p.Size()*p.Size())
	for i := range m {
		m[i] = uint8(i / p.Size() % 19)
	}
	return face.Request{Text: "The woman has wavy blond hair and is smiling.", Mask: m, Seed: 1}
}

// BenchmarkGenerate2D is ddgi's inference: one U-Net + ControlNet pass, M,
// T and StyleGAN2 (the paper's speed argument).
func BenchmarkGenerate2D(b *testing.B) {
	p := benchPipeline(b, "stylegan2")
	req := maskRequest(p)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := p.Codes([]face.Request{req})
		if err != nil {
			b.Fatal(err)
		}
		img, err := p.Render(w, nil)
		if err != nil {
			b.Fatal(err)
		}
		w.Free()
		img.Free()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/image")
}

// BenchmarkGenerate3D8Views inverts once and renders eight EG3D views.
func BenchmarkGenerate3D8Views(b *testing.B) {
	p := benchPipeline(b, "eg3d")
	req := maskRequest(p)
	cams := make([]*torch.Tensor, 8)
	for v := range cams {
		cams[v] = eg3d.Camera(synthface.DefaultOrbit, -45+90*float64(v)/7, 0)
		torch.Persist(cams[v])
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := p.Codes([]face.Request{req})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range cams {
			img, err := p.Render(w, c)
			if err != nil {
				b.Fatal(err)
			}
			img.Free()
		}
		w.Free()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/8views")
}

// BenchmarkBaseline20 is the ControlNet baseline on the same input: a
// 20-step DDIM sample with text guidance (two U-Net passes a step).
func BenchmarkBaseline20(b *testing.B) {
	p := benchPipeline(b, "stylegan2")
	req := maskRequest(p)
	var cond diffusion.Conditions
	torch.Scoped(func() {
		cond.Mask = encoder.MaskCondition(req.Mask, p.Size(), 1)
		torch.Persist(cond.Mask)
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		img, err := p.E.Pipeline.Sample([]string{req.Text}, cond, 20, diffusion.Guidance{Text: 3, Cond: 1}, 1)
		if err != nil {
			b.Fatal(err)
		}
		img.Free()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/image")
}
