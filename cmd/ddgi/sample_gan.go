package main

import (
	"fmt"
	"image"
	"math"
	"os"
	"strconv"
	"strings"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/gan"
	"ddgi/gan/eg3d"
	"ddgi/gan/stylegan2"
	"ddgi/internal/imageio"
	progressbar "ddgi/internal/progress"
	"ddgi/metrics"
	"ddgi/torch"
)

func init() {
	registerIn("sample", command{name: "gan", summary: "sample a StyleGAN2 / EG3D generator: a grid of seeds (EG3D: a row of views per seed and a turn GIF)", run: runSampleGAN})
}

func runSampleGAN(args []string) error {
	fs := newFlags("sample gan", "--weights weights/stylegan2_small64.safetensors --seeds 0-15 --trunc 0.7 --out grid.png")
	arch := fs.String("arch", "", "stylegan2 or eg3d (default: read from the weights' metadata)")
	weights := fs.String("weights", "", "generator safetensors (shipped weights or a run's G_ema.safetensors)")
	seeds := fs.String("seeds", "0-15", "latent seeds: a range a-b and/or a comma list")
	trunc := fs.Float64("trunc", 0.7, "truncation ψ (1 = none)")
	noise := fs.String("noise", "const", "noise maps: const, random or none")
	out := fs.String("out", "grid.png", "output PNG")
	cols := fs.Int("cols", 8, "grid columns (StyleGAN2)")
	views := fs.Int("views", 5, "EG3D: views per seed, yaw spread over ±yaw")
	yaw := fs.Float64("yaw", 40, "EG3D: largest yaw in degrees (≤ 50)")
	gif := fs.String("gif", "", "EG3D: also write an animated turn of the first seed here")
	depth := fs.Bool("depth", false, "EG3D: under each seed's views add the raw volume rendering and its depth (near = bright), to see the geometry the super-resolution hides")
	fid := fs.Int("fid", 0, "instead of a grid, print the FID of this many samples (ψ=1) vs as many unseen SynthFace train images")
	fidNet := fs.String("fid-net", "", "FID features from this auxnets fid classifier (weights/aux_fid.safetensors); empty: 8×8 pixel statistics")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *weights == "" {
		return fmt.Errorf("--weights is required")
	}
	ss, err := parseSeeds(*seeds)
	if err != nil {
		return err
	}
	nm, err := stylegan2.ParseNoiseMode(*noise)
	if err != nil {
		return err
	}
	a := *arch
	if a == "" {
		if a, err = weightsArch(*weights); err != nil {
			return err
		}
	}
	if *fid > 0 {
		return ganFID(*weights, a, *fid, *fidNet)
	}
	if terr := torch.Try(func() {
		torch.NoGrad(func() {
			switch a {
			case "stylegan2":
				err = sampleStyleGAN2(*weights, ss, *trunc, nm, *out, *cols)
			case "eg3d":
				err = sampleEG3D(*weights, ss, *trunc, nm, *out, *views, *yaw, *gif, *depth)
			default:
				err = fmt.Errorf("--arch %q: want stylegan2 or eg3d", a)
			}
		})
	}); terr != nil {
		return terr
	}
	return err
}

// weightsArch reads the "arch" metadata key (run checkpoints lack it:
// they are told apart by their config).
func weightsArch(path string) (string, error) {
	var probe struct {
		PlaneRes int `json:"plane_res"`
	}
	f, err := stylegan2.ReadConfig(path, &probe)
	if err != nil {
		return "", err
	}
	if a, ok := f.Metadata["arch"]; ok {
		return a, nil
	}
	if probe.PlaneRes > 0 {
		return "eg3d", nil
	}
	return "stylegan2", nil
}

func parseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--seeds %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a {
				return nil, fmt.Errorf("--seeds %q: bad range %q", s, part)
			}
		}
		for v := a; v <= b; v++ {
			out = append(out, v)
		}
	}
	if len(out) == 0 || len(out) > 1024 {
		return nil, fmt.Errorf("--seeds %q: want 1…1024 seeds", s)
	}
	return out, nil
}

// seedLatents draws z for each seed as training previews do.
func seedLatents(seeds []uint64, zdim int) *torch.Tensor {
	zs := make([]*torch.Tensor, len(seeds))
	for i, s := range seeds {
		zs[i] = torch.Randn(torch.NewGenerator(s), []int64{1, int64(zdim)}, torch.Float32, torch.CPU)
	}
	return torch.Cat(zs, 0)
}

