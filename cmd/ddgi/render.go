package main

import (
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"ddgi/face"
	"ddgi/gan/eg3d"
	"ddgi/internal/imageio"
	"ddgi/kinds"
	"ddgi/torch"
)

func init() {
	register(command{name: "render", summary: "re-render a code saved by generate (<out>.latent.safetensors), e.g. from another camera with --gan eg3d", run: runRender})
}

func runRender(args []string) error {
	fs := newFlags("render", `--latent face.latent.safetensors --out face2.png [--yaw 30 --pitch 10 | --camera C] [--views 8]

Renders the W+ code that 'ddgi generate' saved beside its image with the
generator that made it (the model set's, or --generator): no encoder runs.
Without --yaw/--pitch/--camera it uses the camera generate recorded, so the
image matches generate's; --yaw or --pitch alone keeps the other recorded
angle. The PNG carries generate's record (prompt, seed, hashes) with the
new camera.`)
	latent := fs.String("latent", "", "the code: a .latent.safetensors written by `ddgi generate` (tensor w_plus [1,L,dim])")
	out := fs.String("out", "", "output PNG (with --views also <out>_views.png and <out>_turn.gif)")
	gan := fs.String("gan", "", "stylegan2 or eg3d (default: the one the latent records; it must agree)")
	generator := fs.String("generator", "", "render with this generator file instead of the model set's (the one the latent was generated with)")
	weights := fs.String("weights", "weights", "model-set folder (default: $DDGI_WEIGHTS, else weights/ beside the binary, else ./weights)")
	yaw := fs.Float64("yaw", 0, "eg3d: camera yaw in degrees (±50 trained; default: the latent's)")
	pitch := fs.Float64("pitch", 0, "eg3d: camera pitch in degrees (±20 trained; default: the latent's)")
	camera := fs.String("camera", "", "eg3d: render from this EG3D camera (25 numbers, a JSON array or a file; see generate -h)")
	views := fs.Int("views", 0, "eg3d: also render N views across the yaw range into <out>_views.png and <out>_turn.gif")
	devName := fs.String("device", "cpu", "cpu, cuda or cuda:N")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *latent == "":
		return errors.New("--latent is required (the .latent.safetensors `ddgi generate` writes beside its image)")
	case *out == "":
		return errors.New("--out is required")
	case !strings.HasSuffix(strings.ToLower(*out), ".png"):
		return fmt.Errorf("--out %q must end in .png", *out)
	case *generator != "" && flagSet(fs, "weights"):
		return errors.New("give --generator FILE or --weights DIR, not both")
	case *camera != "" && (flagSet(fs, "yaw") || flagSet(fs, "pitch")):
		return errors.New("give --camera or --yaw/--pitch, not both")
	}
	dev, err := torch.ParseDevice(*devName)
	if err != nil {
		return err
	}
	if _, err := os.Stat(*latent); err != nil {
		return fmt.Errorf("--latent: %w", err)
	}
	w, meta, err := readWPlus(*latent)
	if err != nil {
		return err
	}
	if n := w.Size(0); n != 1 {
		return fmt.Errorf("%s holds %d codes; render renders one (`ddgi sample gan --w-plus` draws a grid of many)", *latent, n)
	}
	arch, err := latentArch(meta, *gan, *latent)
	if err != nil {
		return err
	}
	if *generator != "" {
		ga, err := face.GeneratorArch(*generator)
		if err != nil {
			return err
		}
		if ga != arch {
			return fmt.Errorf("--generator %s is %s; the latent is a %s code", *generator, ga, arch)
		}
	}
	// The camera: the flags, else the one generate recorded (yaw and
	// pitch each on its own: --yaw 30 keeps the recorded pitch).
	cameraArg := *camera
	if !flagSet(fs, "yaw") && !flagSet(fs, "pitch") && cameraArg == "" {
		cameraArg = meta["ddgi:camera"]
	}
	if cameraArg == "" {
		y, p, err := recordedAngles(meta)
		if err != nil {
			return fmt.Errorf("%s: %w", *latent, err)
		}
		if !flagSet(fs, "yaw") {
			*yaw = y
		}
		if !flagSet(fs, "pitch") {
			*pitch = p
		}
	}
	if err := face.CheckRender(arch, *views, 64, *yaw, *pitch); err != nil {
		return fmt.Errorf("--gan/--views/--yaw/--pitch: %w", err)
	}
	if w := face.RenderWarning(*yaw, *pitch); w != "" {
		fmt.Fprintln(os.Stderr, "ddgi render: warning:", w)
	}
	var cam *[eg3d.CameraDim]float32
	if cameraArg != "" {
		if arch != kinds.EG3D {
			return errors.New("--camera needs an eg3d code (StyleGAN2 is 2D)")
		}
		c, err := face.ParseCamera(cameraArg)
		if err != nil {
			return fmt.Errorf("--camera: %w", err)
		}
		cam = &c
	}
	if *generator == "" {
		if *weights, err = modelSet(fs, *weights); err != nil {
			return err
		}
	}
	p, err := face.LoadRenderer(face.Options{Weights: *weights, GAN: arch, Device: dev, Generator: *generator})
	if err != nil {
		return err
	}
	if s := w.Shape(); s[1] != p.G.Styles() || s[2] != p.G.StyleDim() {
		return fmt.Errorf("%s holds a %v code; this %s generator takes [1,%d,%d] (another model set's latent?)", *latent, s, arch, p.G.Styles(), p.G.StyleDim())
	}
	prov, err := renderProvenance(meta, p.Opts.Files()["gan"], *latent, *yaw, *pitch, cameraArg, p.G.Is3D())
	if err != nil {
		return err
	}
	if made := meta["ddgi:gan-sha256"]; made != "" && made != prov["ddgi:gan-sha256"] {
		fmt.Fprintf(os.Stderr, "ddgi render: warning: %s was made with another generator (SHA-256 %.12s…, this one %.12s…): the face will not be the one generate drew\n", *latent, made, prov["ddgi:gan-sha256"])
	}
	if err := torch.Try(func() { w = w.ToDevice(dev); torch.Persist(w) }); err != nil {
		return err
	}
	var pic image.Image
	if cam != nil {
		pic, err = p.ViewCamera(w, 0, *cam)
	} else {
		pic, err = p.View(w, 0, *yaw, *pitch)
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := imageio.SavePNGText(*out, pic, prov); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", *out)
	if *views < 1 {
		return nil
	}
	return writeTurn(p, w, 0, *views, *pitch, strings.TrimSuffix(*out, filepath.Ext(*out)), true)
}

