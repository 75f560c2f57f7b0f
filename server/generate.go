package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"ddgi/data"
	"ddgi/face"
	"ddgi/internal/imageio"
	"ddgi/kinds"
)

// genRequest is one validated POST /api/generate.
type genRequest struct {
	Text       string
	Cond       kinds.Cond
	Image      []byte // the condition PNG, decoded on the worker at the model's size
	ImageName  string // names the upload in errors
	Seed       int64
	GAN        kinds.GANArch
	Yaw, Pitch float64
	Views      int
	Art        bool     // the style-transfer models
	Step       *int     // the tapped step t (nil: the server's --step)
	Guidance   *float64 // text guidance of the sampler before t (nil: face.SampleGuidance)
	JSON       bool     // answer JSON instead of a PNG
}

// rawRequest is what a multipart form or a JSON body said, before the
// checks shared with `ddgi generate`.
type rawRequest struct {
	Text                   string
	Mask, Scribble         []byte
	HasMask, HasScribble   bool
	MaskName, ScribbleName string
	Seed                   int64
	GAN                    string
	Yaw, Pitch             float64
	Views                  int
	Art                    bool
	Step                   *int
	Guidance               *float64
	Format                 string
}

// jsonRequest is the JSON body of /api/generate: conditions as base64 PNGs
// (a data: URL is fine too).
type jsonRequest struct {
	Text     string   `json:"text"`
	Mask     string   `json:"mask"`
	Scribble string   `json:"scribble"`
	Seed     *int64   `json:"seed"`
	GAN      string   `json:"gan"`
	Yaw      float64  `json:"yaw"`
	Pitch    float64  `json:"pitch"`
	Views    int      `json:"views"`
	Art      bool     `json:"art"`
	Step     *int     `json:"step"`
	Guidance *float64 `json:"guidance"`
	Format   string   `json:"format"`
}

// genResponse is the JSON answer; PNGs are base64 ([]byte marshals so).
type genResponse struct {
	ID          string        `json:"id"`
	Art         bool          `json:"art"`
	Step        int           `json:"step"`
	GAN         kinds.GANArch `json:"gan"`
	Cond        kinds.Cond    `json:"cond"`
	Seed        int64         `json:"seed"`
	Yaw         float64       `json:"yaw"`
	Pitch       float64       `json:"pitch"`
	Size        int           `json:"size"`
	LatentShape []int64       `json:"latent_shape"`
	Image       []byte        `json:"image"`
	Strip       []byte        `json:"strip,omitempty"`
	Views       [][]byte      `json:"views,omitempty"`
	Millis      int64         `json:"ms"`
}

// genResult is the worker's output: encoded PNGs only, no tensors, so a
// client that left leaves nothing to free.
type genResult struct {
	image  []byte
	strip  []byte
	views  [][]byte
	size   int
	latent []int64
	id     string // the kept code, for /api/render
	step   int    // the step t that ran
}

// defaultSeed matches `ddgi generate --seed`.
const defaultSeed = 1

func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	start := time.Now()
	select { // bound the bodies held at once before reading this one
	case s.parsing <- struct{}{}:
	default:
		s.cfg.Log.Printf("generate: 503 too many requests being read")
		writeError(w, errBusy)
		return
	}
	req, err := s.parseGenerate(w, r)
	<-s.parsing
	if err != nil {
		s.cfg.Log.Printf("generate: %d %v", statusOf(err), err)
		writeError(w, err)
		return
	}
	var res *genResult
	err = s.do(r.Context(), func() error {
		var err error
		res, err = s.generate(req)
		return err
	})
	took := time.Since(start)
	if err != nil {
		s.cfg.Log.Printf("generate %s seed=%d: %d %v (%v)", pipeKey{req.GAN, req.Cond, req.Art}, req.Seed, statusOf(err), err, took.Round(time.Millisecond))
		writeError(w, err)
		return
	}
	s.cfg.Log.Printf("generate %s seed=%d step=%d views=%d: 200 in %v", pipeKey{req.GAN, req.Cond, req.Art}, req.Seed, res.step, req.Views, took.Round(time.Millisecond))
	if req.JSON {
		writeJSON(w, http.StatusOK, genResponse{
			ID: res.id, Art: req.Art, Step: res.step,
			GAN: req.GAN, Cond: req.Cond, Seed: req.Seed, Yaw: req.Yaw, Pitch: req.Pitch,
			Size: res.size, LatentShape: res.latent, Image: res.image, Strip: res.strip, Views: res.views,
			Millis: took.Milliseconds(),
		})
		return
	}
	body := res.image
	if res.strip != nil {
		body = res.strip
	}
	h := w.Header()
	h.Set("Content-Type", "image/png")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Ddgi-Latent-Shape", joinInts(res.latent))
	h.Set("X-Ddgi-Id", res.id)
	h.Set("X-Ddgi-Step", strconv.Itoa(res.step))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// generate runs one request on the worker: load (cached), read the
