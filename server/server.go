// Package server is ddgi's HTTP front end: a JSON/PNG API over face.Pipeline
// (POST /api/generate, GET /api/health) and one self-contained web page to
// draw a scribble and try prompts (GET /).
//
// All libtorch work runs on one worker goroutine locked to one OS thread:
// libtorch's grad mode and OpenMP thread team are per thread, and one
// generation at a time is all a small CPU machine can do well anyway. HTTP
// handlers parse and validate concurrently, then queue a job for the worker.
package server

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"ddgi/data"
	"ddgi/face"
	"ddgi/kinds"
	"ddgi/nn"
	"ddgi/torch"
)

// DefaultMaxBody bounds a request body: a few PNGs of a face condition are
// far smaller, and it caps what one request can make the server hold.
const DefaultMaxBody = 8 << 20

// MaxViews bounds views per request (ddgi generate allows 64; a web
// request should stay short).
const MaxViews = 16

// Config sets up a Server.
type Config struct {
	// Weights is the folder of shipped weights (weights/).
	Weights string
	Device  torch.Device
	// Precision is face.Options.Precision ("": fp32).
	Precision nn.Precision
	// Step is face.Options.Step (-1: one pass at T−1).
	Step int
	// Version is the ddgi release reported by /api/health.
	Version string
	// MaxBody bounds request bodies in bytes (0: DefaultMaxBody).
	MaxBody int64
	// Queue is how many generations may wait for the worker before new
	// ones are refused with 503 (0: 8).
	Queue int
	// Parsers bounds how many request bodies are read and decoded at once
	// (0: 4); more are refused with 503 before their body is read, so a
	// burst of large uploads cannot hold Parsers × MaxBody and more.
	Parsers int
	// Log receives one line per generation and any recovered panic
	// (nil: discarded).
	Log *log.Logger
	// AllowOrigins are web origins ("http://host:port") besides the
	// server's own whose pages may call the API; a browser request from any
	// other origin is refused, so a page the user visits cannot drive the
	// local service. Requests without an Origin (curl, scripts) pass.
	AllowOrigins []string
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every /api/ request (the page passes it on from its #token= URL).
	Token string
	// LoopbackHosts refuses requests whose Host is not a loopback name:
	// set when listening on loopback, it stops DNS rebinding (a foreign
	// page whose name resolves to 127.0.0.1 sends its own Host).
	LoopbackHosts bool
	// ImageLimits bound an uploaded condition image, checked from its
	// header on the worker before decoding (zero: DefaultImageLimits).
	ImageLimits data.ImageLimits
	// Codes bounds the recent W+ codes kept for /api/render (0:
	// DefaultCodes); older ones are dropped, least recently used first.
	Codes int
}

// DefaultImageLimits is the server's upload budget: a 2048² condition is
// 32× the largest model's input, and one worker must not stall on a bomb.
var DefaultImageLimits = data.ImageLimits{MaxSide: 2048, MaxBytes: 16 << 20}

// Server serves the API and the page. Create it with New, serve Handler,
// and Close it after http.Server.Shutdown.
type Server struct {
	cfg      Config
	versions map[string]any
	jobs     chan task
	parsing  chan struct{} // a slot per request body being read
	quit     chan struct{}
	stopped  chan struct{}
	once     sync.Once

	// pipes is touched only by the worker goroutine.
	pipes map[pipeKey]*face.Pipeline
	// codes are the recent results' W+ codes for /api/render.
	codes *codeCache

	mu     sync.Mutex // guards loaded, read by /api/health
	loaded []string
}

// task is one unit of libtorch work for the worker.
type task struct {
	ctx  context.Context
	run  func() error
	done chan error // buffered: the worker never blocks on a gone client
}

// retryAfter is the Retry-After (seconds) of a busy 503.
const retryAfter = "2"

var (
	errBusy   = &httpError{http.StatusServiceUnavailable, errors.New("server busy: too many generations queued; retry shortly")}
	errClosed = &httpError{http.StatusServiceUnavailable, errors.New("server is shutting down")}
)

// New starts the worker; no weights are loaded until a request needs them.
func New(cfg Config) *Server {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 8
	}
	if cfg.Parsers <= 0 {
		cfg.Parsers = 4
	}
	if cfg.ImageLimits.MaxSide <= 0 || cfg.ImageLimits.MaxBytes <= 0 {
		cfg.ImageLimits = DefaultImageLimits
	}
	if cfg.Codes <= 0 {
		cfg.Codes = DefaultCodes
	}
	if cfg.Log == nil {
		cfg.Log = log.New(discard{}, "", 0)
	}
	s := &Server{
		cfg:     cfg,
		jobs:    make(chan task, cfg.Queue),
		parsing: make(chan struct{}, cfg.Parsers),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
		pipes:   map[pipeKey]*face.Pipeline{},
		codes:   newCodeCache(cfg.Codes),
	}
	// Read once here: these cgo calls need no serialising, but there is no
	// reason to repeat them per health check.
	s.versions = map[string]any{
		"ddgi":     cfg.Version,
		"go":       runtime.Version(),
		"platform": runtime.GOOS + "/" + runtime.GOARCH,
		"libtorch": torch.Version(),
		"cuda":     torch.CUDAAvailable(),
		"threads":  torch.Threads(),
	}
	go s.work()
	return s
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Close stops the worker after its current job. Call it after
// http.Server.Shutdown has drained the handlers.
func (s *Server) Close() {
	s.once.Do(func() { close(s.quit) })
	<-s.stopped
}

// work runs queued libtorch jobs one at a time on one OS thread.
func (s *Server) work() {
	// Never unlocked: the thread ends with the goroutine, taking its
	// torch thread state with it.
	runtime.LockOSThread()
	defer close(s.stopped)
	for {
		select {
		case <-s.quit:
			return
		case t := <-s.jobs:
			if err := t.ctx.Err(); err != nil {
				t.done <- err // the client left while queued: skip the work
				continue
			}
			t.done <- s.safely(t.run)
		}
	}
}

// safely turns a panic in a job into an error so the worker (and the
// process) survives a bug hit by one request.
func (s *Server) safely(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Log.Printf("panic in generation: %v\n%s", r, debug.Stack())
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return f()
}

// do runs f on the worker and waits for it, for the client or for Close.
func (s *Server) do(ctx context.Context, f func() error) error {
	t := task{ctx: ctx, run: f, done: make(chan error, 1)}
	select {
	case <-s.quit:
		return errClosed
	default:
	}
	select {
	case s.jobs <- t:
	default:
		return errBusy
	}
	select {
	case err := <-t.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return errClosed
	}
}

// pipeKey names one loadable pipeline: a GAN, a condition, and the art
// (style-transfer) models or the photo ones.
type pipeKey struct {
	gan  kinds.GANArch
	cond kinds.Cond
	art  bool
}

func (k pipeKey) String() string {
	s := string(k.gan) + "/" + string(k.cond)
	if k.art {
		s += "/art"
	}
	return s
}

// pipeline returns the cached pipeline for key, loading it on first use.
// Worker only.
func (s *Server) pipeline(key pipeKey) (*face.Pipeline, error) {
	if p, ok := s.pipes[key]; ok {
		return p, nil
	}
	start := time.Now()
	p, err := face.Load(s.options(key))
	if err != nil {
		return nil, fmt.Errorf("load %s pipeline: %w", key, err)
	}
	s.pipes[key] = p
	s.mu.Lock()
	s.loaded = append(s.loaded, key.String())
	s.mu.Unlock()
	s.cfg.Log.Printf("loaded %s pipeline in %v", key, time.Since(start).Round(time.Millisecond))
	return p, nil
}

func (s *Server) options(k pipeKey) face.Options {
	return face.Options{Weights: s.cfg.Weights, GAN: k.gan, Cond: k.cond, Art: k.art, Device: s.cfg.Device, Step: s.cfg.Step, Precision: s.cfg.Precision}
}

// Available reports, for each "gan/cond" (kinds.GANArchs × kinds.Conds, in
// health order), whether its weight files exist, and why not where they do
// not; with art, the same for the style-transfer models ("gan/cond/art").
func (s *Server) Available(art bool) (present map[kinds.GANArch]map[kinds.Cond]bool, missing map[string]string) {
	present = map[kinds.GANArch]map[kinds.Cond]bool{}
	missing = map[string]string{}
	for _, g := range kinds.GANArchs {
		present[g] = map[kinds.Cond]bool{}
		for _, c := range kinds.Conds {
			k := pipeKey{g, c, art}
			err := s.options(k).CheckFiles()
			present[g][c] = err == nil
			if err != nil {
				missing[k.String()] = err.Error()
			}
		}
	}
	return present, missing
}

// Handler is the whole site: the page, the API, panic recovery.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", s.handleIndex)
	mux.HandleFunc("/api/generate", s.handleGenerate)
	mux.HandleFunc("/api/render", s.handleRender)
	mux.HandleFunc("/api/health", s.handleHealth)
	mux.HandleFunc("/api/classes", s.handleClasses)
	mux.HandleFunc("/api/examples", s.handleExamples)
	mux.HandleFunc("/examples/{name}", s.handleExampleFile)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &httpError{http.StatusNotFound, fmt.Errorf("no API endpoint %s (have /api/generate, /api/render, /api/health, /api/classes, /api/examples)", r.URL.Path)})
	})
	return recoverer(s.cfg.Log, s.sameOrigin(s.authorized(mux)))
}

