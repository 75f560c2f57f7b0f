package eg3d

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddgi/camera"
	"ddgi/gan/stylegan2"
	"ddgi/nn"
	"ddgi/synthface"
	"ddgi/torch"
)

// orbitCam is the camera at (yaw, pitch) degrees on SynthFace's orbit,
// the one the shipped models learnt.
func orbitCam(yawDeg, pitchDeg float64) *torch.Tensor {
	return Camera(synthface.DefaultOrbit, yawDeg, pitchDeg)
}

func build(t testing.TB, name string) *Generator {
	t.Helper()
	c, err := Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(nn.NewStore(torch.CPU, 1).Root(), c)
	if err != nil {
		t.Fatal(err)
	}
	g.Orbit = synthface.DefaultOrbit
	return g
}

// TestShapes builds every preset; tiny and small64 render, ffhq256 renders
// one sample in the full suite, 512/1024 only build.
func TestShapes(t *testing.T) {
	for _, name := range []string{"tiny", "small64", "ffhq256", "ffhq512", "ffhq1024"} {
		t.Run(name, func(t *testing.T) {
			torch.Scoped(func() {
				c := Presets[name]
				g := build(t, name)
				if _, err := stylegan2.NewDiscriminator(nn.NewStore(torch.CPU, 2).Root(), c.DConfig(), stylegan2.DOpts{InChannels: 6, CDim: CameraDim}); err != nil {
					t.Fatal(err)
				}
				if c.ImgRes > 256 || (c.ImgRes == 256 && testing.Short()) {
					return
				}
				torch.NoGrad(func() {
					z := torch.Randn(torch.NewGenerator(0), []int64{1, int64(c.Backbone.ZDim)}, torch.Float32, torch.CPU)
					cam := orbitCam(20, 5)
					wp := g.Mapping(z, cam, 0.7)
					if s := wp.Shape(); s[1] != int64(c.NumWS()) || s[2] != int64(c.Backbone.WDim) {
						t.Fatalf("w+ %v", s)
					}
					o := g.Synthesis(wp, cam, stylegan2.NoiseConst)
					want := map[string][]int64{
						"image": {1, 3, int64(c.ImgRes), int64(c.ImgRes)}, "raw": {1, 3, int64(c.NeuralRes), int64(c.NeuralRes)},
						"depth": {1, 1, int64(c.NeuralRes), int64(c.NeuralRes)},
					}
					for k, x := range map[string]*torch.Tensor{"image": o.Image, "raw": o.ImageRaw, "depth": o.Depth} {
						if s := x.Shape(); len(s) != 4 || s[0] != want[k][0] || s[1] != want[k][1] || s[2] != want[k][2] || s[3] != want[k][3] {
							t.Fatalf("%s shape %v, want %v", k, s, want[k])
						}
					}
				})
			})
		})
	}
}

// sphere is an analytic density field: a ball of radius r at the origin
// with a sharp surface, coloured by position.
func sphere(r float64) Field {
	return func(pts *torch.Tensor) (*torch.Tensor, *torch.Tensor) {
		d := pts.Norm(2, []int64{2}, true)
		sigma := d.RSubScalar(r).MulScalar(1e5).Clamp(-10, 1000)
		return sigma, pts.AddScalar(0.5).Clamp(0, 1)
	}
}

