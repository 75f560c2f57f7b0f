package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ddgi/gan/stylegan2"
	"ddgi/internal/testweights"
	"ddgi/torch"
)

// The tiny weights are built once for the package (a few seconds).
var (
	tinyOnce sync.Once
	tinyDir  string
	tinyErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyDir != "" {
		os.RemoveAll(tinyDir)
	}
	os.Exit(code)
}

func tinyWeights(t *testing.T) string {
	t.Helper()
	tinyOnce.Do(func() {
		if tinyDir, tinyErr = os.MkdirTemp("", "ddgi-server-test"); tinyErr == nil {
			tinyErr = testweights.WriteTiny(tinyDir, "../weights/tokenizer.json")
		}
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyDir
}

// newTestServer serves dir's weights; the worker stops with the test.
func newTestServer(t *testing.T, dir string) *httptest.Server {
	t.Helper()
	s := New(Config{Weights: dir, Device: torch.CPU, Step: -1, Version: "test", Log: log.New(io.Discard, "", 0)})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return ts
}

func pngBytes(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// maskPNG is a one-channel label map: horizontal bands of labels 0–18, or
// one out-of-range label when bad is set.
func maskPNG(t *testing.T, side int, bad bool) []byte {
	img := image.NewGray(image.Rect(0, 0, side, side))
	for i := range img.Pix {
		img.Pix[i] = uint8((i / side) % 19)
	}
	if bad {
		img.Pix[side+3] = 40
	}
	return pngBytes(t, img)
}

// scribblePNG is a white vertical line on black.
func scribblePNG(t *testing.T, side int) []byte {
	img := image.NewGray(image.Rect(0, 0, side, side))
	for y := 0; y < side; y++ {
		img.SetGray(side/2, y, color.Gray{255})
	}
	return pngBytes(t, img)
}

// form builds a multipart body: string values, and files as name → bytes.
func form(t *testing.T, values map[string]string, files map[string][]byte) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range values {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for k, b := range files {
		fw, err := mw.CreateFormFile(k, k+".png")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(b)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func post(t *testing.T, ts *httptest.Server, body io.Reader, contentType, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/api/generate", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// wantError checks a JSON {"error": one line} answer with status.
func wantError(t *testing.T, name string, res *http.Response, body []byte, status int, contains string) {
	t.Helper()
	if res.StatusCode != status {
		t.Errorf("%s: status %d, want %d (%s)", name, res.StatusCode, status, body)
		return
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", name, ct)
	}
	var e struct{ Error string }
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" || strings.Contains(e.Error, "\n") {
		t.Errorf("%s: want a one-line JSON error, got %q (%v)", name, body, err)
		return
	}
	if !strings.Contains(e.Error, contains) {
		t.Errorf("%s: error %q does not mention %q", name, e.Error, contains)
	}
}

func decodePNG(t *testing.T, name string, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: not a PNG: %v", name, err)
	}
	return img
}

func TestGenerate(t *testing.T) {
	ts := newTestServer(t, tinyWeights(t))
	res := stylegan2.Presets["tiny"].Resolution

	t.Run("mask PNG", func(t *testing.T) {
		body, ct := form(t, map[string]string{"text": "The woman is smiling.", "seed": "7"}, map[string][]byte{"mask": maskPNG(t, 50, false)})
		r, b := post(t, ts, body, ct, "")
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "image/png" {
			t.Fatalf("status %d %s: %s", r.StatusCode, r.Header.Get("Content-Type"), b)
		}
		if s := decodePNG(t, "face", b).Bounds().Size(); s.X != res || s.Y != res {
			t.Errorf("face is %v, want %d²", s, res)
		}
		if r.Header.Get("X-Ddgi-Latent-Shape") == "" {
			t.Error("no latent shape header")
		}
		// Same seed and inputs, same face: the cached pipeline is deterministic.
		body, ct = form(t, map[string]string{"text": "The woman is smiling.", "seed": "7"}, map[string][]byte{"mask": maskPNG(t, 50, false)})
		if _, b2 := post(t, ts, body, ct, ""); !bytes.Equal(b, b2) {
			t.Error("same request gave a different face")
		}
	})

	t.Run("scribble JSON answer", func(t *testing.T) {
		body, ct := form(t, map[string]string{"text": "A bald man.", "format": "json"}, map[string][]byte{"scribble": scribblePNG(t, 40)})
		r, b := post(t, ts, body, ct, "")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", r.StatusCode, b)
		}
		var out genResponse
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if out.Cond != "scribble" || out.GAN != "stylegan2" || out.Size != res || len(out.LatentShape) != 3 || out.LatentShape[0] != 1 {
			t.Errorf("response %+v", out)
		}
		decodePNG(t, "image", out.Image)
	})

	t.Run("JSON body", func(t *testing.T) {
		j, _ := json.Marshal(map[string]any{"text": "He wears eyeglasses.", "seed": 3,
			"mask": "data:image/png;base64," + base64.StdEncoding.EncodeToString(maskPNG(t, 32, false))})
		r, b := post(t, ts, bytes.NewReader(j), "application/json", "application/json")
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d: %s", r.StatusCode, b)
		}
	})

	t.Run("eg3d views strip", func(t *testing.T) {
		body, ct := form(t, map[string]string{"text": "A man with short hair.", "gan": "eg3d", "views": "3", "yaw": "20"}, map[string][]byte{"scribble": scribblePNG(t, 40)})
		r, b := post(t, ts, body, ct, "")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", r.StatusCode, b)
		}
		s := decodePNG(t, "strip", b).Bounds().Size()
		if s.X <= 3*s.Y-8 || s.X < 3*16 {
			t.Errorf("strip is %v: want three views side by side", s)
		}
	})

	t.Run("concurrent requests share the worker", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				body, ct := form(t, map[string]string{"text": "A smiling woman.", "seed": fmt.Sprint(i)}, map[string][]byte{"mask": maskPNG(t, 20, false)})
				res, err := http.Post(ts.URL+"/api/generate", ct, body)
				if err != nil {
					errs <- err
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("request %d: status %d", i, res.StatusCode)
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestGenerateRejectsBadInput(t *testing.T) {
	ts := newTestServer(t, tinyWeights(t))
	mask, scr := maskPNG(t, 32, false), scribblePNG(t, 32)
	for _, c := range []struct {
		name     string
		values   map[string]string
		files    map[string][]byte
		status   int
		contains string
	}{
		{"empty text", map[string]string{"text": "  "}, map[string][]byte{"mask": mask}, 400, "prompt is empty"},
		{"long text", map[string]string{"text": strings.Repeat("a", 1001)}, map[string][]byte{"mask": mask}, 400, "at most 1000"},
		{"corrupt PNG", map[string]string{"text": "hi"}, map[string][]byte{"mask": []byte("not a png")}, 400, "not a readable image"},
		{"truncated scribble PNG", map[string]string{"text": "hi"}, map[string][]byte{"scribble": mask[:20]}, 400, "scribble"},
		{"unknown mask label", map[string]string{"text": "hi"}, map[string][]byte{"mask": maskPNG(t, 32, true)}, 400, "label 40"},
		{"mask and scribble", map[string]string{"text": "hi"}, map[string][]byte{"mask": mask, "scribble": scr}, 400, "not both"},
		{"no condition", map[string]string{"text": "hi"}, nil, 400, "required"},
		{"views on StyleGAN2", map[string]string{"text": "hi", "views": "2"}, map[string][]byte{"mask": mask}, 400, "eg3d"},
		{"too many views", map[string]string{"text": "hi", "gan": "eg3d", "views": "17"}, map[string][]byte{"mask": mask}, 400, "between 0 and 16"},
		{"unknown GAN", map[string]string{"text": "hi", "gan": "biggan"}, map[string][]byte{"mask": mask}, 400, "unknown GAN"},
		{"bad seed", map[string]string{"text": "hi", "seed": "x"}, map[string][]byte{"mask": mask}, 400, "seed"},
		{"NaN yaw", map[string]string{"text": "hi", "gan": "eg3d", "yaw": "NaN"}, map[string][]byte{"mask": mask}, 400, "finite"},
		{"unknown field", map[string]string{"text": "hi", "prompt": "x"}, map[string][]byte{"mask": mask}, 400, "unknown field"},
		{"bad format", map[string]string{"text": "hi", "format": "gif"}, map[string][]byte{"mask": mask}, 400, "format"},
	} {
		body, ct := form(t, c.values, c.files)
		r, b := post(t, ts, body, ct, "")
		wantError(t, c.name, r, b, c.status, c.contains)
	}

	r, b := post(t, ts, strings.NewReader("text=hi"), "application/x-www-form-urlencoded", "")
	wantError(t, "urlencoded", r, b, http.StatusUnsupportedMediaType, "multipart")
	r, b = post(t, ts, strings.NewReader(`{"text": "hi", "mask": "%%%"}`), "application/json", "")
	wantError(t, "bad base64", r, b, 400, "base64")
	r, b = post(t, ts, strings.NewReader(`{"text": "hi", "sketch": ""}`), "application/json", "")
	wantError(t, "unknown JSON field", r, b, 400, "sketch")

	big, ct := form(t, map[string]string{"text": "hi"}, map[string][]byte{"mask": make([]byte, DefaultMaxBody+1)})
	r, b = post(t, ts, big, ct, "")
	wantError(t, "huge body", r, b, http.StatusRequestEntityTooLarge, "over")

	res, err := http.Get(ts.URL + "/api/generate")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	wantError(t, "GET generate", res, b, http.StatusMethodNotAllowed, "POST")
}

func TestMissingEG3DWeightsIs503(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "weights")
	if err := os.CopyFS(dir, os.DirFS(tinyWeights(t))); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "eg3d_small64.safetensors")); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, dir)
	body, ct := form(t, map[string]string{"text": "hi", "gan": "eg3d"}, map[string][]byte{"mask": maskPNG(t, 32, false)})
	r, b := post(t, ts, body, ct, "")
	wantError(t, "eg3d without weights", r, b, http.StatusServiceUnavailable, "eg3d_small64.safetensors")

	var h struct {
		Weights map[string]map[string]bool
		Missing map[string]string
	}
	getJSON(t, ts.URL+"/api/health", &h)
	if !h.Weights["stylegan2"]["mask"] || h.Weights["eg3d"]["mask"] || !strings.Contains(h.Missing["eg3d/scribble"], "eg3d_small64") {
		t.Errorf("health %+v", h)
	}
	// StyleGAN2 still works beside the missing set.
	body, ct = form(t, map[string]string{"text": "hi"}, map[string][]byte{"mask": maskPNG(t, 32, false)})
	if r, b := post(t, ts, body, ct, ""); r.StatusCode != http.StatusOK {
		t.Errorf("stylegan2 beside missing eg3d: %d %s", r.StatusCode, b)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, res.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestPageAndHealth(t *testing.T) {
	ts := newTestServer(t, tinyWeights(t))
	res, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{`<form id="gen"`, `<canvas id="pad" class="pad" width="256" height="256"`, `<canvas id="maskpad"`, `api/render`, `id="seed"`, `id="yaw"`, `api/generate`, `image-rendering: pixelated`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Self-contained: nothing fetched from another origin.
	for _, bad := range []string{"http://", "https://", "<link"} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("page references %q", bad)
		}
	}

	var h struct {
		Status   string
		Versions map[string]any
		Weights  map[string]map[string]bool
	}
	getJSON(t, ts.URL+"/api/health", &h)
	if h.Status != "ok" || h.Versions["ddgi"] != "test" || h.Versions["libtorch"] == "" || !h.Weights["stylegan2"]["mask"] || !h.Weights["eg3d"]["scribble"] {
		t.Errorf("health %+v", h)
	}
	if res, _ := http.Get(ts.URL + "/nope"); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: %d", res.StatusCode)
	}
	res, _ = http.Get(ts.URL + "/api/nope")
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	wantError(t, "unknown API", res, b, http.StatusNotFound, "/api/nope")
}

