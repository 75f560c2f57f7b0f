package server

import (
	"image"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"ddgi/torch"
)

func status(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestTokenGuardsTheAPI: with a token, /api/ needs it; the page itself is
// static and loads without (it sends the token from its #token= URL).
func TestTokenGuardsTheAPI(t *testing.T) {
	s := New(Config{Weights: tinyWeights(t), Device: torch.CPU, Step: -1, Token: "s3cret", Log: log.New(io.Discard, "", 0)})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	for auth, want := range map[string]int{
		"":              http.StatusUnauthorized,
		"Bearer wrong":  http.StatusUnauthorized,
		"Bearer s3cre":  http.StatusUnauthorized,
		"s3cret":        http.StatusUnauthorized,
		"Bearer s3cret": http.StatusOK,
	} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/health", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if got := status(t, req); got != want {
			t.Errorf("Authorization %q: status %d, want %d", auth, got, want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/", nil)
	if got := status(t, req); got != http.StatusOK {
		t.Errorf("page without token: %d, want 200", got)
	}
	body, ct := form(t, map[string]string{"text": "A woman."}, map[string][]byte{"mask": maskPNG(t, 64, false)})
	res, b := post(t, ts, body, ct, "")
	wantError(t, "generate without token", res, b, http.StatusUnauthorized, "bearer token")
}

// TestForeignHostsAreRefused: listening on loopback, a request naming
// another host (DNS rebinding: evil.example resolving to 127.0.0.1) is
// refused; loopback names pass.
func TestForeignHostsAreRefused(t *testing.T) {
	s := New(Config{Weights: tinyWeights(t), Device: torch.CPU, Step: -1, LoopbackHosts: true, Log: log.New(io.Discard, "", 0)})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	for host, want := range map[string]int{
		"":                  http.StatusOK, // the test server's own 127.0.0.1:port
		"localhost:8080":    http.StatusOK,
		"[::1]:8080":        http.StatusOK,
		"evil.example":      http.StatusForbidden,
		"evil.example:8080": http.StatusForbidden,
		"10.0.0.7:8080":     http.StatusForbidden,
	} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/health", nil)
		if host != "" {
			req.Host = host
		}
		if got := status(t, req); got != want {
			t.Errorf("Host %q: status %d, want %d", host, got, want)
		}
	}
}

// TestUploadBudgetIsSmallerThanTheCLIs: a 3000² mask the command line
// accepts is refused by the server's default budget from its header.
func TestUploadBudgetIsSmallerThanTheCLIs(t *testing.T) {
	ts := newTestServer(t, tinyWeights(t))
	big := pngBytes(t, image.NewGray(image.Rect(0, 0, 3000, 3000)))
	body, ct := form(t, map[string]string{"text": "A woman."}, map[string][]byte{"mask": big})
	res, b := post(t, ts, body, ct, "")
	wantError(t, "3000² mask", res, b, http.StatusBadRequest, "at most 2048×2048")
}
