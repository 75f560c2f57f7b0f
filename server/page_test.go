package server

import (
	"bytes"
	"image"
	"image/color"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"ddgi/synthface"
	"ddgi/torch"
)

func TestClassesAndExamples(t *testing.T) {
	ts := newTestServer(t, tinyWeights(t))
	var classes []paletteClass
	getJSON(t, ts.URL+"/api/classes", &classes)
	if len(classes) != 19 || classes[13].Name != "hair" || classes[13].RGB != [3]int{0, 0, 204} {
		t.Fatalf("classes %+v", classes)
	}
	var ex struct {
		Masks, Scribbles, Prompts []string
		Styles                    []struct{ Name, Prefix string }
	}
	getJSON(t, ts.URL+"/api/examples", &ex)
	if len(ex.Masks) != 3 || ex.Masks[0] != "mask_0_color.png" || len(ex.Scribbles) != 3 || len(ex.Prompts) != 3 {
		t.Fatalf("examples %+v", ex)
	}
	if len(ex.Styles) != 5 || ex.Styles[1].Prefix != "A marble statue." {
		t.Errorf("styles %+v", ex.Styles)
	}
	res, err := http.Get(ts.URL + "/examples/" + ex.Masks[0])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if s := decodePNG(t, "example", b).Bounds().Dx(); res.StatusCode != 200 || s != 512 {
		t.Errorf("example mask: %d, %d wide", res.StatusCode, s)
	}
	for _, bad := range []string{"nope.png", "prompts.txt", "..%2fgo.mod"} {
		res, _ := http.Get(ts.URL + "/examples/" + bad)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		wantError(t, bad, res, b, http.StatusNotFound, "no example")
	}
}

// paletteMaskPNG is what the page's painter sends: an RGBA PNG in
// synthface.Palette colours, here skin with a band of hair.
func paletteMaskPNG(t *testing.T, side int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			c := synthface.Palette[synthface.Skin]
			if y < side/4 {
				c = synthface.Palette[synthface.Hair]
			}
			img.Set(x, y, color.NRGBA{c.R, c.G, c.B, 255})
		}
	}
	return pngBytes(t, img)
}

