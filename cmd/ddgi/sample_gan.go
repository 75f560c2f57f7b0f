package main

import (
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"strconv"
	"strings"

	"ddgi/auxnets"
	"ddgi/data"
	"ddgi/face"
	"ddgi/gan"
	"ddgi/gan/eg3d"
	"ddgi/gan/stylegan2"
	"ddgi/internal/imageio"
	progressbar "ddgi/internal/progress"
	"ddgi/kinds"
	"ddgi/metrics"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/synthface"
	"ddgi/torch"
)

func init() {
	registerIn("sample", command{name: "gan", summary: "sample a StyleGAN2 / EG3D generator: a grid of seeds (EG3D: a row of views per seed and a turn GIF)", run: runSampleGAN})
}

func runSampleGAN(args []string) error {
	fs := newFlags("sample gan", "--generator weights/stylegan2_small64.safetensors --seeds 0-15 --trunc 0.7 --out grid.png")
	arch := fs.String("arch", "", "stylegan2 or eg3d (default: read from the generator's metadata)")
	generator := fs.String("generator", "", "generator safetensors: shipped weights, a run's G_ema.safetensors or a `ddgi convert`ed public one")
	weights := fs.String("weights", "", "model-set folder: its generator of --arch (default stylegan2) by the folder's manifest (role gan.<arch>), else the shipped file name; a file here is read as --generator")
	seeds := fs.String("seeds", "0-15", "latent seeds: a range a-b and/or a comma list")
	wplusPath := fs.String("w-plus", "", "render these W+ codes instead of seeds: safetensors with tensor w_plus [N,L,D] (as `ddgi generate` writes)")
	raw := fs.String("raw", "", "also write the float images here: safetensors with tensor image [N,3,H,W] in the generator's range (EG3D: every view, seed-major)")
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
	if *trunc < 0 || *trunc > 2 {
		return fmt.Errorf("--trunc %g: want 0…2 (1: none, below 1 towards the mean face, above 1 away from it)", *trunc)
	}
	if err := makeParents(*out, *raw, *gif); err != nil {
		return err
	}
	path, err := generatorPath(*generator, *weights, *arch)
	if err != nil {
		return err
	}
	nm, err := stylegan2.ParseNoiseMode(*noise)
	if err != nil {
		return err
	}
	a := *arch
	if a == "" {
		ga, err := face.GeneratorArch(path)
		if err != nil {
			return err
		}
		a = string(ga)
	}
	if *fid > 0 {
		return ganFID(path, a, *fid, *fidNet)
	}
	codes := latentCodes{psi: *trunc}
	if *wplusPath != "" {
		if codes.wplus, _, err = readWPlus(*wplusPath); err != nil {
			return err
		}
	} else if codes.seeds, err = parseSeeds(*seeds); err != nil {
		return err
	}
	// The grid records what drew it (PNG text chunks), as generate's images do.
	prov := map[string]string{"Software": "ddgi " + Version, "ddgi:gan": a, "ddgi:trunc": fmt.Sprint(*trunc), "ddgi:noise": *noise}
	if prov["ddgi:gan-sha256"], err = filesHash(map[string]string{"gan": path}); err != nil {
		return err
	}
	if *wplusPath != "" {
		if prov["ddgi:latent-sha256"], err = filesHash(map[string]string{"w": *wplusPath}); err != nil {
			return err
		}
	} else {
		prov["ddgi:seeds"] = *seeds
	}
	if kinds.GANArch(a) == kinds.EG3D {
		prov["ddgi:views"], prov["ddgi:yaw"] = fmt.Sprint(*views), fmt.Sprint(*yaw)
	}
	if terr := torch.Try(func() {
		torch.NoGrad(func() {
			switch kinds.GANArch(a) {
			case kinds.StyleGAN2:
				err = sampleStyleGAN2(path, codes, nm, *noise, *out, *raw, *cols, prov)
			case kinds.EG3D:
				err = sampleEG3D(path, codes, nm, *noise, *out, *raw, *views, *yaw, *gif, *depth, prov)
			default:
				err = fmt.Errorf("--arch %q: want stylegan2 or eg3d", a)
			}
		})
	}); terr != nil {
		return terr
	}
	return err
}

// generatorPath resolves --generator / --weights to one generator file.
func generatorPath(generator, weights, arch string) (string, error) {
	switch {
	case generator != "" && weights != "":
		return "", fmt.Errorf("give --generator FILE or --weights DIR, not both")
	case generator != "":
		return generator, nil
	case weights == "":
		return "", fmt.Errorf("--generator FILE (or --weights DIR, a model-set folder) is required")
	}
	st, err := os.Stat(weights)
	if err != nil {
		return "", fmt.Errorf("--weights: %w", err)
	}
	if !st.IsDir() {
		return weights, nil
	}
	if arch == "" {
		arch = string(kinds.StyleGAN2)
	}
	return face.Options{Weights: weights, GAN: kinds.GANArch(arch)}.Files()["gan"], nil // the set's manifest, else the shipped name
}

