package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"ddgi/internal/imageio"
	"ddgi/synthface"
)

// Folder layout, shared by CelebAMask-HQ (+ Multi-Modal CelebA-HQ text) and
// `ddgi synth` output:
//
//	CelebA-HQ-img/<i>.jpg|png            images
//	CelebAMask-HQ-mask-anno/<k>/<i:05d>_<part>.png   CelebAMask-HQ part masks
//	CelebAMask-HQ-mask/<i>.png           merged label maps (ddgi synth)
//	scribble/<i>.png                     scribbles (else detected from the image)
//	text/<i>.txt or celeba-caption/<i>.txt  one caption per line
//	camera/<i>.json                      {"camera": [25 floats]}
//	attributes/<i>.json                  {"identity", "seed", "attributes": {name: 0|1}}
//	CelebAMask-HQ-attribute-anno.txt     CelebA ±1 attribute table
const (
	DirImages    = "CelebA-HQ-img"
	DirPartMasks = "CelebAMask-HQ-mask-anno"
	DirMasks     = "CelebAMask-HQ-mask"
	DirScribbles = "scribble"
	DirText      = "text"
	DirCameras   = "camera"
	DirAttrs     = "attributes"
	FileAttrAnno = "CelebAMask-HQ-attribute-anno.txt"
)

// folderSet reads a dataset folder lazily, one index per Get: only file
// names (and the attribute table) are held.
type folderSet struct {
	dir      string
	size     int
	needMask bool
	ids      []int
	image    map[int]string   // index → image path
	parts    map[int][]string // index → part-mask paths (CelebAMask-HQ)
	attrs    map[int][]float32

	defaultCam [25]float32
}

// OpenFolder opens a folder in CelebAMask-HQ layout or as `ddgi synth`
// writes it; samples are resized to size×size. Open reads this layout too,
// with a validation split, a sample cap and a bad-file policy.
func OpenFolder(dir string, size int) (Dataset, error) {
	return openCelebA(dir, size, false)
}