// condition at the model's size, invert, render.
func (s *Server) generate(req *genRequest) (*genResult, error) {
	key := pipeKey{req.GAN, req.Cond, req.Art}
	p, err := s.pipeline(key)
	if err != nil {
		return nil, err
	}
	step, err := s.sampling(p, req)
	if err != nil {
		return nil, badInput(err)
	}
	size := p.Size()
	if err := s.cfg.ImageLimits.Check(req.ImageName, req.Image); err != nil {
		return nil, badInput(err)
	}
	fr := face.Request{Text: req.Text, Seed: req.Seed}
	if req.Cond == kinds.Mask {
		fr.Mask, err = data.DecodeMask(req.ImageName, req.Image, size)
	} else {
		fr.Scribble, err = data.DecodeScribble(req.ImageName, req.Image, size)
	}
	if err != nil {
		return nil, badInput(err)
	}
	w, err := p.Codes([]face.Request{fr})
	if err != nil {
		return nil, fmt.Errorf("invert: %w", err)
	}
	defer w.Free() // persistent: free now rather than at some GC
	res := &genResult{latent: w.Shape(), step: step}
	if res.id, err = s.keep(key, w); err != nil {
		return nil, err
	}
	pic, err := p.View(w, 0, req.Yaw, req.Pitch)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	res.size = pic.Bounds().Dx()
	if res.image, err = encodePNG(pic); err != nil {
		return nil, err
	}
	if req.Views == 0 {
		return res, nil
	}
	frames, err := p.Views(w, 0, req.Views, req.Pitch)
	if err != nil {
		return nil, fmt.Errorf("render views: %w", err)
	}
	// The same strip as `ddgi generate --views` writes to <out>_views.png.
	if res.strip, err = encodePNG(imageio.Grid(frames, nil, len(frames), 2)); err != nil {
		return nil, err
	}
	for _, f := range frames {
		b, err := encodePNG(f)
		if err != nil {
			return nil, err
		}
		res.views = append(res.views, b)
	}
	return res, nil
}

// MaxGuidance bounds the text guidance scale a request may ask for:
// beyond ~10 classifier-free guidance only saturates.
const MaxGuidance = 20

// sampling sets p's step t and guidance for req (the worker runs one
// request at a time, so per-request settings live on the cached
// pipeline) and returns the t that will run. Guidance only acts when the
// sampler denoises before t, i.e. for t < T−1.
func (s *Server) sampling(p *face.Pipeline, req *genRequest) (int, error) {
	T := p.E.Timesteps()
	step := s.cfg.Step
	if req.Step != nil {
		step = *req.Step
		if step < -1 || step >= T {
			return 0, fmt.Errorf("step %d: want -1 (T−1) or 0…%d", step, T-1)
		}
	}
	if step < 0 || step >= T {
		step = T - 1
	}
	g := face.SampleGuidance
	if req.Guidance != nil {
		if step == T-1 {
			return 0, fmt.Errorf("guidance acts only when step < T−1 = %d (the sampler runs before the tap); set step too", T-1)
		}
		if v := *req.Guidance; !(v >= 0 && v <= MaxGuidance) {
			return 0, fmt.Errorf("guidance %g: want 0…%d", v, MaxGuidance)
		}
		g.Text = *req.Guidance
	}
	p.Opts.Step, p.E.Guidance = step, g
	return step, nil
}

func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode PNG: %w", err)
	}
	return buf.Bytes(), nil
}

func joinInts(xs []int64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(s, ",")
}

// parseGenerate reads a multipart or JSON body within MaxBody and applies
// the checks of `ddgi generate` (prompt, one condition, GAN and camera).
// The condition PNG itself is decoded later, at the model's size.
func (s *Server) parseGenerate(w http.ResponseWriter, r *http.Request) (*genRequest, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = ""
	}
	var raw *rawRequest
	switch mt {
	case "multipart/form-data":
		raw, err = readMultipart(r)
	case "application/json":
		raw, err = readJSON(r.Body)
	default:
		return nil, &httpError{http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %q: send multipart/form-data (fields text, mask|scribble PNG files, seed, gan, yaw, pitch, views) or application/json", ct)}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %s", byteSize(tooBig.Limit))}
		}
		return nil, err
	}
	return s.validate(raw, r)
}

// validate applies `ddgi generate`'s rules through the same face checks.
func (s *Server) validate(raw *rawRequest, r *http.Request) (*genRequest, error) {
	if err := face.CheckPrompt(raw.Text); err != nil {
		return nil, badInput(fmt.Errorf("text: %w", err))
	}
	cond, err := face.CondKind(raw.HasMask, raw.HasScribble)
	if err != nil {
		return nil, badInput(err)
	}
	if raw.GAN == "" {
		raw.GAN = string(kinds.StyleGAN2)
	}
	gan := kinds.GANArch(raw.GAN) // CheckRender rejects an unknown one
	if err := face.CheckRender(gan, raw.Views, MaxViews, raw.Yaw, raw.Pitch); err != nil {
		return nil, badInput(err)
	}
	req := &genRequest{Text: raw.Text, Cond: cond, Seed: raw.Seed, GAN: gan, Yaw: raw.Yaw, Pitch: raw.Pitch, Views: raw.Views,
		Art: raw.Art, Step: raw.Step, Guidance: raw.Guidance}
	if cond == kinds.Mask {
		req.Image, req.ImageName = raw.Mask, raw.MaskName
	} else {
		req.Image, req.ImageName = raw.Scribble, raw.ScribbleName
	}
	format := raw.Format
	if q := r.URL.Query().Get("format"); q != "" {
		format = q
	}
	switch format {
	case "json":
		req.JSON = true
	case "png":
	case "":
		req.JSON = strings.Contains(r.Header.Get("Accept"), "application/json")
	default:
		return nil, badInput(fmt.Errorf("format %q: want png or json", format))
	}
	return req, nil
}