// latentCodes are what sample gan renders: seeds mapped with truncation
// ψ, or given W+ codes (nil seeds).
type latentCodes struct {
	seeds []uint64
	wplus *torch.Tensor // [N,L,D]
	psi   float64
}

// names are the captions of the codes: seeds, or "w+ i".
func (c latentCodes) names() []string {
	if c.wplus != nil {
		out := make([]string, c.wplus.Size(0))
		for i := range out {
			out[i] = fmt.Sprintf("w+ %d", i)
		}
		return out
	}
	out := make([]string, len(c.seeds))
	for i, s := range c.seeds {
		out[i] = fmt.Sprint(s)
	}
	return out
}

// wPlus returns the codes as w+ [N,L,D] for a generator whose mapping is
// mapping (cam: EG3D's conditioning camera, nil for StyleGAN2), checking
// given codes against its L and D.
func (c latentCodes) wPlus(numWS, wdim, zdim int, mapping func(z, cam *torch.Tensor, psi float64) *torch.Tensor, cam *torch.Tensor) (*torch.Tensor, error) {
	if c.wplus == nil {
		z := seedLatents(c.seeds, zdim)
		if cam != nil {
			cam = cam.Repeat(z.Size(0), 1)
		}
		return mapping(z, cam, c.psi), nil
	}
	if s := c.wplus.Shape(); s[1] != int64(numWS) || s[2] != int64(wdim) {
		return nil, fmt.Errorf("--w-plus codes are %v; this generator takes [N,%d,%d]", s, numWS, wdim)
	}
	return c.wplus, nil
}

// readWPlus reads tensor w_plus [N,L,D] (finite, 1 ≤ N ≤ 1024) and the
// file's metadata (what `ddgi generate` recorded about the code).
func readWPlus(path string) (*torch.Tensor, map[string]string, error) {
	w, meta, err := readTensorFile(path, "w_plus")
	if err != nil {
		return nil, nil, err
	}
	if sh := w.Shape(); len(sh) != 3 || sh[0] < 1 || sh[0] > 1024 {
		w.Free()
		return nil, nil, fmt.Errorf("%s: w_plus is %v; want [N,L,D] with 1 ≤ N ≤ 1024", path, sh)
	}
	return w, meta, nil
}

// readTensorFile reads the tensor name of a safetensors file as a
// persistent fp32 CPU tensor, refusing NaN and Inf, with the file's
// metadata.
func readTensorFile(path, name string) (*torch.Tensor, map[string]string, error) {
	f, err := safetensors.Load(path)
	if err != nil {
		return nil, nil, err
	}
	st, ok := f.Tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("%s: no tensor %s (has %v)", path, name, f.Names())
	}
	var w *torch.Tensor
	terr := torch.Try(func() {
		if w, err = nn.FromSafetensors(st, torch.CPU); err != nil {
			return
		}
		w = w.To(torch.Float32)
		if w.IsFinite().To(torch.Float32).MinAll().Item() == 0 {
			err = errors.New("holds NaN or Inf")
			return
		}
		torch.Persist(w)
	})
	if err == nil {
		err = terr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s: %w", path, name, err)
	}
	return w, f.Metadata, nil
}