// authorized requires the bearer token on /api/ when one is configured.
func (s *Server) authorized(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := []byte("Bearer " + s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if strings.HasPrefix(r.URL.Path, "/api/") && subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ddgi"`)
			writeError(w, &httpError{http.StatusUnauthorized, errors.New("missing or wrong bearer token (open the page with the #token=… URL ddgi serve printed, or send Authorization: Bearer <token>)")})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin refuses browser requests sent from another web origin than
// the server's own (or the allowed ones) with 403, and with LoopbackHosts
// a Host that is not loopback.
func (s *Server) sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.LoopbackHosts && !loopbackHost(r.Host) {
			writeError(w, &httpError{http.StatusForbidden, fmt.Errorf("host %q is not this machine's loopback name (use http://127.0.0.1 or http://localhost)", r.Host)})
			return
		}
		o := r.Header.Get("Origin")
		if o == "" || slices.Contains(s.cfg.AllowOrigins, o) {
			next.ServeHTTP(w, r)
			return
		}
		if u, err := url.Parse(o); err == nil && u.Host == r.Host {
			next.ServeHTTP(w, r)
			return
		}
		writeError(w, &httpError{http.StatusForbidden, fmt.Errorf("requests from origin %q are not allowed (ddgi serve --allow-origin adds one)", o)})
	})
}

