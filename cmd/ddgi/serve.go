package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"ddgi/data"
	"ddgi/kinds"
	"ddgi/server"
	"ddgi/torch"
)

func init() {
	register(command{name: "serve", summary: "serve a web page and an HTTP API that generate faces (POST /api/generate)", run: runServe})
}

func runServe(args []string) error {
	fs := newFlags("serve", "[--addr 127.0.0.1:8080] [--weights weights] [--device cpu] [--step -1]")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (host:port; port 0 picks a free one)")
	weights := fs.String("weights", "weights", "model-set folder (default: $DDGI_WEIGHTS, else weights/ beside the binary, else ./weights)")
	devName := fs.String("device", "cpu", "cpu, cuda or cuda:N")
	step := fs.Int("step", -1, "denoising step t of the tapped U-Net pass (-1: T−1), as ddgi generate --step")
	precision := precisionFlag(fs, "")
	maxBody := fs.Int64("max-body", server.DefaultMaxBody, "largest request body in bytes")
	queue := fs.Int("queue", 8, "generations that may wait for the one worker before more get 503")
	parsers := fs.Int("parsers", 4, "request bodies read at once; more get 503 with Retry-After before their body is read")
	allowOrigin := fs.String("allow-origin", "", "comma list of other web origins (http://host:port) whose pages may call the API; browser requests from any other origin get 403")
	uploadMB := fs.Int64("max-upload-mb", server.DefaultImageLimits.MaxBytes>>20, "largest decoded size of an uploaded condition image in MiB (checked from its PNG header on the worker, before decoding)")
	uploadSide := fs.Int("max-upload-side", server.DefaultImageLimits.MaxSide, "largest width or height of an uploaded condition image")
	codes := fs.Int("codes", server.DefaultCodes, "recent results whose W+ code is kept for POST /api/render (the page's 3D turn); ~10 KB each for small64")
	token := fs.String("token", "", "require \"Authorization: Bearer TOKEN\" on /api/ (\"random\": make one and print the page URL with it; default $DDGI_TOKEN, else none)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if *weights, err = modelSet(fs, *weights); err != nil {
		return err
	}
	if *uploadMB < 1 || *uploadMB > 1<<20 || *uploadSide < 1 || *uploadSide > 1<<16 {
		return fmt.Errorf("--max-upload-mb %d / --max-upload-side %d: want 1…1048576 MiB and 1…65536 pixels", *uploadMB, *uploadSide)
	}
	limits := data.ImageLimits{MaxSide: *uploadSide, MaxBytes: *uploadMB << 20}
	data.Limits = limits
	if !flagSet(fs, "token") {
		*token = os.Getenv("DDGI_TOKEN")
	}
	if *token == "random" {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		*token = base64.RawURLEncoding.EncodeToString(b)
	}
	if *codes < 1 || *codes > 1<<16 {
		return fmt.Errorf("--codes %d: want 1…65536", *codes)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	dev, err := torch.ParseDevice(*devName)
	if err != nil {
		return err
	}
	prec, err := precision()
	if err != nil {
		return err
	}
	logger := log.New(os.Stderr, "ddgi serve: ", log.LstdFlags)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	tcp, _ := ln.Addr().(*net.TCPAddr)
	loopback := tcp != nil && tcp.IP.IsLoopback()
	s := server.New(server.Config{Weights: *weights, Device: dev, Precision: prec, Step: *step, Version: Version,
		MaxBody: *maxBody, Queue: *queue, Parsers: *parsers, Log: logger, AllowOrigins: splitList(*allowOrigin),
		Token: *token, LoopbackHosts: loopback, ImageLimits: limits, Codes: *codes})
	defer s.Close()
	present, _ := s.Available(false)
	for _, g := range kinds.GANArchs {
		for _, c := range kinds.Conds {
			state := "present"
			if !present[g][c] {
				state = "missing (requests get 503)"
			}
			logger.Printf("weights %s/%s: %s", g, c, state)
		}
	}

	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute, // bodies are at most a few MiB
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          logger,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	page := "http://" + ln.Addr().String() + "/"
	if *token != "" {
		page += "#token=" + *token
	}
	logger.Printf("listening on %s (Ctrl-C stops)", page)
	if !loopback {
		auth := "and the API has no authentication (--token random adds it)"
		if *token != "" {
			auth = "guarded only by the bearer token, sent in clear over HTTP"
		}
		logger.Printf("warning: %s is reachable from other machines, %s; listen on 127.0.0.1 unless you mean it", ln.Addr(), auth)
	}

	select {
	case err := <-served: // failed before any signal
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stop() // a second Ctrl-C now kills the process outright
	logger.Printf("shutting down: finishing requests in flight")
	// A generation takes under a second on the small models; a queue of
	// them a little longer.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Printf("stopped")
	return nil
}

// splitList splits a comma list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
