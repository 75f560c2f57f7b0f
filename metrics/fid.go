package metrics

import (
	"math"
	"math/rand/v2"
)

// MeanCov returns the mean and unbiased covariance of rows.
func MeanCov(x [][]float64) (mu []float64, cov [][]float64) {
	n, d := len(x), len(x[0])
	mu = make([]float64, d)
	for _, r := range x {
		for j, v := range r {
			mu[j] += v / float64(n)
		}
	}
	cov = square(d)
	for _, r := range x {
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
	return mu, cov
}

// FrechetDistance is the squared 2-Wasserstein distance between Gaussians
// (Heusel et al. 2017, Eq. 6): ‖μ1−μ2‖² + tr(C1 + C2 − 2(C1 C2)^½), with
// tr (C1 C2)^½ = Σ √eig(C1^½ C2 C1^½).
func FrechetDistance(mu1 []float64, c1 [][]float64, mu2 []float64, c2 [][]float64) float64 {
	var d float64
	for i := range mu1 {
		d += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i])
	}
	s1 := sqrtPSD(c1)
	m := matmul(matmul(s1, c2), s1)
	ev, _ := eigSym(m)
	var tr float64
	for _, v := range ev {
		tr += math.Sqrt(math.Max(v, 0))
	}
	for i := range c1 {
		d += c1[i][i] + c2[i][i]
	}
	return math.Max(0, d-2*tr) // ≥ 0 up to rounding
}

// FID is the Fréchet distance between Gaussians fitted to two feature sets
// (here SynthFace classifier features, not Inception's).
func FID(real, fake [][]float64) float64 {
	m1, c1 := MeanCov(real)
	m2, c2 := MeanCov(fake)
	return FrechetDistance(m1, c1, m2, c2)
}

// KID is the kernel inception distance (Bińkowski et al. 2018, Eq. 4 with
// k(x,y) = (xᵀy/d + 1)³): the unbiased MMD² averaged over `subsets` random
// subsets of size m (m ≤ both set sizes), seeded. Unbiased for small sets.
func KID(real, fake [][]float64, subsets, m int, seed uint64) float64 {
	m = min(m, len(real), len(fake))
	if m < 2 {
		return nan
	}
	kxx, kyy, kxy := polyKernel(real, real), polyKernel(fake, fake), polyKernel(real, fake)
	r := rand.New(rand.NewPCG(seed, 0x6b6964))
	var total float64
	mf := float64(m)
	for s := 0; s < subsets; s++ {
		x := r.Perm(len(real))[:m]
		y := r.Perm(len(fake))[:m]
		var sxx, syy, sxy float64
		for a, i := range x {
			for b, j := range x {
				if a != b {
					sxx += kxx[i][j]
				}
			}
			for _, j := range y {
				sxy += kxy[i][j]
			}
		}
		for a, i := range y {
			for b, j := range y {
				if a != b {
					syy += kyy[i][j]
				}
			}
		}
		total += (sxx+syy)/(mf*(mf-1)) - 2*sxy/(mf*mf)
	}
	return total / float64(subsets)
}

// polyKernel is KID's cubic kernel matrix between two sets.
func polyKernel(a, b [][]float64) [][]float64 {
	d := float64(len(a[0]))
	k := make([][]float64, len(a))
	for i, x := range a {
		k[i] = make([]float64, len(b))
		for j, y := range b {
			var s float64
			for c := range x {
				s += x[c] * y[c]
			}
			v := s/d + 1
			k[i][j] = v * v * v
		}
	}
	return k
}

func square(d int) [][]float64 {
	m := make([][]float64, d)
	for i := range m {
		m[i] = make([]float64, d)
	}
	return m
}

func matmul(a, b [][]float64) [][]float64 {
	n, k, p := len(a), len(b), len(b[0])
	c := square(n)
	for i := range c {
		c[i] = make([]float64, p)
		for l := 0; l < k; l++ {
			if a[i][l] == 0 {
				continue
			}
			for j := 0; j < p; j++ {
				c[i][j] += a[i][l] * b[l][j]
			}
		}
	}
	return c
}

// sqrtPSD is the symmetric square root V diag(√λ⁺) Vᵀ.
func sqrtPSD(a [][]float64) [][]float64 {
	ev, v := eigSym(a)
	n := len(a)
	s := square(n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var x float64
			for k := 0; k < n; k++ {
				x += v[i][k] * math.Sqrt(math.Max(ev[k], 0)) * v[j][k]
			}
			s[i][j] = x
		}
	}
	return s
}

// eigSym diagonalises a symmetric matrix by cyclic Jacobi rotations;
// columns of v are the eigenvectors.
func eigSym(in [][]float64) (ev []float64, v [][]float64) {
	n := len(in)
	a := square(n)
	v = square(n)
	for i := range a {
		copy(a[i], in[i])
		v[i][i] = 1
	}
	for sweep := 0; sweep < 60; sweep++ {
		var off, scale float64
		for i := 0; i < n; i++ {
			scale += a[i][i] * a[i][i]
			for j := i + 1; j < n; j++ {
				off += a[i][j] * a[i][j]
			}
		}
		if off <= 1e-22*scale || off == 0 {
			break
		}
		for p := 0; p < n; p++ {
			for q := p + 1; q < n; q++ {
				if a[p][q] == 0 {
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
					vkp, vkq := v[k][p], v[k][q]
					v[k][p], v[k][q] = c*vkp-s*vkq, s*vkp+c*vkq
				}
			}
		}
	}
	ev = make([]float64, n)
	for i := range ev {
		ev[i] = a[i][i]
	}
	return ev, v
}