// recoverer answers a handler's panic with a JSON 500 instead of dropping
// the connection.
func recoverer(lg *log.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { // net/http's own "drop this response"
				panic(v)
			}
			lg.Printf("panic serving %s %s: %v\n%s", r.Method, r.URL.Path, v, debug.Stack())
			writeError(w, fmt.Errorf("internal error: %v", v))
		}()
		next.ServeHTTP(w, r)
	})
}

//go:embed index.html
var indexHTML []byte

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The page loads nothing from elsewhere; say so to the browser too.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' blob: data:")
	w.Write(indexHTML)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	present, missing := s.Available(false)
	art, artMissing := s.Available(true)
	for k, v := range artMissing {
		missing[k] = v
	}
	s.mu.Lock()
	loaded := append([]string{}, s.loaded...)
	s.mu.Unlock()
	sort.Strings(loaded)
	writeJSON(w, http.StatusOK, map[string]any{
		"status":   "ok",
		"versions": s.versions,
		"device":   s.cfg.Device.String(),
		"step":     s.cfg.Step,
		"weights":  present,
		"art":      art,
		"missing":  missing,
		"codes":    s.codes.len(),
		"loaded":   loaded,
	})
}

// httpError carries the status an error is answered with.
type httpError struct {
	status int
	err    error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

// badInput marks err as the client's fault (400).
func badInput(err error) error { return &httpError{http.StatusBadRequest, err} }

// statusOf maps an error to its HTTP status: explicit, missing weights
// (503: the server lacks them, the request is fine), else 500.
func statusOf(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.Is(err, face.ErrMissingWeights):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers {"error": "one line"} with err's status.
func writeError(w http.ResponseWriter, err error) {
	if errors.Is(err, errBusy) {
		w.Header().Set("Retry-After", retryAfter) // busy is momentary; a client can back off this long
	}
	msg := strings.Join(strings.Fields(err.Error()), " ") // one line, whatever libtorch said
	writeJSON(w, statusOf(err), map[string]string{"error": msg})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, &httpError{http.StatusMethodNotAllowed, fmt.Errorf("method not allowed; use %s", allow)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types are marshalled: a bug
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error: encoding the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
