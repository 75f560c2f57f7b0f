package gan

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFIDDiagonal: for diagonal covariances FID = Σ (μ₁−μ₂)² + (σ₁ − σ₂)².
func TestFIDDiagonal(t *testing.T) {
	a := Stats{Mu: []float64{0, 1, 2}, Cov: [][]float64{{1, 0, 0}, {0, 4, 0}, {0, 0, 9}}}
	b := Stats{Mu: []float64{1, 1, 0}, Cov: [][]float64{{4, 0, 0}, {0, 4, 0}, {0, 0, 1}}}
	got, err := FID(a, b)
	if err != nil {
		t.Fatal(err)
	}
	want := 1.0 + 0 + 4 + 1 + 0 + 4
	if math.Abs(got-want) > 1e-9 {
		t.Fatalf("FID %g, want %g", got, want)
	}
}

// TestFIDSelfZero: a correlated (rank-deficient) feature set is at FID 0
// from itself.
func TestFIDSelfZero(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	f := make([][]float64, 500)
	for i := range f {
		x := r.NormFloat64()
		f[i] = []float64{x, x + 0.3*r.NormFloat64(), r.NormFloat64() * 2, -x}
	}
	s := FeatureStats(f)
	got, err := FID(s, s)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got) > 1e-6 {
		t.Fatalf("FID(s, s) = %g, want 0", got)
	}
}
