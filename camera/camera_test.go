package camera

import (
	"math"
	"testing"
)

// TestOrbitLabel: the frontal camera sits Radius in front of the pivot
// (+z) looking back at it, a 90° yaw moves it to +x, and the intrinsics
// are the orbit's focal with the principal point at the centre.
func TestOrbitLabel(t *testing.T) {
	o := Orbit{Pivot: [3]float64{0.1, -0.2, 0.3}, Radius: 2, Focal: 4}
	near := func(a float32, b float64) bool { return math.Abs(float64(a)-b) < 1e-6 }
	f := o.Label(0, 0)
	// Row-major 4×4: translation in column 3, forward (z axis) in column 2.
	if !near(f[3], 0.1) || !near(f[7], -0.2) || !near(f[11], 2.3) {
		t.Fatalf("frontal camera at (%g, %g, %g), want (0.1, -0.2, 2.3)", f[3], f[7], f[11])
	}
	if !near(f[2], 0) || !near(f[6], 0) || !near(f[10], -1) {
		t.Fatalf("frontal camera looks along (%g, %g, %g), want (0, 0, -1)", f[2], f[6], f[10])
	}
	if !near(f[16], 4) || !near(f[18], 0.5) || !near(f[20], 4) || !near(f[21], 0.5) || !near(f[24], 1) {
		t.Fatalf("intrinsics %v", f[16:])
	}
	s := o.Label(90, 0)
	if !near(s[3], 2.1) || !near(s[11], 0.3) || !near(s[2], -1) {
		t.Fatalf("90° yaw: camera at x=%g z=%g looking along x %g", s[3], s[11], s[2])
	}
	if u := o.Label(0, 30); !(u[7] > -0.2+0.9) {
		t.Fatalf("30° pitch left the camera at y=%g, want it raised by radius·sin 30°", u[7])
	}
}
