package synthface

import (
	"fmt"
	"math"

	"ddgi/camera"
)

// EG3D's FFHQ camera: radius 2.7 world units, normalised focal 4.2647 (an
// 18.8° vertical field of view), principal point at the image centre.
const (
	DefaultRadius = 2.7
	DefaultFocal  = 4.2647
	// worldPerCm scales the renderer's centimetres to EG3D world units, so a
	// head fills an FFHQ-like crop at the default radius and focal length.
	worldPerCm = 1.0 / 54
)

// Pivot is the point the default orbit camera looks at, in EG3D world units
// (EG3D uses (0, 0, 0.2) for FFHQ; ours centres the SynthFace head).
var Pivot = [3]float64{0, -0.03, 0.05}

// DefaultOrbit is SynthFace's camera prior, the orbit ddgi's 3D GAN was
// trained on: a model's caller hands it in (gan/eg3d knows no data).
var DefaultOrbit = camera.Orbit{Pivot: Pivot, Radius: DefaultRadius, Focal: DefaultFocal}

// Camera is a pinhole camera in EG3D's convention: CamToWorld is the 4×4
// camera-to-world matrix in OpenCV axes (x right, y down, z forward) and
// world units; Fx, Fy, Cx, Cy are intrinsics normalised by image size.
type Camera struct {
	CamToWorld [4][4]float64 `json:"cam2world"`
	Fx         float64       `json:"fx"`
	Fy         float64       `json:"fy"`
	Cx         float64       `json:"cx"`
	Cy         float64       `json:"cy"`
}

// OrbitCamera looks at Pivot from yaw and pitch (radians) at the given radius
// and focal, as EG3D's LookAtPoseSampler: yaw > 0 moves the camera toward the
// subject's left (+x), pitch > 0 moves it up.
func OrbitCamera(yaw, pitch, radius, focal float64) Camera {
	return LookAtCamera(yaw, pitch, radius, focal, Pivot)
}

// LookAtCamera is OrbitCamera around an arbitrary target (world units).
func LookAtCamera(yaw, pitch, radius, focal float64, target [3]float64) Camera {
	c := Camera{CamToWorld: camera.LookAt(yaw, pitch, radius, target)}
	c.Fx, c.Fy, c.Cx, c.Cy = focal, focal, 0.5, 0.5
	return c
}

// EG3D returns the 25 floats of EG3D's camera label: the row-major 4×4
// cam-to-world matrix, then the row-major 3×3 normalised intrinsics.
func (c Camera) EG3D() [25]float32 {
	return camera.Label(c.CamToWorld, c.Fx, c.Fy, c.Cx, c.Cy)
}

// CameraFromEG3D is the inverse of EG3D.
func CameraFromEG3D(v [25]float32) Camera {
	var c Camera
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			c.CamToWorld[i][j] = float64(v[i*4+j])
		}
	}
	c.Fx, c.Cx, c.Fy, c.Cy = float64(v[16]), float64(v[18]), float64(v[20]), float64(v[21])
	return c
}

// Validate reports cameras the renderer cannot use.
func (c Camera) Validate() error {
	if !(c.Fx > 0 && c.Fy > 0) || math.IsInf(c.Fx, 0) || math.IsInf(c.Fy, 0) {
		return fmt.Errorf("camera: focal lengths must be positive, got fx=%g fy=%g", c.Fx, c.Fy)
	}
	for i := 0; i < 3; i++ {
		col := vec3{c.CamToWorld[0][i], c.CamToWorld[1][i], c.CamToWorld[2][i]}
		if l := col.len(); math.Abs(l-1) > 1e-2 {
			return fmt.Errorf("camera: rotation column %d has length %.4f, want 1", i, l)
		}
	}
	return nil
}

// Position is the camera centre in world units.
func (c Camera) Position() [3]float64 {
	return [3]float64{c.CamToWorld[0][3], c.CamToWorld[1][3], c.CamToWorld[2][3]}
}

// Yaw and Pitch recover the orbit angles (radians) from the viewing direction.
func (c Camera) Yaw() float64 {
	return math.Atan2(-c.CamToWorld[0][2], -c.CamToWorld[2][2])
}

func (c Camera) Pitch() float64 {
	return math.Asin(clamp(-c.CamToWorld[1][2], -1, 1))
}

// Light is a directional key light plus hemispherical ambient.
type Light struct {
	Dir       [3]float64 `json:"dir"` // toward the light, head space
	Color     [3]float64 `json:"color"`
	Ambient   [3]float64 `json:"ambient"` // sky colour
	Ground    [3]float64 `json:"ground"`  // bounce from below
	Softness  float64    `json:"softness"`
	Intensity float64    `json:"intensity"`
}

// streamYaw draws WithSpreadYaw's choice and yaw.
const streamYaw = 0xcb

// MaxYaw bounds the sampled yaw (radians): ±50°.
const MaxYaw = 50 * math.Pi / 180

// WithSpreadYaw re-aims a share of samples (chosen by the seed alone) at a
// yaw drawn uniformly in ±50°, keeping pitch, distance and target. The
// default yaw is FFHQ-like (σ 19°), so side views are rare; a 3D GAN that
// must render them trains on a flatter pose distribution (EG3D trains on
// pose-rebalanced FFHQ).
func WithSpreadYaw(p Params, share float64) Params {
	if share <= 0 {
		return p
	}
	r := newRand(p.Seed, streamYaw)
	if r.Float64() >= share {
		return p
	}
	yaw := (2*r.Float64() - 1) * MaxYaw
	c := p.Camera
	pos := c.Position()
	fwd := vec3{c.CamToWorld[0][2], c.CamToWorld[1][2], c.CamToWorld[2][2]}
	// The orbit's target: the point of the viewing ray nearest the pivot.
	radius := vec3{Pivot[0] - pos[0], Pivot[1] - pos[1], Pivot[2] - pos[2]}.dot(fwd)
	t := vec3{pos[0], pos[1], pos[2]}.add(fwd.mul(radius))
	p.Camera = LookAtCamera(yaw, c.Pitch(), radius, c.Fx, [3]float64{t.x, t.y, t.z})
	return p
}