// TestDepthConsistentAcrossViews renders a sphere from two yaws, lifts
// view A's depth to 3-D points, checks they lie on the sphere, projects
// the points facing view B into B and compares with B's rendered depth.
func TestDepthConsistentAcrossViews(t *testing.T) {
	torch.Scoped(func() {
		const res, r = 32, 0.3
		camA := orbitCam(-30, 0)
		camB := orbitCam(35, 10)
		opts := RenderOpts{Start: 2.25, End: 3.3, Samples: 32, Importance: 32}
		render := func(cam *torch.Tensor) (o, d *torch.Tensor, out Rendered) {
			o, d = Rays(cam, res)
			// The sphere sits at the origin; cameras orbit synthface.Pivot.
			return o, d, Render(sphere(r), o, d, opts)
		}
		oA, dA, ra := render(camA)
		_, _, rb := render(camB)
		depthA, wA := ra.Depth.Float64s(), ra.Weight.Float64s()
		depthB, wB := rb.Depth.Float64s(), rb.Weight.Float64s()
		pos, dir := oA.Float64s(), dA.Float64s()
		cb := camB.Float64s()
		var hits, compared int
		var worstSurf, worstDepth float64
		for i := 0; i < res*res; i++ {
			if wA[i] < 0.99 {
				continue
			}
			hits++
			var p [3]float64
			for k := range 3 {
				p[k] = pos[3*i+k] + depthA[i]*dir[3*i+k]
			}
			worstSurf = math.Max(worstSurf, math.Abs(math.Sqrt(p[0]*p[0]+p[1]*p[1]+p[2]*p[2])-r))
			// Camera B: centre, and the point in B's camera frame.
			cB := [3]float64{cb[3], cb[7], cb[11]}
			v := [3]float64{p[0] - cB[0], p[1] - cB[1], p[2] - cB[2]}
			if v[0]*p[0]+v[1]*p[1]+v[2]*p[2] > -0.5*r*math.Sqrt(v[0]*v[0]+v[1]*v[1]+v[2]*v[2]) {
				continue // faces away from camera B or is seen at a grazing angle
			}
			var xc [3]float64
			for k := range 3 {
				xc[k] = cb[0*4+k]*v[0] + cb[1*4+k]*v[1] + cb[2*4+k]*v[2] // Rᵀ v
			}
			u := cb[16]*xc[0]/xc[2] + cb[18]
			w := cb[20]*xc[1]/xc[2] + cb[21]
			px, py := int(u*res), int(w*res)
			if px < 0 || py < 0 || px >= res || py >= res || wB[py*res+px] < 0.99 {
				continue
			}
			compared++
			dist := math.Sqrt(v[0]*v[0] + v[1]*v[1] + v[2]*v[2])
			worstDepth = math.Max(worstDepth, math.Abs(depthB[py*res+px]-dist))
		}
		if hits < 50 || compared < 20 {
			t.Fatalf("too few pixels: %d hits, %d compared", hits, compared)
		}
		// A pixel spans ≈ 0.02 world units at this distance; nearest-pixel
		// lookup on a curved surface adds up to two pixels of depth slope.
		if worstSurf > 0.01 || worstDepth > 0.04 {
			t.Fatalf("surface error %.4f, cross-view depth error %.4f (over %d/%d pixels)", worstSurf, worstDepth, compared, hits)
		}
		t.Logf("surface error %.4f, cross-view depth error %.4f over %d pixels", worstSurf, worstDepth, compared)
	})
}

// TestImportanceSamplesSorted: merged coarse+fine depths are sorted.
func TestImportanceSamplesSorted(t *testing.T) {
	torch.Scoped(func() {
		g := torch.NewGenerator(3)
		ta := torch.Rand(g, []int64{2, 5, 7}, torch.Float32, torch.CPU).Cumsum(2)
		tb := torch.Rand(g, []int64{2, 5, 4}, torch.Float32, torch.CPU).Cumsum(2)
		tm, xs := mergeSorted(ta, tb, []*torch.Tensor{ta.Unsqueeze(3)}, []*torch.Tensor{tb.Unsqueeze(3)})
		d := tm.Narrow(2, 1, 10).Sub(tm.Narrow(2, 0, 10))
		if d.MinAll().Item() < 0 {
			t.Fatal("merged depths not sorted")
		}
		if maxAbs := xs[0].Squeeze(3).Sub(tm).Abs().MaxAll().Item(); maxAbs != 0 {
			t.Fatalf("values not carried with their depths (%g)", maxAbs)
		}
		if s := tm.Sum([]int64{2}, false).Sub(ta.Sum([]int64{2}, false).Add(tb.Sum([]int64{2}, false))).Abs().MaxAll().Item(); s > 1e-4 {
			t.Fatalf("merge lost samples (%g)", s)
		}
	})
}