// openCelebA indexes the layout; with needMask a sample without a mask is
// a bad file, and a folder without any mask an error.
func openCelebA(dir string, size int, needMask bool) (*folderSet, error) {
	if size < 8 {
		return nil, fmt.Errorf("open %s: size %d too small (want ≥ 8)", dir, size)
	}
	d := &folderSet{dir: dir, size: size, needMask: needMask, image: map[int]string{}, parts: map[int][]string{}}
	ents, err := os.ReadDir(filepath.Join(dir, DirImages))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	for _, e := range ents {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || !isImageExt(ext) {
			continue
		}
		i, err := strconv.Atoi(strings.TrimSuffix(e.Name(), filepath.Ext(e.Name())))
		if err != nil || i < 0 {
			continue
		}
		if prev, dup := d.image[i]; dup {
			return nil, fmt.Errorf("open %s: %s and %s are both image %d", dir, prev, e.Name(), i)
		}
		d.image[i] = filepath.Join(dir, DirImages, e.Name())
		d.ids = append(d.ids, i)
	}
	if len(d.ids) == 0 {
		return nil, fmt.Errorf("open %s: no numbered images in %s (want %s/<i>.jpg or .png)", dir, DirImages, DirImages)
	}
	sort.Ints(d.ids)
	// Index part masks once: 30k images × ~10 parts is a quick walk.
	anno := filepath.Join(dir, DirPartMasks)
	if _, err := os.Stat(anno); err == nil {
		err := filepath.WalkDir(anno, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(e.Name(), ".png") {
				return err
			}
			num, _, ok := strings.Cut(e.Name(), "_")
			if i, err := strconv.Atoi(num); ok && err == nil {
				d.parts[i] = append(d.parts[i], p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", dir, err)
		}
	}
	if needMask && len(d.parts) == 0 {
		if _, err := os.Stat(filepath.Join(dir, DirMasks)); err != nil {
			return nil, fmt.Errorf("open %s: no masks (want %s/<i>.png or %s/<k>/<i:05d>_<part>.png)", dir, DirMasks, DirPartMasks)
		}
	}
	if err := d.readAttrTable(); err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	d.defaultCam = defaultCamera()
	return d, nil
}

// defaultCamera is the frontal camera of a sample without a camera file.
func defaultCamera() [25]float32 {
	return synthface.OrbitCamera(0, 0, synthface.DefaultRadius, synthface.DefaultFocal).EG3D()
}

func isImageExt(lowerExt string) bool {
	return lowerExt == ".jpg" || lowerExt == ".jpeg" || lowerExt == ".png"
}

func (d *folderSet) Len() int { return len(d.ids) }

// Get reads sample k; a file that cannot be used fails it with a
// *BadFileError naming that file.
func (d *folderSet) Get(k int) (*Sample, error) {
	if k < 0 || k >= len(d.ids) {
		return nil, fmt.Errorf("folder %s: index %d out of range [0,%d)", d.dir, k, len(d.ids))
	}
	i := d.ids[k]
	s := &Sample{Size: d.size, Identity: -1, Seed: -1, Camera: d.defaultCam}
	img, err := decodeFile(d.image[i], false)
	if err != nil {
		return nil, err
	}
	s.Image = resizeRGB(img, d.size)
	if s.Mask, err = d.mask(i); err != nil {
		return nil, err
	}
	if s.Mask == nil && d.needMask {
		return nil, badFile(d.image[i], fmt.Errorf("no mask (want %s/%d.png or part masks in %s)", DirMasks, i, DirPartMasks))
	}
	sp := filepath.Join(d.dir, DirScribbles, strconv.Itoa(i)+".png")
	if _, err := os.Stat(sp); err == nil {
		if s.Scribble, err = readScribbleFile(sp, 0, 0, d.size); err != nil {
			return nil, err
		}
	} else {
		s.Scribble = synthface.Scribble(s.Image, d.size)
	}
	for _, sub := range []string{DirText, "celeba-caption"} {
		cp := filepath.Join(d.dir, sub, strconv.Itoa(i)+".txt")
		if _, err := os.Stat(cp); err == nil {
			if s.Captions, err = readCaptions(cp); err != nil {
				return nil, err
			}
			break
		}
	}
	if err := d.meta(i, s); err != nil {
		return nil, err
	}
	return s, nil
}

// mask returns the merged label map, or nil when the folder has none.
func (d *folderSet) mask(i int) ([]uint8, error) {
	p := filepath.Join(d.dir, DirMasks, strconv.Itoa(i)+".png")
	if _, err := os.Stat(p); err == nil {
		return readMaskFile(p, 0, 0, d.size)
	}
	parts := d.parts[i]
	if len(parts) == 0 {
		return nil, nil
	}
	return mergeParts(parts, d.size)
}

// mergeParts builds a label map from CelebAMask-HQ part files, painting
// parts in its g_mask.py order so later parts overwrite earlier ones.
func mergeParts(paths []string, size int) ([]uint8, error) {
	byName := map[string]string{}
	for _, p := range paths {
		base := strings.TrimSuffix(filepath.Base(p), ".png")
		_, name, _ := strings.Cut(base, "_")
		byName[name] = p
	}
	var out []uint8
	w, h := 0, 0
	var lab []uint8
	for c := 1; c < synthface.NumClasses; c++ {
		p, ok := byName[synthface.Classes[c]]
		if !ok {
			continue
		}
		img, err := decodeFile(p, true)
		if err != nil {
			return nil, err
		}
		b := img.Bounds()
		if lab == nil {
			w, h = b.Dx(), b.Dy()
			lab = make([]uint8, w*h)
		} else if b.Dx() != w || b.Dy() != h {
			return nil, badFile(p, fmt.Errorf("part mask is %d×%d, the others are %d×%d", b.Dx(), b.Dy(), w, h))
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				if on(img, b.Min.X+x, b.Min.Y+y) {
					lab[y*w+x] = uint8(c)
				}
			}
		}
	}
	if lab != nil {
		out = ResizeNearest(lab, w, h, size)
	}
	return out, nil
}

// on reports a non-black pixel in a part mask (its first channel, as the
// CelebAMask-HQ script reads it).
func on(img image.Image, x, y int) bool {
	r, _, _, _ := img.At(x, y).RGBA()
	return r != 0
}

// maxCaptionBytes bounds a caption file: captions are a few lines.
const maxCaptionBytes = 1 << 20

// readCaptions reads one caption per line (blank lines and a UTF-8 byte
// order mark dropped); a file that is not UTF-8 text is a *BadFileError.
func readCaptions(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, badFile(path, err)
	}
	if st.Size() > maxCaptionBytes {
		return nil, badFile(path, fmt.Errorf("caption file of %d KiB, want at most %d KiB", st.Size()>>10, maxCaptionBytes>>10))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, badFile(path, err)
	}
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return nil, badFile(path, errors.New("caption file is not UTF-8 text"))
	}
	var out []string
	for _, l := range strings.Split(strings.TrimPrefix(string(b), "\uFEFF"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// cameraFile and attrFile are the JSON records `ddgi synth` writes.
type cameraFile struct {
	Camera []float32 `json:"camera"`
}

type attrFile struct {
	Identity   int64              `json:"identity"`
	Seed       int64              `json:"seed"`
	Attributes map[string]float32 `json:"attributes"`
}

// Camera is sample k's camera (its camera file, or the frontal default)
// without reading its image (CameraSource).
func (d *folderSet) Camera(k int) ([25]float32, error) {
	if k < 0 || k >= len(d.ids) {
		return [25]float32{}, fmt.Errorf("folder %s: index %d out of range [0,%d)", d.dir, k, len(d.ids))
	}
	return d.camera(d.ids[k])
}

// camera reads file i's camera record; the default camera without one.
func (d *folderSet) camera(i int) ([25]float32, error) {
	cam := d.defaultCam
	cp := filepath.Join(d.dir, DirCameras, strconv.Itoa(i)+".json")
	if b, err := os.ReadFile(cp); err == nil {
		var c cameraFile
		if err := json.Unmarshal(b, &c); err != nil {
			return cam, badFile(cp, err)
		}
		if len(c.Camera) != 25 {
			return cam, badFile(cp, fmt.Errorf("%d camera floats, want 25", len(c.Camera)))
		}
		copy(cam[:], c.Camera)
	}
	return cam, nil
}

func (d *folderSet) meta(i int, s *Sample) error {
	var err error
	if s.Camera, err = d.camera(i); err != nil {
		return err
	}
	ap := filepath.Join(d.dir, DirAttrs, strconv.Itoa(i)+".json")
	if b, err := os.ReadFile(ap); err == nil {
		var a attrFile
		if err := json.Unmarshal(b, &a); err != nil {
			return badFile(ap, err)
		}
		s.Identity, s.Seed = a.Identity, a.Seed
		s.Attrs = make([]float32, len(synthface.AttributeNames))
		for j, n := range synthface.AttributeNames {
			s.Attrs[j] = a.Attributes[n]
		}
	} else if v, ok := d.attrs[i]; ok {
		s.Attrs = v
	}
	return nil
}

// readAttrTable loads CelebAMask-HQ-attribute-anno.txt when present: a
// count line, a names line, then "<i>.jpg ±1 …" rows. Names outside
// synthface.AttributeNames are ignored; missing ones read as 0.
func (d *folderSet) readAttrTable() error {
	f, err := os.Open(filepath.Join(d.dir, FileAttrAnno))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	if !sc.Scan() || !sc.Scan() {
		return fmt.Errorf("%s: missing header lines", FileAttrAnno)
	}
	col := map[int]int{}
	pos := map[string]int{}
	for j, n := range synthface.AttributeNames {
		pos[n] = j
	}
	for j, n := range strings.Fields(sc.Text()) {
		if p, ok := pos[n]; ok {
			col[j] = p
		}
	}
	d.attrs = map[int][]float32{}
	for line := 3; sc.Scan(); line++ {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		i, err := strconv.Atoi(strings.TrimSuffix(fs[0], filepath.Ext(fs[0])))
		if err != nil {
			return fmt.Errorf("%s line %d: bad image name %q", FileAttrAnno, line, fs[0])
		}
		v := make([]float32, len(synthface.AttributeNames))
		for j, s := range fs[1:] {
			if p, ok := col[j]; ok && s == "1" {
				v[p] = 1
			}
		}
		d.attrs[i] = v
	}
	return sc.Err()
}

// FolderWriter writes samples in the layout OpenFolder reads.
type FolderWriter struct {
	dir string
	jpg bool
}

// NewFolderWriter creates dir's sub-folders; format is "png" or "jpg".
func NewFolderWriter(dir, format string) (*FolderWriter, error) {
	if format != "png" && format != "jpg" {
		return nil, fmt.Errorf("image format %q: want png or jpg", format)
	}
	for _, sub := range []string{DirImages, DirMasks, DirScribbles, DirText, DirCameras, DirAttrs} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	return &FolderWriter{dir: dir, jpg: format == "jpg"}, nil
}

// Write stores sample s as index i.
func (w *FolderWriter) Write(i int, s *Sample) error {
	name := strconv.Itoa(i)
	p := func(sub, ext string) string { return filepath.Join(w.dir, sub, name+ext) }
	var err error
	if w.jpg {
		err = writeJPEG(p(DirImages, ".jpg"), s.Image, s.Size)
	} else {
		err = WriteRGBPNG(p(DirImages, ".png"), s.Image, s.Size)
	}
	if err != nil {
		return err
	}
	if err := WriteMaskPNG(p(DirMasks, ".png"), s.Mask, s.Size); err != nil {
		return err
	}
	if err := WriteMaskPNG(p(DirScribbles, ".png"), s.Scribble, s.Size); err != nil {
		return err
	}
	if err := imageio.WriteAtomic(p(DirText, ".txt"), []byte(strings.Join(s.Captions, "\n")+"\n")); err != nil {
		return err
	}
	cam, _ := json.Marshal(cameraFile{Camera: s.Camera[:]})
	if err := imageio.WriteAtomic(p(DirCameras, ".json"), append(cam, '\n')); err != nil {
		return err
	}
	a := attrFile{Identity: s.Identity, Seed: s.Seed, Attributes: map[string]float32{}}
	for j, n := range synthface.AttributeNames {
		if j < len(s.Attrs) {
			a.Attributes[n] = s.Attrs[j]
		}
	}
	b, _ := json.MarshalIndent(a, "", " ")
	return imageio.WriteAtomic(p(DirAttrs, ".json"), append(b, '\n'))
}
