package gan

import (
	"fmt"
	"math"

	"ddgi/torch"
)

// PixelFeatureSide is the side to which PixelFeatures area-downsamples
// images: 8×8×3 = 192 features.
const PixelFeatureSide = 8

// PixelFeatures area-downsamples images [N,3,H,W] in [-1,1] to 8×8 and
// flattens them: the features of the pixel-statistics FID, a stand-in
// until the evaluation issue's feature network exists.
func PixelFeatures(img *torch.Tensor) [][]float64 {
	n := img.Size(0)
	x := torch.Interpolate(img, PixelFeatureSide, PixelFeatureSide, torch.Area, false).Reshape(n, -1)
	d := int(x.Size(1))
	v := x.Float64s()
	out := make([][]float64, n)
	for i := range out {
		out[i] = v[i*d : (i+1)*d]
	}
	return out
}

// Stats are the mean and covariance of a feature set.
type Stats struct {
	Mu  []float64
	Cov [][]float64
}

// FeatureStats computes mean and (unbiased) covariance.
func FeatureStats(f [][]float64) Stats {
	n, d := len(f), len(f[0])
	mu := make([]float64, d)
	for _, r := range f {
		for j, v := range r {
			mu[j] += v / float64(n)
		}
	}
	cov := make([][]float64, d)
	for i := range cov {
		cov[i] = make([]float64, d)
	}
	for _, r := range f {
		for i := 0; i < d; i++ {
			a := r[i] - mu[i]
			for j := i; j < d; j++ {
				cov[i][j] += a * (r[j] - mu[j])
			}
		}
	}
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			cov[i][j] /= float64(n - 1)
			cov[j][i] = cov[i][j]
		}
	}
	return Stats{Mu: mu, Cov: cov}
}

// FID is the Fréchet distance between Gaussians (Heusel et al. 2017, Eq. 6):
// ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½), with Tr (Σ₁Σ₂)^½ computed as
// Σ √λ of the symmetric Σ₁^½ Σ₂ Σ₁^½.
func FID(a, b Stats) (float64, error) {
	d := len(a.Mu)
	if len(b.Mu) != d {
		return 0, fmt.Errorf("fid: feature widths %d and %d differ", d, len(b.Mu))
	}
	var dist float64
	for i := range a.Mu {
		dist += (a.Mu[i] - b.Mu[i]) * (a.Mu[i] - b.Mu[i])
	}
	s1h := symSqrt(a.Cov)
	m := matMul(matMul(s1h, b.Cov), s1h)
	vals, _ := jacobiEigen(m)
	var tr float64
	for i := 0; i < d; i++ {
		tr += a.Cov[i][i] + b.Cov[i][i]
	}
	for _, l := range vals {
		tr -= 2 * math.Sqrt(math.Max(l, 0))
	}
	return dist + tr, nil
}

func matMul(a, b [][]float64) [][]float64 {
	n := len(a)
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, n)
		for k := 0; k < n; k++ {
			if a[i][k] == 0 {
				continue
			}
			for j := 0; j < n; j++ {
				out[i][j] += a[i][k] * b[k][j]
			}
		}
	}
	return out
}

// symSqrt is the PSD square root V diag(√max(λ,0)) Vᵀ of a symmetric matrix.
func symSqrt(a [][]float64) [][]float64 {
	vals, vecs := jacobiEigen(a)
	n := len(a)
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, n)
		for j := 0; j < n; j++ {
			var s float64
			for k := 0; k < n; k++ {
				s += vecs[i][k] * math.Sqrt(math.Max(vals[k], 0)) * vecs[j][k]
			}
			out[i][j] = s
		}
	}
	return out
}

// jacobiEigen diagonalises a symmetric matrix by cyclic Jacobi rotations:
// eigenvalues and eigenvectors (columns of vecs).
func jacobiEigen(in [][]float64) (vals []float64, vecs [][]float64) {
	n := len(in)
	a := make([][]float64, n)
	vecs = make([][]float64, n)
	for i := range a {
		a[i] = append([]float64(nil), in[i]...)
		vecs[i] = make([]float64, n)
		vecs[i][i] = 1
	}
	for sweep := 0; sweep < 100; sweep++ {
		var off, norm float64
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				if i != j {
					off += a[i][j] * a[i][j]
				}
				norm += a[i][j] * a[i][j]
			}
		}
		if off <= 1e-22*norm || off == 0 {
			break
		}
		for p := 0; p < n-1; p++ {
			for q := p + 1; q < n; q++ {
				if math.Abs(a[p][q]) < 1e-300 {
					continue
				}
				theta := (a[q][q] - a[p][p]) / (2 * a[p][q])
				t := math.Copysign(1, theta) / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for k := 0; k < n; k++ {
					akp, akq := a[k][p], a[k][q]
					a[k][p], a[k][q] = c*akp-s*akq, s*akp+c*akq
				}
				for k := 0; k < n; k++ {
					apk, aqk := a[p][k], a[q][k]
					a[p][k], a[q][k] = c*apk-s*aqk, s*apk+c*aqk
				}
				for k := 0; k < n; k++ {
					vkp, vkq := vecs[k][p], vecs[k][q]
					vecs[k][p], vecs[k][q] = c*vkp-s*vkq, s*vkp+c*vkq
				}
			}
		}
	}
	vals = make([]float64, n)
	for i := range vals {
		vals[i] = a[i][i]
	}
	return vals, vecs
}