func sampleStyleGAN2(path string, seeds []uint64, psi float64, nm stylegan2.NoiseMode, out string, cols int) error {
	g, err := stylegan2.Load(path, torch.CPU)
	if err != nil {
		return err
	}
	img := g.Forward(seedLatents(seeds, g.Cfg.ZDim), nil, psi, nm).Clamp(-1, 1)
	tiles, err := imageio.FromTensor(img)
	if err != nil {
		return err
	}
	caps := make([]string, len(seeds))
	for i, s := range seeds {
		caps[i] = fmt.Sprint(s)
	}
	if err := imageio.SavePNG(out, imageio.Grid(tiles, caps, cols, 2)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d seeds, ψ=%.2f)\n", out, len(seeds), psi)
	return nil
}

// sampleEG3D writes a row of views (yaw spread over ±yaw) per seed and,
// with gif set, a turn of the first seed from −yaw to +yaw and back. With
// depth, two more rows per seed show the raw neural rendering (upsampled)
// and its depth map, shared scale per seed.
func sampleEG3D(path string, seeds []uint64, psi float64, nm stylegan2.NoiseMode, out string, views int, yaw float64, gif string, depth bool) error {
	g, err := eg3d.Load(path, torch.CPU)
	if err != nil {
		return err
	}
	if views < 1 || yaw < 0 || yaw > 50 {
		return fmt.Errorf("--views ≥ 1 and 0 ≤ --yaw ≤ 50")
	}
	yaws := make([]float64, views)
	for i := range yaws {
		if views > 1 {
			yaws[i] = -yaw + 2*yaw*float64(i)/float64(views-1)
		}
	}
	z := seedLatents(seeds, g.Cfg.Backbone.ZDim)
	// Codes are conditioned on the frontal camera, as EG3D samples.
	wp := g.Mapping(z, eg3d.Camera(0, 0).Repeat(z.Size(0), 1), psi)
	var tiles []image.Image
	var caps []string
	for i := range seeds {
		torch.Scoped(func() {
			w := wp.Narrow(0, int64(i), 1).Repeat(int64(views), 1, 1)
			cams := make([]*torch.Tensor, views)
			for k, y := range yaws {
				cams[k] = eg3d.Camera(y, 0)
			}
			o := g.Synthesis(w, torch.Cat(cams, 0), nm)
			rows := []*torch.Tensor{o.Image.Clamp(-1, 1)}
			names := []string{""}
			if depth {
				n := int64(g.Cfg.ImgRes)
				rows = append(rows, torch.Interpolate(o.ImageRaw, n, n, torch.Nearest, false).Clamp(-1, 1),
					torch.Interpolate(depthImage(o.Depth, o.Weight), n, n, torch.Nearest, false))
				names = append(names, " raw", " depth")
			}
			for r, t := range rows {
				imgs, e := imageio.FromTensor(t)
				if e != nil {
					err = e
					return
				}
				tiles = append(tiles, imgs...)
				for _, y := range yaws {
					c := fmt.Sprintf("%d yaw%+.0f", seeds[i], y) // the caption font has no degree sign
					if r > 0 {
						c = fmt.Sprintf("%d%s", seeds[i], names[r])
					}
					caps = append(caps, c)
				}
			}
		})
		if err != nil {
			return err
		}
	}
	if err := imageio.SavePNG(out, imageio.Grid(tiles, caps, views, 2)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d seeds × %d views, ψ=%.2f)\n", out, len(seeds), views, psi)
	if gif == "" {
		return nil
	}
	const frames = 24
	var fr []image.Image
	for f := range frames {
		y := yaw * math.Sin(2*math.Pi*float64(f)/frames)
		torch.Scoped(func() {
			imgs, e := imageio.FromTensor(g.Synthesis(wp.Narrow(0, 0, 1), eg3d.Camera(y, 0), nm).Image.Clamp(-1, 1))
			if e != nil {
				err = e
				return
			}
			fr = append(fr, imgs[0])
		})
		if err != nil {
			return err
		}
	}
	if err := imageio.SaveGIF(gif, fr, 8); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d frames, yaw ±%.0f°)\n", gif, frames, yaw)
	return nil
}