// formFields are the multipart fields /api/generate reads.
var formFields = "text, mask, scribble, seed, gan, yaw, pitch, views, art, step, guidance, format"

// readMultipart streams the parts (no temporary files; the body is
// already capped), refusing unknown and repeated fields.
func readMultipart(r *http.Request) (*rawRequest, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badInput(fmt.Errorf("multipart body: %w", err))
	}
	raw := &rawRequest{Seed: defaultSeed}
	seen := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, badInput(fmt.Errorf("multipart body: %w", err))
		}
		name := part.FormName()
		b, err := io.ReadAll(part)
		part.Close()
		if err != nil {
			return nil, badInput(fmt.Errorf("field %q: %w", name, err))
		}
		// A browser sends an empty part for a file input left empty.
		if len(b) == 0 && part.FileName() == "" && (name == "mask" || name == "scribble") {
			continue
		}
		if seen[name] {
			return nil, badInput(fmt.Errorf("field %q given twice", name))
		}
		seen[name] = true
		if err := raw.set(name, part.FileName(), b); err != nil {
			return nil, badInput(err)
		}
	}
	return raw, nil
}

// set stores one multipart field.
func (raw *rawRequest) set(name, filename string, b []byte) error {
	v := string(b)
	var err error
	switch name {
	case "text":
		raw.Text = v
	case "mask":
		raw.Mask, raw.HasMask, raw.MaskName = b, true, uploadName(filename, "mask")
	case "scribble":
		raw.Scribble, raw.HasScribble, raw.ScribbleName = b, true, uploadName(filename, "scribble")
	case "seed":
		if raw.Seed, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
			return fmt.Errorf("seed %q: want an integer", v)
		}
	case "gan":
		raw.GAN = strings.TrimSpace(v)
	case "yaw", "pitch":
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return fmt.Errorf("%s %q: want degrees", name, v)
		}
		if name == "yaw" {
			raw.Yaw = f
		} else {
			raw.Pitch = f
		}
	case "views":
		if raw.Views, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("views %q: want an integer 0–%d", v, MaxViews)
		}
	case "art":
		if raw.Art, err = strconv.ParseBool(strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("art %q: want true or false", v)
		}
	case "step":
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("step %q: want an integer (-1: T−1)", v)
		}
		raw.Step = &n
	case "guidance":
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return fmt.Errorf("guidance %q: want a number", v)
		}
		raw.Guidance = &f
	case "format":
		raw.Format = strings.TrimSpace(v)
	default:
		return fmt.Errorf("unknown field %q (known: %s)", name, formFields)
	}
	return nil
}

// uploadName names an upload in errors: its file name, else the field.
func uploadName(filename, field string) string {
	if filename == "" {
		return field
	}
	return filename
}

// readJSON decodes one jsonRequest object, strictly.
func readJSON(body io.Reader) (*rawRequest, error) {
	var j jsonRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, badInput(fmt.Errorf("JSON body: %w", err))
	}
	if dec.More() {
		return nil, badInput(errors.New("JSON body: more than one value"))
	}
	raw := &rawRequest{Text: j.Text, Seed: defaultSeed, GAN: j.GAN, Yaw: j.Yaw, Pitch: j.Pitch, Views: j.Views, Format: j.Format,
		Art: j.Art, Step: j.Step, Guidance: j.Guidance}
	if j.Seed != nil {
		raw.Seed = *j.Seed
	}
	var err error
	if j.Mask != "" {
		if raw.Mask, err = decodeBase64("mask", j.Mask); err != nil {
			return nil, badInput(err)
		}
		raw.HasMask, raw.MaskName = true, "mask"
	}
	if j.Scribble != "" {
		if raw.Scribble, err = decodeBase64("scribble", j.Scribble); err != nil {
			return nil, badInput(err)
		}
		raw.HasScribble, raw.ScribbleName = true, "scribble"
	}
	return raw, nil
}

// decodeBase64 reads a base64 PNG, with or without a data: URL prefix.
func decodeBase64(field, s string) ([]byte, error) {
	if strings.HasPrefix(s, "data:") {
		i := strings.Index(s, ";base64,")
		if i < 0 {
			return nil, fmt.Errorf("%s: a data: URL must be base64", field)
		}
		s = s[i+len(";base64,"):]
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%s: not base64: %w", field, err)
	}
	return b, nil
}

// byteSize prints a limit the way people set it.
func byteSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
