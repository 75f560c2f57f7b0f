package metrics

import (
	"math"
	"math/rand/v2"
	"testing"

	"ddgi/auxnets"
	"ddgi/synthface"
	"ddgi/torch"
)

func gaussians(n int, mu, sd []float64, seed uint64) [][]float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, len(mu))
		for j := range mu {
			out[i][j] = mu[j] + sd[j]*r.NormFloat64()
		}
	}
	return out
}

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol || math.IsNaN(got) {
		t.Errorf("%s = %.6g, want %.6g ± %g", name, got, want, tol)
	}
}

func TestFrechetDistanceClosedForm(t *testing.T) {
	// Diagonal covariances: d = ‖μ1−μ2‖² + Σ(σ1−σ2)².
	mu1, mu2 := []float64{0, 1, 2}, []float64{1, 1, 0}
	s1, s2 := []float64{1, 2, 3}, []float64{2, 2, 1}
	c1, c2 := square(3), square(3)
	want := 5.0
	for i := range s1 {
		c1[i][i], c2[i][i] = s1[i]*s1[i], s2[i]*s2[i]
		want += (s1[i] - s2[i]) * (s1[i] - s2[i])
	}
	near(t, "diagonal", FrechetDistance(mu1, c1, mu2, c2), want, 1e-9)
	// Full covariance against itself rotated: C2 = R C1 Rᵀ, with 2×2 closed
	// form tr√(C1C2) = √(tr(C1C2) + 2√det(C1C2)).
	a := [][]float64{{2, 0.5}, {0.5, 1}}
	b := [][]float64{{1, -0.3}, {-0.3, 3}}
	p := matmul(a, b)
	det := p[0][0]*p[1][1] - p[0][1]*p[1][0]
	tr := math.Sqrt(p[0][0] + p[1][1] + 2*math.Sqrt(det))
	near(t, "2x2", FrechetDistance([]float64{0, 0}, a, []float64{0, 0}, b), a[0][0]+a[1][1]+b[0][0]+b[1][1]-2*tr, 1e-9)
	near(t, "identical", FrechetDistance(mu1, c1, mu1, c1), 0, 1e-9)
}

func TestFIDOfSampledGaussians(t *testing.T) {
	mu2 := []float64{0.5, 0, -0.5, 0}
	sd1, sd2 := []float64{1, 1, 1, 1}, []float64{1, 2, 1, 0.5}
	x := gaussians(20000, []float64{0, 0, 0, 0}, sd1, 1)
	y := gaussians(20000, mu2, sd2, 2)
	near(t, "FID(x,x)", FID(x, x), 0, 1e-9)
	near(t, "FID(x,y)", FID(x, y), 0.5+1+0.25, 0.08)
	xs, ys := x[:1000], y[:1000]
	self := KID(xs, xs, 20, 500, 1)
	same := KID(xs, gaussians(1000, []float64{0, 0, 0, 0}, sd1, 3), 20, 500, 1)
	diff := KID(xs, ys, 20, 500, 1)
	if !(diff > 10*math.Abs(same) && diff > 10*math.Abs(self)) {
		t.Errorf("KID self %g, same law %g, different %g: want different ≫ the others ≈ 0", self, same, diff)
	}
}

func TestConfusionKnownMasks(t *testing.T) {
	c := NewConfusion(3)
	// target 0 0 1 1 2 2, pred 0 1 1 1 2 0
	if err := c.Add([]int64{0, 1, 1, 1, 2, 0}, []int64{0, 0, 1, 1, 2, 2}); err != nil {
		t.Fatal(err)
	}
	near(t, "ACC", c.PixelAccuracy(), 4.0/6, 1e-12)
	// IoU: class0 1/(2+2-1)=1/3, class1 2/(2+3-2)=2/3, class2 1/(2+1-1)=1/2
	near(t, "mIoU", c.MeanIoU(), (1.0/3+2.0/3+0.5)/3, 1e-12)
	p := NewConfusion(19)
	m := []int64{0, 5, 5, 13}
	_ = p.Add(m, m)
	near(t, "perfect ACC", p.PixelAccuracy(), 1, 0)
	near(t, "perfect mIoU (absent classes skipped)", p.MeanIoU(), 1, 0)
	if c.Add([]int64{3}, []int64{0}) == nil {
		t.Error("out-of-range label accepted")
	}
}

