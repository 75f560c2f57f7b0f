package data

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"ddgi/synthface"
)

// Plain folder layout: files side by side, grouped by name.
//
//	<name>.png|.jpg|.jpeg   the image
//	<name>_mask.png         its label map (optional; as ReadMask reads it)
//	<name>_scribble.png     its scribble (optional; else detected)
//	<name>.txt              its captions, one per line (optional)
const (
	SuffixMask     = "_mask"
	SuffixScribble = "_scribble"
)

// plainItem holds the file names (not paths: 30k samples stay small) of
// one sample; empty when absent.
type plainItem struct {
	image, mask, scribble, caption string
}

// plainSet reads a plain folder lazily, one sample per Get.
type plainSet struct {
	dir      string
	size     int
	needMask bool
	items    []plainItem // sorted by name
	cam      [25]float32
}

// openPlain indexes a plain folder from its listing. A mask or scribble
// without an image, or two images with one name, is a bad file: an error
// with StopOnBad, else reported on warn and left out. It returns nil, nil
// when the folder holds no images at all, so Open can say which layouts it
// knows.
func openPlain(dir string, ents []os.DirEntry, o OpenOptions, warn io.Writer) (*plainSet, error) {
	byName := map[string]*plainItem{}
	item := func(name string) *plainItem {
		it := byName[name]
		if it == nil {
			it = &plainItem{}
			byName[name] = it
		}
		return it
	}
	var bad []error
	images := 0
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		file := e.Name()
		ext := filepath.Ext(file)
		stem := strings.TrimSuffix(file, ext)
		ext = strings.ToLower(ext)
		switch {
		case ext == ".txt":
			item(stem).caption = file
		case !isImageExt(ext):
		case strings.HasSuffix(stem, SuffixMask):
			item(strings.TrimSuffix(stem, SuffixMask)).mask = file
		case strings.HasSuffix(stem, SuffixScribble):
			item(strings.TrimSuffix(stem, SuffixScribble)).scribble = file
		default:
			it := item(stem)
			if it.image != "" {
				bad = append(bad, badFile(filepath.Join(dir, file), fmt.Errorf("%s has the same name", it.image)))
				continue
			}
			it.image = file
			images++
		}
	}
	if images == 0 {
		return nil, nil
	}
	d := &plainSet{dir: dir, size: o.Size, needMask: o.NeedMasks, cam: defaultCamera()}
	names := make([]string, 0, len(byName))
	masks := 0
	for name, it := range byName {
		if it.image == "" {
			// A caption file without an image may be a README; a mask or
			// scribble without one is a misnamed image.
			for _, f := range []string{it.mask, it.scribble} {
				if f != "" {
					bad = append(bad, badFile(filepath.Join(dir, f), fmt.Errorf("no image %s.png or .jpg beside it", name)))
				}
			}
			continue
		}
		if it.mask != "" {
			masks++
		}
		names = append(names, name)
	}
	if len(bad) > 0 {
		sort.Slice(bad, func(i, j int) bool { return bad[i].Error() < bad[j].Error() })
		if o.OnBad == StopOnBad {
			return nil, fmt.Errorf("open %s: %w (--on-bad skip leaves such files out)", dir, bad[0])
		}
		for _, err := range bad {
			fmt.Fprintf(warn, "skipping %v\n", err)
		}
	}
	if o.NeedMasks && masks == 0 {
		return nil, fmt.Errorf("open %s: no masks (want <name>%s.png beside each <name>.png)", dir, SuffixMask)
	}
	sort.Strings(names)
	d.items = make([]plainItem, len(names))
	for i, n := range names {
		d.items[i] = *byName[n]
	}
	return d, nil
}

func (d *plainSet) Len() int { return len(d.items) }

// Camera is sample k's camera (CameraSource): plain folders have one.
func (d *plainSet) Camera(k int) ([25]float32, error) {
	if k < 0 || k >= len(d.items) {
		return [25]float32{}, fmt.Errorf("folder %s: index %d out of range [0,%d)", d.dir, k, len(d.items))
	}
	return d.cam, nil
}

// Get reads sample k; a file that cannot be used fails it with a
// *BadFileError naming that file.
func (d *plainSet) Get(k int) (*Sample, error) {
	if k < 0 || k >= len(d.items) {
		return nil, fmt.Errorf("folder %s: index %d out of range [0,%d)", d.dir, k, len(d.items))
	}
	it := d.items[k]
	ip := filepath.Join(d.dir, it.image)
	img, err := decodeFile(ip, false)
	if err != nil {
		return nil, err
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	s := &Sample{Size: d.size, Identity: -1, Seed: -1, Camera: d.cam, Image: resizeRGB(img, d.size)}
	if it.mask != "" {
		if s.Mask, err = readMaskFile(filepath.Join(d.dir, it.mask), w, h, d.size); err != nil {
			return nil, err
		}
	} else if d.needMask {
		stem := strings.TrimSuffix(it.image, filepath.Ext(it.image))
		return nil, badFile(ip, errors.New("no mask "+stem+SuffixMask+".png"))
	}
	if it.scribble != "" {
		if s.Scribble, err = readScribbleFile(filepath.Join(d.dir, it.scribble), w, h, d.size); err != nil {
			return nil, err
		}
	} else {
		s.Scribble = synthface.Scribble(s.Image, d.size)
	}
	if it.caption != "" {
		if s.Captions, err = readCaptions(filepath.Join(d.dir, it.caption)); err != nil {
			return nil, err
		}
	}
	return s, nil
}