// writeRaw saves float images [N,C,H,W] as tensor image.
func writeRaw(path string, img *torch.Tensor, meta map[string]string) error {
	st, err := nn.ToSafetensors(img.To(torch.Float32).Contiguous(), false)
	if err != nil {
		return err
	}
	if err := safetensors.Save(path, &safetensors.File{Metadata: meta, Tensors: map[string]safetensors.Tensor{"image": st}}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (image %v)\n", path, img.Shape())
	return nil
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

func sampleStyleGAN2(path string, codes latentCodes, nm stylegan2.NoiseMode, noiseName, out, raw string, cols int, prov map[string]string) error {
	g, err := stylegan2.Load(path, torch.CPU)
	if err != nil {
		return err
	}
	wp, err := codes.wPlus(g.NumWS(), g.Cfg.WDim, g.Cfg.ZDim, g.Mapping, nil)
	if err != nil {
		return err
	}
	caps := codes.names()
	var tiles []image.Image
	var raws []*torch.Tensor
	bar := progressbar.New("render", 0, int64(len(caps)), "img")
	for i := range caps { // one at a time: a 1024² image's activations are GBs
		sc := torch.NewScope()
		img := g.Synthesis(wp.Narrow(0, int64(i), 1), nm)
		if raw != "" {
			sc.Keep(img)
			raws = append(raws, img)
		}
		t, e := imageio.FromTensor(img.Clamp(-1, 1))
		sc.Close()
		if err = e; err != nil {
			return err
		}
		tiles = append(tiles, t...)
		bar.Set(int64(i+1), nil)
	}
	bar.Finish()
	if err := imageio.SavePNGText(out, imageio.Grid(tiles, caps, cols, 2), prov); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d images, %s)\n", out, len(caps), codes.describe())
	if raw != "" {
		return writeRaw(raw, torch.Cat(raws, 0), map[string]string{"generator": path, "noise": noiseName})
	}
	return nil
}

// describe says where the codes came from.
func (c latentCodes) describe() string {
	if c.wplus != nil {
		return "given w+ codes"
	}
	return fmt.Sprintf("ψ=%.2f", c.psi)
}

// sampleEG3D writes a row of views (yaw spread over ±yaw) per seed and,
// with gif set, a turn of the first seed from −yaw to +yaw and back. With
// depth, two more rows per seed show the raw neural rendering (upsampled)
// and its depth map, shared scale per seed.
func sampleEG3D(path string, codes latentCodes, nm stylegan2.NoiseMode, noiseName, out, raw string, views int, yaw float64, gif string, depth bool, prov map[string]string) error {
	g, err := eg3d.Load(path, torch.CPU, synthface.DefaultOrbit)
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
	// Seeds are mapped conditioned on the frontal camera, as EG3D samples.
	wp, err := codes.wPlus(g.NumWS(), g.Cfg.Backbone.WDim, g.Cfg.Backbone.ZDim, g.Mapping, g.Camera(0, 0))
	if err != nil {
		return err
	}
	names := codes.names()
	var tiles []image.Image
	var caps []string
	var raws []*torch.Tensor
	const frames = 24 // of the --gif turn
	total := len(names) * views
	if gif != "" {
		total += frames
	}
	bar := progressbar.New("render", 0, int64(total), "view")
	for i := range names {
		torch.Scoped(func() {
			w := wp.Narrow(0, int64(i), 1).Repeat(int64(views), 1, 1)
			cams := make([]*torch.Tensor, views)
			for k, y := range yaws {
				cams[k] = g.Camera(y, 0)
			}
			o := g.Synthesis(w, torch.Cat(cams, 0), nm)
			if raw != "" {
				r := o.Image.Contiguous()
				torch.Persist(r)
				raws = append(raws, r)
			}
			rows := []*torch.Tensor{o.Image.Clamp(-1, 1)}
			rowNames := []string{""}
			if depth {
				n := int64(g.Cfg.ImgRes)
				rows = append(rows, torch.Interpolate(o.ImageRaw, n, n, torch.Nearest, false).Clamp(-1, 1),
					torch.Interpolate(depthImage(o.Depth, o.Weight), n, n, torch.Nearest, false))
				rowNames = append(rowNames, " raw", " depth")
			}
			for r, t := range rows {
				imgs, e := imageio.FromTensor(t)
				if e != nil {
					err = e
					return
				}
				tiles = append(tiles, imgs...)
				for _, y := range yaws {
					c := fmt.Sprintf("%s yaw%+.0f", names[i], y) // the caption font has no degree sign
					if r > 0 {
						c = names[i] + rowNames[r]
					}
					caps = append(caps, c)
				}
			}
		})
		if err != nil {
			return err
		}
		bar.Add(int64(views))
	}
	if gif == "" {
		bar.Finish()
	}
	if err := imageio.SavePNGText(out, imageio.Grid(tiles, caps, views, 2), prov); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d codes × %d views, %s)\n", out, len(names), views, codes.describe())
	if raw != "" {
		if err := writeRaw(raw, torch.Cat(raws, 0), map[string]string{"generator": path, "noise": noiseName, "yaws": fmt.Sprint(yaws)}); err != nil {
			return err
		}
	}
	if gif == "" {
		return nil
	}
	var fr []image.Image
	for f := range frames {
		y := yaw * math.Sin(2*math.Pi*float64(f)/frames)
		torch.Scoped(func() {
			imgs, e := imageio.FromTensor(g.Synthesis(wp.Narrow(0, 0, 1), g.Camera(y, 0), nm).Image.Clamp(-1, 1))
			if e != nil {
				err = e
				return
			}
			fr = append(fr, imgs[0])
		})
		if err != nil {
			return err
		}
		bar.Add(1)
	}
	bar.Finish()
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
		net, err := auxnets.LoadClassifier(netPath, auxnets.NetFID, torch.CPU)
		if err != nil {
			return err
		}
		features = func(x *torch.Tensor) [][]float64 { return metrics.Rows(net.Features(x)) }
		kind = "FID with ddgi's SynthFace FID classifier features (not Inception)"
	}
	var gen func(z, cam *torch.Tensor) *torch.Tensor
	zdim, res := 0, 0
	switch kinds.GANArch(arch) {
	case kinds.StyleGAN2:
		g, err := stylegan2.Load(path, torch.CPU)
		if err != nil {
			return err
		}
		gen = func(z, _ *torch.Tensor) *torch.Tensor { return g.Forward(z, nil, 1, stylegan2.NoiseRandom) }
		zdim, res = g.Cfg.ZDim, g.Cfg.Resolution
	case kinds.EG3D:
		g, err := eg3d.Load(path, torch.CPU, synthface.DefaultOrbit)
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
