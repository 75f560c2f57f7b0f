package eg3d

import (
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"ddgi/gan/stylegan2"
	"ddgi/synthface"
	"ddgi/torch"
)

// reprojectionErrors takes each opaque pixel of view A (opacity ≥ minW),
// lifts it to 3D with A's depth, projects it into view B and returns, for
// the points that land on an opaque pixel of B, |depth_B − distance to B's
// centre|: zero for a surface both views agree on. Cameras are [1,25]
// labels; depths and opacities are row-major res×res.
func reprojectionErrors(camA, camB *torch.Tensor, res int, depthA, wA, depthB, wB []float64, minW float64) (errs []float64, hits int) {
	oA, dA := Rays(camA, res)
	pos, dir := oA.Float64s(), dA.Float64s()
	cb := camB.Float64s()
	cB := [3]float64{cb[3], cb[7], cb[11]}
	for i := 0; i < res*res; i++ {
		if wA[i] < minW {
			continue
		}
		hits++
		var v [3]float64
		for k := range 3 {
			v[k] = pos[3*i+k] + depthA[i]*dir[3*i+k] - cB[k]
		}
		var xc [3]float64
		for k := range 3 {
			xc[k] = cb[0*4+k]*v[0] + cb[1*4+k]*v[1] + cb[2*4+k]*v[2] // Rᵀ v
		}
		px := int((cb[16]*xc[0]/xc[2] + cb[18]) * float64(res))
		py := int((cb[20]*xc[1]/xc[2] + cb[21]) * float64(res))
		if px < 0 || py < 0 || px >= res || py >= res || wB[py*res+px] < minW {
			continue
		}
		dist := math.Sqrt(v[0]*v[0] + v[1]*v[1] + v[2]*v[2])
		errs = append(errs, math.Abs(depthB[py*res+px]-dist))
	}
	return errs, hits
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// shippedEG3D loads the shipped EG3D, or the generator file DDGI_EG3D
// names (to measure a run's G_ema the same way), skipping when neither
// exists; it returns the generator and its path.
func shippedEG3D(t *testing.T) (*Generator, string) {
	t.Helper()
	path := filepath.Join("..", "..", "weights", "eg3d_small64.safetensors")
	if p := os.Getenv("DDGI_EG3D"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not present", path)
	}
	g, err := Load(path, torch.CPU, synthface.DefaultOrbit)
	if err != nil {
		t.Fatal(err)
	}
	return g, path
}

// TestShippedHeadDepthConsistent renders the shipped EG3D's heads from two
// cameras 40° apart and reprojects view A's depth into view B: a solid head
// agrees with itself. The control pairs view A of each head with view B of
// another head, which must agree clearly worse.
func TestShippedHeadDepthConsistent(t *testing.T) {
	g, _ := shippedEG3D(t)
	torch.NoGrad(func() {
		torch.Scoped(func() {
			res := g.Cfg.NeuralRes
			camA, camB := orbitCam(-20, 0), orbitCam(20, 5)
			const heads = 6
			render := func(w, cam *torch.Tensor) (depth, weight [][]float64) {
				out := g.Synthesis(w, cam.Expand(heads, CameraDim), stylegan2.NoiseNone)
				d, o := out.Depth.Float64s(), out.Weight.Float64s()
				n := res * res
				for i := 0; i < heads; i++ {
					depth = append(depth, d[i*n:(i+1)*n])
					weight = append(weight, o[i*n:(i+1)*n])
				}
				return depth, weight
			}
			z := torch.Randn(torch.NewGenerator(5), []int64{heads, int64(g.Cfg.Backbone.ZDim)}, torch.Float32, torch.CPU)
			w := g.Mapping(z, orbitCam(0, 0).Expand(heads, CameraDim), 0.7)
			dA, wA := render(w, camA)
			dB, wB := render(w, camB)
			var same, other []float64
			for i := 0; i < heads; i++ {
				e, hits := reprojectionErrors(camA, camB, res, dA[i], wA[i], dB[i], wB[i], 0.9)
				if hits < res*res/10 || len(e) < hits/3 {
					t.Fatalf("head %d: %d opaque pixels in view A, %d seen in B: not a solid head", i, hits, len(e))
				}
				same = append(same, e...)
				j := (i + 1) % heads
				e, _ = reprojectionErrors(camA, camB, res, dA[i], wA[i], dB[j], wB[j], 0.9)
				other = append(other, e...)
			}
			ms, mo := median(same), median(other)
			t.Logf("median cross-view depth error: same head %.4f, another head %.4f world units (%d, %d pixels; a pixel ≈ 0.02)", ms, mo, len(same), len(other))
			if ms > 0.05 || ms > 0.7*mo {
				t.Fatalf("views of one head disagree: median depth error %.4f (another head: %.4f)", ms, mo)
			}
		})
	})
}