// Panics become JSON 500s, in handlers and on the worker, and the worker
// keeps serving.
func TestPanicsAreRecovered(t *testing.T) {
	s := New(Config{Weights: t.TempDir(), Log: log.New(io.Discard, "", 0)})
	defer s.Close()
	rec := httptest.NewRecorder()
	recoverer(s.cfg.Log, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("handler panic: %d %s", rec.Code, rec.Body)
	}
	err := s.do(context.Background(), func() error { panic("worker boom") })
	if err == nil || statusOf(err) != http.StatusInternalServerError {
		t.Errorf("worker panic: %v", err)
	}
	if err := s.do(context.Background(), func() error { return nil }); err != nil {
		t.Errorf("worker dead after a panic: %v", err)
	}
	// A client gone while queued costs no work.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := s.do(ctx, func() error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Errorf("cancelled job: err %v, ran %v", err, ran)
	}
}

// TestBodiesReadAtOnceAreBounded: with every parse slot held by a client
// still sending its body, the next request is refused with 503 and a
// Retry-After before its body is read; once the slots free, requests are
// read again.
func TestBodiesReadAtOnceAreBounded(t *testing.T) {
	s := New(Config{Weights: tinyWeights(t), Device: torch.CPU, Step: -1, Parsers: 2, Log: log.New(io.Discard, "", 0)})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	var writers []*io.PipeWriter
	done := make(chan struct{}, 2)
	for range 2 {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		pw2 := pw
		go func() {
			pw2.Write([]byte(`{"text": "`)) // a body that has started but not ended
		}()
		go func() {
			resp, err := http.Post(ts.URL+"/api/generate", "application/json", pr)
			if err == nil {
				resp.Body.Close()
			}
			done <- struct{}{}
		}()
	}
	// Wait until both slow requests hold their slots.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.parsing) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(s.parsing) != 2 {
		t.Fatalf("%d parse slots held, want 2", len(s.parsing))
	}
	resp, _ := post(t, ts, strings.NewReader(`{"text": "A man."}`), "application/json", "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third request: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	for _, pw := range writers {
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}
	<-done
	<-done
	// The clients gave up; the server notices the broken bodies and frees the slots.
	for len(s.parsing) > 0 && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(5 * time.Millisecond)
	}
	resp, _ = post(t, ts, strings.NewReader(`{"text": ""}`), "application/json", "")
	if resp.StatusCode == http.StatusServiceUnavailable {
		t.Fatalf("after the slow bodies ended, a request still got 503")
	}
}

// TestForeignOriginsAreRefused: a page from another origin cannot drive
// the local API; the server's own page, allowed origins and clients that
// send no Origin can.
func TestForeignOriginsAreRefused(t *testing.T) {
	s := New(Config{Weights: tinyWeights(t), Device: torch.CPU, Step: -1, AllowOrigins: []string{"http://tools.example:9000"}, Log: log.New(io.Discard, "", 0)})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	for origin, want := range map[string]int{
		"":                          http.StatusOK,
		ts.URL:                      http.StatusOK,
		"http://tools.example:9000": http.StatusOK,
		"http://evil.example":       http.StatusForbidden,
		"null":                      http.StatusForbidden,
	} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/health", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Origin %q: status %d, want %d", origin, resp.StatusCode, want)
		}
	}
}