// depthImage maps depth [B,1,N,N] to a grey image in [-1,1] for display:
// near = white, far or empty (opacity < 0.5) = black, the scale set by the
// covered pixels of the whole batch so views of one head compare.
func depthImage(d, weight *torch.Tensor) *torch.Tensor {
	covered := weight.GtScalar(0.5)
	lo, hi := d.MinAll().Item(), d.MaxAll().Item()
	if covered.To(torch.Float32).SumAll().Item() > 0 {
		lo = torch.Where(covered, d, torch.Full(d.Shape(), hi, torch.Float32, d.Device())).MinAll().Item()
		hi = torch.Where(covered, d, torch.Full(d.Shape(), lo, torch.Float32, d.Device())).MaxAll().Item()
	}
	g := d.SubScalar(hi).DivScalar(lo-hi+1e-6).Clamp(0, 1) // near → 1
	g = torch.Where(covered, g, torch.Full(g.Shape(), 0, torch.Float32, g.Device()))
	return g.MulScalar(2).SubScalar(1).Repeat(1, 3, 1, 1)
}

// fidFirstIndex is where the FID's real images start in the SynthFace train
// split: far beyond what `ddgi train gan --data-n` renders.
const fidFirstIndex = 1_000_000

// ganFID compares n generated images (ψ = 1, random noise; EG3D at the
// cameras of the real images) with n SynthFace images by the Fréchet
// distance of features: ddgi's FID classifier when netPath is set, else
// 8×8 area-downsampled pixels.
func ganFID(path, arch string, n int, netPath string) error {
	features, kind := gan.PixelFeatures, "pixel-statistics FID (8×8×3 area-downsampled pixels; not Inception)"
	if netPath != "" {
		net, err := auxnets.LoadClassifier(netPath, auxnets.NetFID)
		if err != nil {
			return err
		}
		features = func(x *torch.Tensor) [][]float64 { return metrics.Rows(net.Features(x)) }
		kind = "FID with ddgi's SynthFace FID classifier features (not Inception)"
	}
	var gen func(z, cam *torch.Tensor) *torch.Tensor
	zdim, res := 0, 0
	switch arch {
	case "stylegan2":
		g, err := stylegan2.Load(path, torch.CPU)
		if err != nil {
			return err
		}
		gen = func(z, _ *torch.Tensor) *torch.Tensor { return g.Forward(z, nil, 1, stylegan2.NoiseRandom) }
		zdim, res = g.Cfg.ZDim, g.Cfg.Resolution
	case "eg3d":
		g, err := eg3d.Load(path, torch.CPU)
		if err != nil {
			return err
		}
		gen = func(z, cam *torch.Tensor) *torch.Tensor { return g.Forward(z, cam, 1, stylegan2.NoiseRandom).Image }
		zdim, res = g.Cfg.Backbone.ZDim, g.Cfg.ImgRes
	default:
		return fmt.Errorf("--arch %q: want stylegan2 or eg3d", arch)
	}
	ds := data.NewSynthFace(data.Train, res, fidFirstIndex+n)
	var real, fake [][]float64
	rng := torch.NewGenerator(777)
	bar := progressbar.New("fid", 0, int64(n), "img")
	err := torch.Try(func() {
		torch.NoGrad(func() {
			const chunk = 50
			for done := 0; done < n; done += chunk {
				k := min(chunk, n-done)
				batch := make([]*data.Sample, k)
				for i := range batch {
					s, err := ds.Get(fidFirstIndex + done + i)
					if err != nil {
						panic(&torch.Error{Op: "fid", Msg: err.Error()})
					}
					batch[i] = s
				}
				torch.Scoped(func() {
					real = append(real, features(stylegan2.RealImages(batch))...)
					z := torch.Randn(rng, []int64{int64(k), int64(zdim)}, torch.Float32, torch.CPU)
					fake = append(fake, features(gen(z, stylegan2.RealCameras(batch)).Clamp(-1, 1))...)
				})
				bar.Set(int64(done+k), nil)
			}
		})
	})
	if err != nil {
		return err
	}
	bar.Finish()
	fmt.Printf("%s, %d vs %d images: %.4f\n", kind, n, n, metrics.FID(real, fake))
	return nil
}