func postRender(t *testing.T, ts *httptest.Server, body string) (*http.Response, []byte) {
	t.Helper()
	res, err := http.Post(ts.URL+"/api/render", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// A 3D result's code is kept: rendering it at the generate's camera gives
// the same PNG bytes (no encoder, same code), another camera another face.
func TestRenderSavedCode(t *testing.T) {
	ts := newTestServer(t, tinyWeights(t))
	body, ct := form(t, map[string]string{"text": "A bald man.", "gan": "eg3d", "yaw": "10"}, map[string][]byte{"mask": paletteMaskPNG(t, 64)})
	r, face := post(t, ts, body, ct, "")
	id := r.Header.Get("X-Ddgi-Id")
	if r.StatusCode != 200 || len(id) != 24 {
		t.Fatalf("generate: %d id %q: %s", r.StatusCode, id, face)
	}
	r, same := postRender(t, ts, `{"id":"`+id+`","yaw":10}`)
	if r.StatusCode != 200 || !bytes.Equal(same, face) {
		t.Fatalf("render at the generate's camera: %d, equal %v: %s", r.StatusCode, bytes.Equal(same, face), same)
	}
	r, turned := postRender(t, ts, `{"id":"`+id+`","yaw":-30,"pitch":5}`)
	if r.StatusCode != 200 || bytes.Equal(turned, face) {
		t.Fatalf("render at yaw −30: %d, same as yaw 10: %v", r.StatusCode, bytes.Equal(turned, face))
	}
	decodePNG(t, "turned", turned)
	r, _ = postRender(t, ts, `{"id":"`+id+`","yaw":70}`)
	if r.StatusCode != 200 || !strings.Contains(r.Header.Get("X-Ddgi-Warning"), "outside") {
		t.Errorf("yaw 70: %d, warning %q", r.StatusCode, r.Header.Get("X-Ddgi-Warning"))
	}

	for _, c := range []struct{ name, body, want string }{
		{"unknown id", `{"id":"abc","yaw":1}`, "no code"},
		{"bad yaw", `{"id":"` + id + `","yaw":500}`, "|yaw| ≤ 180"},
		{"unknown field", `{"id":"` + id + `","roll":1}`, "unknown field"},
		{"not JSON", `yaw=1`, "JSON body"},
	} {
		r, b := postRender(t, ts, c.body)
		status := http.StatusBadRequest
		if c.name == "unknown id" {
			status = http.StatusNotFound
		}
		wantError(t, c.name, r, b, status, c.want)
	}
	// A 2D code has no camera to move.
	body, ct = form(t, map[string]string{"text": "A bald man."}, map[string][]byte{"scribble": scribblePNG(t, 40)})
	r, _ = post(t, ts, body, ct, "")
	r2, b := postRender(t, ts, `{"id":"`+r.Header.Get("X-Ddgi-Id")+`","yaw":20}`)
	wantError(t, "2D yaw", r2, b, http.StatusBadRequest, "eg3d")
}

// The code cache is bounded: beyond Codes the oldest id is gone.
func TestRenderCodesBounded(t *testing.T) {
	s := New(Config{Weights: tinyWeights(t), Device: torch.CPU, Step: -1, Log: log.New(io.Discard, "", 0), Codes: 2})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	var ids []string
	for seed := range 3 {
		body, ct := form(t, map[string]string{"text": "A bald man.", "gan": "eg3d", "seed": string(rune('1' + seed))}, map[string][]byte{"scribble": scribblePNG(t, 40)})
		r, b := post(t, ts, body, ct, "")
		if r.StatusCode != 200 {
			t.Fatalf("generate: %d %s", r.StatusCode, b)
		}
		ids = append(ids, r.Header.Get("X-Ddgi-Id"))
	}
	r, b := postRender(t, ts, `{"id":"`+ids[0]+`"}`)
	wantError(t, "evicted", r, b, http.StatusNotFound, "only the last 2 are kept")
	for _, id := range ids[1:] {
		if r, b := postRender(t, ts, `{"id":"`+id+`"}`); r.StatusCode != 200 {
			t.Errorf("kept id: %d %s", r.StatusCode, b)
		}
	}
	var h struct{ Codes int }
	getJSON(t, ts.URL+"/api/health", &h)
	if h.Codes != 2 {
		t.Errorf("health codes %d, want 2", h.Codes)
	}
}

// step and guidance per request; guidance only where it acts.
func TestStepAndGuidance(t *testing.T) {
	ts := newTestServer(t, tinyWeights(t))
	gen := func(vals map[string]string) (*http.Response, []byte) {
		vals["text"] = "A bald man."
		body, ct := form(t, vals, map[string][]byte{"scribble": scribblePNG(t, 40)})
		return post(t, ts, body, ct, "")
	}
	r, b := gen(map[string]string{"guidance": "5"})
	wantError(t, "guidance at T−1", r, b, http.StatusBadRequest, "only when step < T−1")
	r, b = gen(map[string]string{"step": "100000"})
	wantError(t, "step too big", r, b, http.StatusBadRequest, "step 100000")
	r, b = gen(map[string]string{"step": "0", "guidance": "50"})
	wantError(t, "guidance too big", r, b, http.StatusBadRequest, "guidance 50")
	r, b = gen(map[string]string{"art": "maybe"})
	wantError(t, "art", r, b, http.StatusBadRequest, "art")

	r, g5 := gen(map[string]string{"step": "0", "guidance": "5"})
	if r.StatusCode != 200 || r.Header.Get("X-Ddgi-Step") != "0" {
		t.Fatalf("step 0 guidance 5: %d step %q: %s", r.StatusCode, r.Header.Get("X-Ddgi-Step"), g5)
	}
	r, g1 := gen(map[string]string{"step": "0", "guidance": "1"})
	if r.StatusCode != 200 || bytes.Equal(g1, g5) {
		t.Errorf("guidance 1 and 5 at step 0: %d, same face %v", r.StatusCode, bytes.Equal(g1, g5))
	}
	// The per-request settings do not stick to the cached pipeline.
	r, d1 := gen(map[string]string{})
	_, d2 := gen(map[string]string{"step": "-1"})
	if r.StatusCode != 200 || !bytes.Equal(d1, d2) || r.Header.Get("X-Ddgi-Step") == "0" {
		t.Errorf("default after step 0: %d step %s, equal to step −1: %v", r.StatusCode, r.Header.Get("X-Ddgi-Step"), bytes.Equal(d1, d2))
	}
	// Tiny weights have no art models: 503 naming the file.
	r, b = gen(map[string]string{"art": "true"})
	wantError(t, "art missing", r, b, http.StatusServiceUnavailable, "_art")
	var h struct{ Art map[string]map[string]bool }
	getJSON(t, ts.URL+"/api/health", &h)
	if h.Art == nil || h.Art["stylegan2"]["mask"] {
		t.Errorf("health art %+v", h.Art)
	}
}
