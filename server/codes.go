package server

import (
	"container/list"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"net/http"
	"sync"
	"time"

	"ddgi/face"
	"ddgi/kinds"
	"ddgi/torch"
)

// DefaultCodes is how many recent W+ codes /api/render can re-render: a
// small64 code is ~10 KB, a converted full-size one ~30 KB, so the cache
// stays under a few MB.
const DefaultCodes = 64

// savedCode is one generation's W+ code, kept in Go memory (not as a
// tensor) so an evicted code is plain garbage, wherever it is dropped.
type savedCode struct {
	id    string
	pipe  pipeKey // the pipeline whose generator drew it
	shape []int64
	w     []float32
}

// codeCache is a bounded LRU of savedCodes keyed by id.
type codeCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used
	byID  map[string]*list.Element
}

func newCodeCache(max int) *codeCache {
	return &codeCache{max: max, order: list.New(), byID: map[string]*list.Element{}}
}

// add stores c, evicting the least recently used code beyond max.
func (c *codeCache) add(sc *savedCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[sc.id] = c.order.PushFront(sc)
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.byID, old.Value.(*savedCode).id)
	}
}

// get returns the code and marks it recently used.
func (c *codeCache) get(id string) (*savedCode, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*savedCode), true
}

func (c *codeCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// newCodeID is an unguessable id: one client cannot enumerate another's
// codes.
func newCodeID() string {
	b := make([]byte, 12)
	rand.Read(b) // never fails (crypto/rand panics on a broken source)
	return hex.EncodeToString(b)
}

// keep saves code 0 of w for /api/render and returns its id. Worker only
// (it copies the tensor out).
func (s *Server) keep(key pipeKey, w *torch.Tensor) (string, error) {
	var sc *savedCode
	err := torch.Try(func() {
		one := w.Narrow(0, 0, 1)
		sc = &savedCode{id: newCodeID(), pipe: key, shape: one.Shape(), w: one.Float32s()}
	})
	if err != nil {
		return "", err
	}
	s.codes.add(sc)
	return sc.id, nil
}

// renderRequest is the JSON body of POST /api/render.
type renderRequest struct {
	ID    string  `json:"id"`
	Yaw   float64 `json:"yaw"`
	Pitch float64 `json:"pitch"`
}

// handleRender re-renders a code kept from a recent /api/generate (its
// X-Ddgi-Id / "id") from another camera: only the generator runs, the
// path of `ddgi render` (face.Pipeline.View), not the encoder.
func (s *Server) handleRender(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	start := time.Now()
	var req renderRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, badInput(fmt.Errorf(`JSON body {"id": "…", "yaw": 0, "pitch": 0}: %w`, err)))
		return
	}
	sc, ok := s.codes.get(req.ID)
	if !ok {
		writeError(w, &httpError{http.StatusNotFound, fmt.Errorf("no code %q: ids come from /api/generate and only the last %d are kept (generate again)", req.ID, s.codes.max)})
		return
	}
	if err := face.CheckRender(sc.pipe.gan, 0, 0, req.Yaw, req.Pitch); err != nil {
		writeError(w, badInput(err))
		return
	}
	var pic image.Image
	err := s.do(r.Context(), func() error {
		p, ok := s.pipes[sc.pipe]
		if !ok { // pipelines are never dropped; a bug if reached
			return errors.New("the code's pipeline is not loaded")
		}
		var code *torch.Tensor
		if err := torch.Try(func() {
			code = torch.FromFloat32(sc.w, sc.shape...).ToDevice(s.cfg.Device)
			torch.Persist(code)
		}); err != nil {
			return err
		}
		defer code.Free()
		var err error
		pic, err = p.View(code, 0, req.Yaw, req.Pitch)
		return err
	})
	if err != nil {
		s.cfg.Log.Printf("render %s: %d %v", req.ID, statusOf(err), err)
		writeError(w, err)
		return
	}
	body, err := encodePNG(pic)
	if err != nil {
		writeError(w, err)
		return
	}
	s.cfg.Log.Printf("render %s yaw=%g pitch=%g: 200 in %v", sc.pipe, req.Yaw, req.Pitch, time.Since(start).Round(time.Millisecond))
	h := w.Header()
	h.Set("Content-Type", "image/png")
	h.Set("Cache-Control", "no-store")
	if warn := renderWarning(sc.pipe.gan, req.Yaw, req.Pitch); warn != "" {
		h.Set("X-Ddgi-Warning", warn)
	}
	w.Write(body)
}

// renderWarning is face.RenderWarning for 3D codes (2D has no camera).
func renderWarning(gan kinds.GANArch, yaw, pitch float64) string {
	if gan != kinds.EG3D {
		return ""
	}
	return face.RenderWarning(yaw, pitch)
}
