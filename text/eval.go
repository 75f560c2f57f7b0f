package text

import (
	"math"

	"ddgi/torch"
)

// Retrieval scores matching pairs (row i of txt goes with row i of img,
// both unit-norm): the fraction of captions whose image ranks first / in the
// top five among all images, and the same from images to captions.
func Retrieval(txt, img *torch.Tensor) (t2i1, t2i5, i2t1, i2t5 float64) {
	var sim []float32
	n := int(txt.Size(0))
	torch.Scoped(func() { sim = txt.Matmul(img.Transpose(0, 1)).Float32s() })
	rank := func(i int, at func(j int) float32) int {
		r := 0
		for j := 0; j < n; j++ {
			if j != i && at(j) > at(i) {
				r++
			}
		}
		return r
	}
	for i := 0; i < n; i++ {
		rt := rank(i, func(j int) float32 { return sim[i*n+j] })
		ri := rank(i, func(j int) float32 { return sim[j*n+i] })
		t2i1 += b2f(rt < 1)
		t2i5 += b2f(rt < 5)
		i2t1 += b2f(ri < 1)
		i2t5 += b2f(ri < 5)
	}
	f := float64(n)
	return t2i1 / f, t2i5 / f, i2t1 / f, i2t5 / f
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ProbeAccuracy fits a ridge-regression linear probe (features plus a bias,
// targets 0/1) on the training rows and returns, per target column, the test
// accuracy of thresholding its prediction at ½.
func ProbeAccuracy(trainX, trainY, testX, testY [][]float64, lambda float64) []float64 {
	d := len(trainX[0]) + 1
	k := len(trainY[0])
	aug := func(x []float64) []float64 { return append(append([]float64{}, x...), 1) }
	// Normal equations (XᵀX + λI) W = XᵀY, solved by Cholesky.
	a := make([]float64, d*d)
	b := make([]float64, d*k)
	for r := range trainX {
		x := aug(trainX[r])
		for i := 0; i < d; i++ {
			for j := 0; j <= i; j++ {
				a[i*d+j] += x[i] * x[j]
			}
			for c := 0; c < k; c++ {
				b[i*k+c] += x[i] * trainY[r][c]
			}
		}
	}
	for i := 0; i < d; i++ {
		a[i*d+i] += lambda
		for j := 0; j < i; j++ {
			a[j*d+i] = a[i*d+j]
		}
	}
	l := cholesky(a, d)
	w := make([]float64, d*k)
	y := make([]float64, d)
	for c := 0; c < k; c++ {
		for i := 0; i < d; i++ { // L y = b
			s := b[i*k+c]
			for j := 0; j < i; j++ {
				s -= l[i*d+j] * y[j]
			}
			y[i] = s / l[i*d+i]
		}
		for i := d - 1; i >= 0; i-- { // Lᵀ w = y
			s := y[i]
			for j := i + 1; j < d; j++ {
				s -= l[j*d+i] * w[j*k+c]
			}
			w[i*k+c] = s / l[i*d+i]
		}
	}
	acc := make([]float64, k)
	for r := range testX {
		x := aug(testX[r])
		for c := 0; c < k; c++ {
			p := 0.0
			for i := 0; i < d; i++ {
				p += x[i] * w[i*k+c]
			}
			acc[c] += b2f((p > 0.5) == (testY[r][c] > 0.5))
		}
	}
	for c := range acc {
		acc[c] /= float64(len(testX))
	}
	return acc
}

// cholesky returns lower-triangular L with L·Lᵀ = a (a symmetric positive
// definite, d×d row-major).
func cholesky(a []float64, d int) []float64 {
	l := make([]float64, d*d)
	for i := 0; i < d; i++ {
		for j := 0; j <= i; j++ {
			s := a[i*d+j]
			for p := 0; p < j; p++ {
				s -= l[i*d+p] * l[j*d+p]
			}
			if i == j {
				l[i*d+i] = math.Sqrt(math.Max(s, 1e-12))
			} else {
				l[i*d+j] = s / l[j*d+j]
			}
		}
	}
	return l
}
