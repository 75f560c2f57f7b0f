// Package camera is EG3D's pinhole-camera convention, shared by the data
// that carries cameras (SynthFace renders, dataset folders) and the 3D GAN
// conditioned on them: look-at poses on an orbit and the 25-float label.
// It holds no data's numbers: an Orbit comes from the data (synthface's
// DefaultOrbit for ddgi's models).
package camera

import "math"

// Dim is the width of a camera label: 16 cam-to-world + 9 intrinsics.
const Dim = 25

// Orbit is a training set's camera prior: the point its cameras look at,
// their distance and normalised focal length (world units).
type Orbit struct {
	Pivot  [3]float64
	Radius float64
	Focal  float64
}

// Label is the camera at (yaw, pitch) degrees on the orbit, principal point
// at the image centre.
func (o Orbit) Label(yawDeg, pitchDeg float64) [Dim]float32 {
	return Label(LookAt(yawDeg*math.Pi/180, pitchDeg*math.Pi/180, o.Radius, o.Pivot), o.Focal, o.Focal, 0.5, 0.5)
}

// LookAt is the cam-to-world matrix (OpenCV axes: x right, y down, z
// forward) of a camera radius away from target at yaw and pitch (radians),
// looking at it, as EG3D's LookAtPoseSampler: yaw > 0 moves the camera
// toward the subject's left (+x), pitch > 0 moves it up.
func LookAt(yaw, pitch, radius float64, target [3]float64) [4][4]float64 {
	t := vec{target[0], target[1], target[2]}
	pos := t.add(vec{math.Sin(yaw) * math.Cos(pitch), math.Sin(pitch), math.Cos(yaw) * math.Cos(pitch)}.mul(radius))
	fwd := t.sub(pos).norm()
	// EG3D create_cam2world_matrix: right = -(up×fwd), down = fwd×right.
	right := vec{0, 1, 0}.cross(fwd).mul(-1).norm()
	down := fwd.cross(right).norm()
	var m [4][4]float64
	for j, v := range [3]vec{right, down, fwd} {
		m[0][j], m[1][j], m[2][j] = v[0], v[1], v[2]
	}
	m[0][3], m[1][3], m[2][3] = pos[0], pos[1], pos[2]
	m[3][3] = 1
	return m
}

// Label is EG3D's camera label: the row-major 4×4 cam-to-world matrix, then
// the row-major 3×3 intrinsics normalised by image size.
func Label(camToWorld [4][4]float64, fx, fy, cx, cy float64) [Dim]float32 {
	var v [Dim]float32
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			v[i*4+j] = float32(camToWorld[i][j])
		}
	}
	k := [9]float64{fx, 0, cx, 0, fy, cy, 0, 0, 1}
	for i, x := range k {
		v[16+i] = float32(x)
	}
	return v
}

type vec [3]float64

func (a vec) add(b vec) vec     { return vec{a[0] + b[0], a[1] + b[1], a[2] + b[2]} }
func (a vec) sub(b vec) vec     { return vec{a[0] - b[0], a[1] - b[1], a[2] - b[2]} }
func (a vec) mul(s float64) vec { return vec{a[0] * s, a[1] * s, a[2] * s} }
func (a vec) dot(b vec) float64 { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }
func (a vec) cross(b vec) vec {
	return vec{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}

// norm scales a to unit length (zero stays zero).
func (a vec) norm() vec {
	l := math.Sqrt(a.dot(a))
	if l == 0 {
		return a
	}
	return a.mul(1 / l)
}