// latentArch is the GAN a latent's metadata names, checked against --gan
// (which is required when the file records none).
func latentArch(meta map[string]string, flagGAN, path string) (kinds.GANArch, error) {
	recorded := kinds.GANArch(meta["gan"])
	switch {
	case recorded == "" && flagGAN == "":
		return "", fmt.Errorf("%s records no GAN: give --gan stylegan2 or --gan eg3d", path)
	case recorded == "":
		return kinds.GANArch(flagGAN), nil
	case flagGAN != "" && kinds.GANArch(flagGAN) != recorded:
		return "", fmt.Errorf("%s is a %s code; --gan %s cannot render it", path, recorded, flagGAN)
	}
	return recorded, nil
}

// recordedAngles are the yaw and pitch generate recorded (0 when absent:
// a 2D code, or a file from elsewhere).
func recordedAngles(meta map[string]string) (yaw, pitch float64, err error) {
	for _, a := range []struct {
		key string
		dst *float64
	}{{"ddgi:yaw", &yaw}, {"ddgi:pitch", &pitch}} {
		v, ok := meta[a.key]
		if !ok {
			continue
		}
		if *a.dst, err = strconv.ParseFloat(v, 64); err != nil {
			return 0, 0, fmt.Errorf("metadata %s = %q is not a number", a.key, v)
		}
	}
	return yaw, pitch, nil
}

// renderProvenance is generate's record (the latent's ddgi:* metadata and
// prompt) with this render's camera, the generator it used and the
// latent's own hash.
func renderProvenance(meta map[string]string, ganFile, latent string, yaw, pitch float64, camera string, is3D bool) (map[string]string, error) {
	m := map[string]string{"Software": "ddgi " + Version}
	for k, v := range meta {
		if strings.HasPrefix(k, "ddgi:") {
			m[k] = v
		}
	}
	if meta["prompt"] != "" {
		m["Description"] = meta["prompt"]
	}
	delete(m, "ddgi:yaw")
	delete(m, "ddgi:pitch")
	delete(m, "ddgi:camera")
	if is3D {
		if camera != "" {
			m["ddgi:camera"] = camera
		} else {
			m["ddgi:yaw"], m["ddgi:pitch"] = fmt.Sprint(yaw), fmt.Sprint(pitch)
		}
	}
	gan, err := filesHash(map[string]string{"gan": ganFile})
	if err != nil {
		return nil, err
	}
	code, err := filesHash(map[string]string{"latent": latent})
	if err != nil {
		return nil, err
	}
	m["ddgi:gan-sha256"], m["ddgi:latent-sha256"] = gan, code
	m["ddgi:rendered-from"] = filepath.Base(latent)
	return m, nil
}
