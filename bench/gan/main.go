// Command gan benchmarks full-size GAN inference on random weights, one
// image at a time, in ddgi and in PyTorch running the reference code on the
// same weights, in one run: NVlabs' StyleGAN2 (FFHQ config: 1024², channel
// base 32768, conv_clamp 256) or NVlabs' EG3D (ffhq512-128 config: 256²
// planes, 128² neural rendering, 48+48 samples, Hybrid8XDC to 512²). It
// prints seconds per image, peak RSS of each process, their ratios and the
// largest difference between the two images (the full-size parity check).
//
//	go run ./bench/gan -ref ~/src/stylegan2-ada-pytorch [-res 1024] [-threads 2]
//	go run ./bench/gan -arch eg3d -ref ~/src/eg3d/eg3d [-threads 2]
//
// The PyTorch side (peer.py) needs Debian's python3-torch (scripts/setup.sh
// --peer; EG3D also python3-scipy) and a checkout of the reference code; its
// generator is pickled as NVlabs' training loops do and read back by `ddgi
// convert`'s code. EG3D's two random draws are fixed to ddgi's deterministic
// sample placement in the peer. Without -ref, ddgi's StyleGAN2 runs alone
// on its own random weights.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"ddgi/convert"
	"ddgi/gan/eg3d"
	"ddgi/gan/stylegan2"
	"ddgi/internal/peakrss"
	"ddgi/nn"
	"ddgi/safetensors"
	"ddgi/synthface"
	"ddgi/torch"
)

