package eg3d

import (
	"path/filepath"
	"testing"

	"ddgi/gan/stylegan2"
	"ddgi/synthface"
	"ddgi/torch"
)

// faceRelief is how much nearer the middle of a frontal face is than its
// cheeks: the mean camera-space depth z of the cheek columns (30–36% and
// 64–70% of the width) minus that of the centre columns (45–55%), over
// rows 45–60%. A flat card gives ≈ 0; SynthFace heads ≈ 0.1 world units.
// z is row-major res×res; pixels with z = 0 (background) are skipped.
func faceRelief(z []float64, res int) float64 {
	mean := func(c0, c1 float64) float64 {
		s, n := 0.0, 0
		for y := int(0.45 * float64(res)); y < int(0.6*float64(res)); y++ {
			for x := int(c0 * float64(res)); x < int(c1*float64(res)); x++ {
				if v := z[y*res+x]; v > 0 {
					s += v
					n++
				}
			}
		}
		return s / float64(max(n, 1))
	}
	return (mean(0.30, 0.36)+mean(0.64, 0.70))/2 - mean(0.45, 0.55)
}

// ganDepthZ renders heads from the frontal camera and returns each one's
// camera-space depth z (ray distance × the ray's cosine to the axis).
func ganDepthZ(g *Generator, heads int, seed uint64) [][]float64 {
	res := g.Cfg.NeuralRes
	cam := orbitCam(0, 0)
	z := torch.Randn(torch.NewGenerator(seed), []int64{int64(heads), int64(g.Cfg.Backbone.ZDim)}, torch.Float32, torch.CPU)
	w := g.Mapping(z, cam.Expand(int64(heads), CameraDim), 0.7)
	out := g.Synthesis(w, cam.Expand(int64(heads), CameraDim), stylegan2.NoiseNone)
	_, dirs := Rays(cam, res)
	d := out.Depth.Float64s()
	dv := dirs.Float64s()
	c := cam.Float64s()
	axis := [3]float64{c[2], c[6], c[10]} // the camera's forward column
	var zs [][]float64
	for h := 0; h < heads; h++ {
		zz := make([]float64, res*res)
		for i := range zz {
			cos := dv[3*i]*axis[0] + dv[3*i+1]*axis[1] + dv[3*i+2]*axis[2]
			zz[i] = d[h*res*res+i] * cos
		}
		zs = append(zs, zz)
	}
	return zs
}

// TestShippedHeadHasRelief: the shipped EG3D's frontal faces are not flat
// cards — the median relief of 8 heads is at least 40% of SynthFace's own
// (8 renders, frontal camera, same measure).
func TestShippedHeadHasRelief(t *testing.T) {
	g, path := shippedEG3D(t)
	var real, fake []float64
	for i := 0; i < 8; i++ {
		p := synthface.SampleParams(int64(1000 + i))
		p.Camera = synthface.OrbitCamera(0, 0, synthface.DefaultRadius, synthface.DefaultFocal)
		f := synthface.Render(p, 64)
		z := make([]float64, len(f.Depth))
		for j, v := range f.Depth {
			z[j] = float64(v)
		}
		real = append(real, faceRelief(z, 64))
	}
	torch.NoGrad(func() {
		torch.Scoped(func() {
			for _, z := range ganDepthZ(g, 8, 3) {
				fake = append(fake, faceRelief(z, g.Cfg.NeuralRes))
			}
		})
	})
	mr, mf := median(real), median(fake)
	t.Logf("median face relief: SynthFace %.4f, %s %.4f world units (per head: %.3f)", mr, filepath.Base(path), mf, fake)
	if mf < 0.4*mr {
		t.Fatalf("frontal faces are flat: relief %.4f, SynthFace %.4f", mf, mr)
	}
}