func TestVerificationScores(t *testing.T) {
	s := []float64{0.9, 0.8, 0.7, 0.3, 0.2, 0.75}
	p := []bool{true, true, true, false, false, false}
	near(t, "AUC", ROCAUC(s, p), 8.0/9, 1e-12)
	thr, acc := BestThreshold(s, p)
	near(t, "best acc", acc, 5.0/6, 1e-12)
	near(t, "acc at best thr", Accuracy(s, p, thr), acc, 0)
	near(t, "perfect AUC", ROCAUC([]float64{1, 2}, []bool{false, true}), 1, 0)
	near(t, "TAR@FAR=0", TARAtFAR(s, p, 0), 2.0/3, 1e-12)
}

func img(g *torch.Generator, n int64) *torch.Tensor {
	// A smooth image plus detail, in [-1,1].
	x := torch.Randn(g, []int64{n, 3, 8, 8}, torch.Float32, torch.CPU)
	return torch.Interpolate(x, 64, 64, torch.Bilinear, false).Tanh()
}

func TestMSSSIMKnownAnswers(t *testing.T) {
	torch.Scoped(func() {
		g := torch.NewGenerator(1)
		x := img(g, 4)
		near(t, "MS-SSIM(x,x)", MSSSIM(x, x).MeanAll().Item(), 1, 1e-5)
		near(t, "SSIM(x,x)", SSIM(x, x).MeanAll().Item(), 1, 1e-5)
		prev := 1.0
		for _, s := range []float64{0.05, 0.2, 0.5} {
			y := x.Add(torch.Randn(g, x.Shape(), torch.Float32, torch.CPU).MulScalar(s)).Clamp(-1, 1)
			v := MSSSIM(x, y).MeanAll().Item()
			if !(v < prev) {
				t.Errorf("MS-SSIM at noise %g = %g, not below %g", s, v, prev)
			}
			prev = v
		}
		if w := []int{SSIMWindow(64), SSIMWindow(32), SSIMWindow(16), SSIMWindow(8), SSIMWindow(4)}; w[0] != 11 || w[3] != 7 || w[4] != 3 {
			t.Errorf("windows %v", w)
		}
		var sum float64
		for _, w := range MSSSIMWeights {
			sum += w
		}
		near(t, "weights sum", sum, 1, 1e-3)
	})
}

func TestLPIPSAndIdentityKnownAnswers(t *testing.T) {
	torch.Scoped(func() {
		c, _ := auxnets.Preset(auxnets.NetPerceptual, "tiny")
		f := auxnets.NewPerceptual(c, 3)
		g := torch.NewGenerator(2)
		x := img(g, 4)
		near(t, "LPIPS(x,x)", f.Distance(x, x).MaxAll().Item(), 0, 1e-9)
		prev := 0.0
		for _, s := range []float64{0.02, 0.1, 0.3, 0.8} {
			y := x.Add(torch.Randn(torch.NewGenerator(9), x.Shape(), torch.Float32, torch.CPU).MulScalar(s))
			d := f.Distance(x, y).MeanAll().Item()
			if !(d > prev) {
				t.Errorf("LPIPS at noise %g = %g, not above %g", s, d, prev)
			}
			prev = d
		}
		ci, _ := auxnets.Preset(auxnets.NetIdentity, "tiny")
		r := auxnets.NewIdentity(ci, 1)
		near(t, "ID cos(x,x)", r.Cosine(x, x).MinAll().Item(), 1, 1e-5)
	})
}

func TestAttributeAccuracyAgainstCaption(t *testing.T) {
	torch.Scoped(func() {
		f := synthface.Render(synthface.SampleParams(5), 32)
		v := f.Attrs.Vector()
		probs := torch.FromFloat32(v, 1, int64(len(v)))
		for _, c := range f.Captions {
			h, m := AttributeAccuracy(probs, []string{c})
			if m == 0 || h != m {
				t.Errorf("caption %q: %g/%g attributes agree with the truth", c, h, m)
			}
		}
		inv := probs.RSubScalar(1)
		h, m := AttributeAccuracy(inv, f.Captions[:1])
		near(t, "inverted", h, 0, 0)
		_ = m
	})
}