type result struct {
	SecPerImage float64 `json:"sec_per_image"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
}

func main() {
	ref := flag.String("ref", "", "stylegan2-ada-pytorch checkout (eg3d: the eg3d/eg3d folder of NVlabs/eg3d) for the PyTorch side (empty: ddgi alone)")
	arch := flag.String("arch", "stylegan2", "stylegan2 or eg3d")
	res := flag.Int("res", 1024, "output resolution")
	threads := flag.Int("threads", 2, "threads of each engine")
	images := flag.Int("images", 3, "images per round (one at a time)")
	keep := flag.String("keep", "", "copy the converted generator and codes into this folder (to reproduce a run)")
	measure := flag.String("measure", "", "internal: render with this generator and print a result")
	wsPath := flag.String("ws", "", "internal: w+ codes")
	rawOut := flag.String("raw", "", "internal: where to write the images")
	flag.Parse()
	var err error
	switch {
	case *arch != "stylegan2" && *arch != "eg3d":
		err = fmt.Errorf("-arch %q: want stylegan2 or eg3d", *arch)
	case *measure != "":
		err = runMeasure(*arch, *measure, *wsPath, *rawOut, *threads)
	case *arch == "eg3d" && *ref == "":
		err = fmt.Errorf("-arch eg3d needs -ref (the eg3d/eg3d folder of a NVlabs/eg3d checkout)")
	default:
		err = runBench(*arch, *ref, *keep, *res, *threads, *images)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/gan:", err)
		os.Exit(1)
	}
}

func runBench(arch, ref, keep string, res, threads, images int) error {
	dir, err := os.MkdirTemp("", "ddgi-bench-gan-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if keep != "" {
		defer func() {
			os.MkdirAll(keep, 0o755)
			for _, f := range []string{"g.safetensors", "ws.safetensors", "ref.safetensors", "ddgi.safetensors"} {
				os.Rename(filepath.Join(dir, f), filepath.Join(keep, f))
			}
		}()
	}
	gPath := filepath.Join(dir, "g.safetensors")
	wsPath := filepath.Join(dir, "ws.safetensors")
	var peer result
	if ref != "" {
		_, self, _, _ := runtime.Caller(0)
		cmd := exec.Command("/usr/bin/python3", filepath.Join(filepath.Dir(self), "peer.py"), "--ref", ref, "--arch", arch,
			"--res", fmt.Sprint(res), "--images", fmt.Sprint(images), "--threads", fmt.Sprint(threads), "--dir", dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("peer.py: %w", err)
		}
		if err := json.Unmarshal(out, &peer); err != nil {
			return fmt.Errorf("peer.py said %q: %w", out, err)
		}
		t0 := time.Now()
		from := "nvlabs"
		if arch == "eg3d" {
			from = "eg3d"
		}
		g, _, err := convert.GAN(filepath.Join(dir, "net.pkl"), convert.GANOptions{From: from, ConvClamp: -1})
		if err != nil {
			return err
		}
		if err := g.Save(gPath, false); err != nil {
			return err
		}
		fmt.Printf("converted the NVlabs pickle in %.1f s\n", time.Since(t0).Seconds())
	} else if err := randomGenerator(gPath, wsPath, res, images); err != nil {
		return err
	}
	rawPath := filepath.Join(dir, "ddgi.safetensors")
	cmd := exec.Command(os.Args[0], "-arch", arch, "-measure", gPath, "-ws", wsPath, "-raw", rawPath, "-threads", fmt.Sprint(threads))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("ddgi run: %w", err)
	}
	var ours result
	if err := json.Unmarshal(out, &ours); err != nil {
		return fmt.Errorf("ddgi run said %q: %w", out, err)
	}
	if arch == "eg3d" {
		fmt.Printf("EG3D 512² (NVlabs ffhq512-128 config), %d thread(s), one view at a time:\n", threads)
	} else {
		fmt.Printf("StyleGAN2 %d² (NVlabs FFHQ config), %d thread(s), one image at a time:\n", res, threads)
	}
	fmt.Printf("  ddgi     %.2f s/image, peak RSS %.0f MB\n", ours.SecPerImage, ours.PeakRSSMB)
	if ref == "" {
		return nil
	}
	fmt.Printf("  PyTorch  %.2f s/image, peak RSS %.0f MB (reference code, same weights)\n", peer.SecPerImage, peer.PeakRSSMB)
	fmt.Printf("  speed ratio ddgi/PyTorch %.2f, memory ratio %.2f\n", peer.SecPerImage/ours.SecPerImage, ours.PeakRSSMB/peer.PeakRSSMB)
	a, err := readImage(rawPath)
	if err != nil {
		return err
	}
	b, err := readImage(filepath.Join(dir, "ref.safetensors"))
	if err != nil {
		return err
	}
	fmt.Printf("  max |ddgi − PyTorch| over the images: %.3g\n", a.Sub(b).Abs().MaxAll().Item())
	return nil
}

// randomGenerator writes a ddgi generator of the NVlabs FFHQ config with
// random weights and random codes (no PyTorch side).
func randomGenerator(gPath, wsPath string, res, images int) error {
	c, err := stylegan2.Preset(fmt.Sprintf("ffhq%d", res))
	if err != nil {
		return err
	}
	c.ChannelBase, c.ConvClamp = 32768, 256
	g, err := stylegan2.NewGenerator(nn.NewStore(torch.CPU, 1).Root(), c)
	if err != nil {
		return err
	}
	if err := g.Save(gPath, false); err != nil {
		return err
	}
	ws := torch.Randn(torch.NewGenerator(2), []int64{int64(images), int64(c.NumWS()), int64(c.WDim)}, torch.Float32, torch.CPU)
	st, err := nn.ToSafetensors(ws, false)
	if err != nil {
		return err
	}
	return safetensors.Save(wsPath, &safetensors.File{Tensors: map[string]safetensors.Tensor{"w_plus": st}})
}

func readImage(path string) (*torch.Tensor, error) {
	f, err := safetensors.Load(path)
	if err != nil {
		return nil, err
	}
	return nn.FromSafetensors(f.Tensors["image"], torch.CPU)
}

// runMeasure renders every code one at a time, two rounds, and prints the
// best round's seconds per image and this process's peak RSS.
func runMeasure(arch, gPath, wsPath, rawPath string, threads int) error {
	runtime.LockOSThread()
	torch.SetThreads(threads)
	f, err := safetensors.Load(wsPath)
	if err != nil {
		return err
	}
	ws, err := nn.FromSafetensors(f.Tensors["w_plus"], torch.CPU)
	if err != nil {
		return err
	}
	var render func(w *torch.Tensor) *torch.Tensor
	if arch == "eg3d" {
		g, err := eg3d.Load(gPath, torch.CPU, synthface.DefaultOrbit)
		if err != nil {
			return err
		}
		cam, err := nn.FromSafetensors(f.Tensors["camera"], torch.CPU)
		if err != nil {
			return err
		}
		render = func(w *torch.Tensor) *torch.Tensor { return g.Synthesis(w, cam, stylegan2.NoiseConst).Image }
	} else {
		g, err := stylegan2.Load(gPath, torch.CPU)
		if err != nil {
			return err
		}
		render = func(w *torch.Tensor) *torch.Tensor { return g.Synthesis(w, stylegan2.NoiseConst) }
	}
	best := 0.0
	var imgs []*torch.Tensor
	err = torch.Try(func() {
		torch.NoGrad(func() {
			for round := range 2 {
				for _, x := range imgs {
					x.Free()
				}
				imgs = imgs[:0]
				t0 := time.Now()
				for i := range ws.Size(0) {
					s := torch.NewScope()
					img := render(ws.Narrow(0, i, 1))
					s.Keep(img)
					s.Close()
					imgs = append(imgs, img)
				}
				sec := time.Since(t0).Seconds() / float64(ws.Size(0))
				if round == 0 || sec < best {
					best = sec
				}
			}
		})
	})
	if err != nil {
		return err
	}
	st, err := nn.ToSafetensors(torch.Cat(imgs, 0), false)
	if err != nil {
		return err
	}
	if err := safetensors.Save(rawPath, &safetensors.File{Tensors: map[string]safetensors.Tensor{"image": st}}); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(result{SecPerImage: best, PeakRSSMB: float64(peakrss.Bytes()) / (1 << 20)})
}