// saveReload saves g at full precision and loads it back.
func saveReload(t *testing.T, g *Generator) *Generator {
	t.Helper()
	path := filepath.Join(t.TempDir(), "g.safetensors")
	if err := g.Save(path, false); err != nil {
		t.Fatal(err)
	}
	h, err := Load(path, torch.CPU, synthface.DefaultOrbit)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSaveLoadIdentical: a saved generator reloads to identical renders.
func TestSaveLoadIdentical(t *testing.T) {
	torch.Scoped(func() {
		g := build(t, "tiny")
		g.ComputeMeanLatent(1000, 1)
		h := saveReload(t, g)
		z := torch.Randn(torch.NewGenerator(9), []int64{2, int64(g.Cfg.Backbone.ZDim)}, torch.Float32, torch.CPU)
		cam := orbitCam(10, 0).Repeat(2, 1)
		torch.NoGrad(func() {
			a := g.Forward(z, cam, 0.7, stylegan2.NoiseConst)
			b := h.Forward(z, cam, 0.7, stylegan2.NoiseConst)
			if d := a.Image.Sub(b.Image).Abs().MaxAll().Item(); d != 0 {
				t.Fatalf("reloaded image differs by %g", d)
			}
			if d := a.Depth.Sub(b.Depth).Abs().MaxAll().Item(); d != 0 {
				t.Fatalf("reloaded depth differs by %g", d)
			}
		})
	})
}

// TestShapePrior: the core's density is a inside the ellipsoid, 0
// outside and in between on its shell; it floors the field there (a
// decoder density above it passes, one below is raised, none outside
// changes); a generator with it renders an opaque centre before any
// training and keeps the prior through save → load.
func TestShapePrior(t *testing.T) {
	torch.Scoped(func() {
		e := HeadEllipsoid
		c, r := e.Centre, e.Radii
		pts := torch.FromFloat32([]float32{
			float32(c[0]), float32(c[1]), float32(c[2]), // centre
			float32(c[0] + 0.85*r[0]), float32(c[1]), float32(c[2]), // on the shell: (1 − 0.85)/0.3 = 0.5
			float32(c[0]), float32(c[1] + 1.2*r[1]), float32(c[2]), // outside
		}, 1, 3, 3)
		core := ShapePriorDensity(pts, 6, c, r, 0.3)
		got := core.Float64s()
		for i, want := range []float64{6, 3, 0} {
			if math.Abs(got[i]-want) > 1e-4 {
				t.Fatalf("prior at point %d = %g, want %g", i, got[i], want)
			}
		}
		floored := WithCore(torch.FromFloat32([]float32{8, -5, -5}, 1, 3, 1), core).Float64s()
		if math.Abs(floored[0]-8) > 1e-6 || math.Abs(floored[1]-3) > 1e-4 || floored[2] != -5 {
			t.Fatalf("core floor gave %v, want [8 3 -5]", floored)
		}
		cfg := Presets["tiny"].WithShapePrior(30)
		g, err := NewGenerator(nn.NewStore(torch.CPU, 1).Root(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		h := saveReload(t, g)
		if h.Cfg.ShapePrior != 30 || h.Cfg.ShapeRadii != r || h.Cfg.ShapeShell != e.Shell {
			t.Fatalf("reloaded prior %g %v", h.Cfg.ShapePrior, h.Cfg.ShapeRadii)
		}
		torch.NoGrad(func() {
			z := torch.Randn(torch.NewGenerator(1), []int64{1, int64(cfg.Backbone.ZDim)}, torch.Float32, torch.CPU)
			o := h.Forward(z, orbitCam(30, 0), 1, stylegan2.NoiseConst)
			n := cfg.NeuralRes
			wt := o.Weight.Float64s()
			if centre, corner := wt[(n/2)*n+n/2], wt[0]; centre < 0.6 || corner > 0.3 {
				t.Fatalf("opacity centre %.3f corner %.3f: want an opaque core and clear corners", centre, corner)
			}
		})
	})
}

// BenchmarkGenerator64 reports small64 EG3D images/s (batch 8, one view).
func BenchmarkGenerator64(b *testing.B) {
	g := build(b, "small64")
	z := torch.Randn(torch.NewGenerator(0), []int64{8, 256}, torch.Float32, torch.CPU)
	cam := orbitCam(0, 0).Repeat(8, 1)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		torch.NoGrad(func() { torch.Scoped(func() { g.Forward(z, cam, 1, stylegan2.NoiseConst) }) })
	}
	b.ReportMetric(float64(8*b.N)/time.Since(start).Seconds(), "images/s")
}

// TestRenderChunksEqualsRender renders a tiny generator's rays whole and in
// chunks, with ddgi's and NVlabs' sampling: the same features, opacity and
// depth (NVlabs' depth clamp spans the whole batch either way).
func TestRenderChunksEqualsRender(t *testing.T) {
	for _, sampling := range []string{"", "eg3d"} {
		g := build(t, "tiny")
		g.Cfg.Sampling = sampling
		torch.NoGrad(func() {
			torch.Scoped(func() {
				z := torch.Randn(torch.NewGenerator(3), []int64{2, int64(g.Cfg.Backbone.ZDim)}, torch.Float32, torch.CPU)
				cam := torch.Cat([]*torch.Tensor{orbitCam(-20, 0), orbitCam(30, 5)}, 0)
				planes := g.Planes(g.Mapping(z, cam, 1), stylegan2.NoiseConst)
				o, d := Rays(cam, g.Cfg.NeuralRes)
				ro := RenderOpts{Start: g.Cfg.RayStart, End: g.Cfg.RayEnd, Samples: g.Cfg.DepthSamples, Importance: g.Cfg.ImportanceSamples, EG3D: sampling == "eg3d"}
				whole := Render(g.Field(planes), o, d, ro)
				parts := RenderChunks(g.Field(planes), o, d, ro, 7)
				for name, p := range map[string][2]*torch.Tensor{"feat": {whole.Feat, parts.Feat}, "weight": {whole.Weight, parts.Weight}, "depth": {whole.Depth, parts.Depth}} {
					if d := p[0].Sub(p[1]).Abs().MaxAll().Item(); d > 1e-5 {
						t.Errorf("sampling %q: %s differs by %g in chunks", sampling, name, d)
					}
				}
			})
		})
	}
}

// TestCameraNeedsOrbit: a generator whose caller handed in no orbit (and
// whose config names none) refuses to place a camera instead of rendering
// from a degenerate one; a config's own orbit is enough.
func TestCameraNeedsOrbit(t *testing.T) {
	g := build(t, "tiny")
	g.Orbit = camera.Orbit{}
	if err := torch.Try(func() { g.Camera(0, 0) }); err == nil || !strings.Contains(err.Error(), "orbit") {
		t.Fatalf("got %v, want a missing-orbit error", err)
	}
	g.Cfg.CameraPivot, g.Cfg.CameraRadius = &[3]float64{0, 0, 0.2}, 2.7
	g.Orbit.Focal = synthface.DefaultFocal
	torch.Scoped(func() {
		want := Camera(camera.Orbit{Pivot: [3]float64{0, 0, 0.2}, Radius: 2.7, Focal: synthface.DefaultFocal}, 10, 0).Float32s()
		for i, v := range g.Camera(10, 0).Float32s() {
			if v != want[i] {
				t.Fatalf("config orbit camera %d: %g, want %g", i, v, want[i])
			}
		}
	})
}
