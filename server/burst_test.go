package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ddgi/torch"
)

// bigBody is a JSON request of about size bytes whose mask is size bytes of
// base64 'A's (zeros once decoded: not a PNG, so the worker answers 400
// after the whole body was read and decoded). It is generated as it is
// read, so the 64 client bodies cost the test process nothing. When gate
// is not nil the body stops after its opening bytes until gate is closed:
// a client that has started sending and holds its parse slot.
type bigBody struct {
	head, tail []byte
	n          int // payload bytes left
	gate       <-chan struct{}
}

func newBigBody(size int, gate <-chan struct{}) *bigBody {
	head := []byte(`{"text": "A man with short hair.", "mask": "`)
	tail := []byte(`"}`)
	n := size - len(head) - len(tail)
	n -= n % 4 // whole base64 quanta
	return &bigBody{head: head, tail: tail, n: n, gate: gate}
}

func (b *bigBody) len() int64 { return int64(len(b.head) + b.n + len(b.tail)) }

func (b *bigBody) Read(p []byte) (int, error) {
	if len(b.head) > 0 {
		k := copy(p, b.head)
		b.head = b.head[k:]
		return k, nil
	}
	if b.gate != nil {
		<-b.gate
		b.gate = nil
	}
	if b.n > 0 {
		k := min(len(p), b.n)
		for i := range k {
			p[i] = 'A'
		}
		b.n -= k
		return k, nil
	}
	if len(b.tail) > 0 {
		k := copy(p, b.tail)
		b.tail = b.tail[k:]
		return k, nil
	}
	return 0, io.EOF
}

// lineCounter counts the server's log lines of generate answers, all and
// busy (503) ones: every request gets exactly one.
type lineCounter struct {
	mu        sync.Mutex
	all, busy int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if strings.HasPrefix(line, "generate") {
			c.all++
			if strings.Contains(line, ": 503 ") {
				c.busy++
			}
		}
	}
	return len(p), nil
}

// take returns and resets the counts.
func (c *lineCounter) take() (busy, all int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	busy, all = c.busy, c.all
	c.busy, c.all = 0, 0
	return busy, all
}

// procStatus reads a "Vm…: N kB" line of /proc/self/status in bytes.
func procStatus(t *testing.T, key string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", key, line)
			}
			return kb << 10
		}
	}
	t.Skipf("no %s in /proc/self/status", key)
	return 0
}

// resetPeak makes VmHWM start again from the current RSS (Linux ≥ 4.0);
// it reports false where it cannot, so the peak then includes whatever
// the process reached before.
func resetPeak() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

type burstAnswer struct {
	status     int
	retryAfter string
	err        string
}

// burst posts n bodies of size bytes at once and returns every answer.
func burst(t *testing.T, url string, n, size int, gate <-chan struct{}, answered chan<- struct{}) []burstAnswer {
	t.Helper()
	out := make([]burstAnswer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { answered <- struct{}{} }()
			body := newBigBody(size, gate)
			req, err := http.NewRequest(http.MethodPost, url+"/api/generate", body)
			if err != nil {
				out[i].err = err.Error()
				return
			}
			// A known length: the server closes a refused request's
			// connection instead of draining its body (it would drain an
			// unknown-length one, waiting on the gate).
			req.ContentLength = body.len()
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				out[i].err = err.Error()
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			out[i] = burstAnswer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After")}
			var e struct{ Error string }
			if json.Unmarshal(b, &e) != nil || e.Error == "" {
				out[i].err = fmt.Sprintf("not a JSON error: %.80q", b)
			}
		}()
	}
	wg.Wait()
	return out
}

// TestBurstOfBigBodiesIsBounded sends 64 concurrent requests of ~8 MiB
// each (just under the default --max-body), as the probe of issue #19 did
// (it took RSS from 688 MB to 1,905 MB before the parse bound). Every
// request must be answered — 503 with Retry-After for those over the bound
// of bodies read at once, 400 for the admitted ones (their "mask" is not
// an image) — and the process's peak RSS may grow by at most what the
// bound allows.
//
// The ceiling: a JSON body of B bytes costs at most ~4 B while parsed
// (json.Decoder's buffer, grown by doubling, < 2 B; the mask string, B;
// its base64 decoding, ¾ B), and a parsed request waiting for or on the
// worker holds its ¾ B image. With the defaults (4 parsers, 8 queued, 8
// MiB) that is 4·32 + 9·6 ≈ 182 MiB live, and Go's collector lets the heap
// reach about twice its live size before it collects: 2 × 182 MiB ≈ 364
// MiB, set at 384 MiB. Without the bound, 64 parses would hold ~2 GB.
//
// First a gated burst (in -short): every body stops after its first bytes
// until the refused ones have been answered, so exactly 4 are read and 60
// refused — the bound itself, deterministically. Then (full suite) three
// free-running bursts, where bodies race to the slots as they arrive.
func TestBurstOfBigBodiesIsBounded(t *testing.T) {
	const n, size, parsers = 64, DefaultMaxBody - 4<<10, 4
	var logged lineCounter
	s := New(Config{Weights: tinyWeights(t), Device: torch.CPU, Step: -1, Parsers: parsers, Log: log.New(&logged, "", 0)})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })

	// Warm up: load the pipeline and reach the steady state the burst
	// is measured against.
	body, ct := form(t, map[string]string{"text": "A man."}, map[string][]byte{"mask": maskPNG(t, 32, false)})
	if r, b := post(t, ts, body, ct, ""); r.StatusCode != http.StatusOK {
		t.Fatalf("warm-up: %d %s", r.StatusCode, b)
	}
	logged.take()
	runtime.GC()
	debug.FreeOSMemory()
	base := procStatus(t, "VmRSS")
	exact := resetPeak()
	start := time.Now()

	check := func(name string, answers []burstAnswer, wantBusy int) {
		t.Helper()
		busy, read, cut := 0, 0, 0
		for i, a := range answers {
			switch {
			case a.status == http.StatusServiceUnavailable && a.err == "":
				busy++
				if a.retryAfter == "" {
					t.Errorf("%s: request %d: 503 without Retry-After", name, i)
				}
			case (a.status == http.StatusBadRequest || a.status == http.StatusRequestEntityTooLarge) && a.err == "":
				read++
			case a.status == 0 && wantBusy < 0 && (strings.Contains(a.err, "broken pipe") || strings.Contains(a.err, "connection reset")):
				// Refused while still sending: the server answered 503 and
				// closed without reading the rest, and the client's write
				// failed before it read the answer (HTTP/1.1 has no way
				// round that but Expect: 100-continue). The server's log
				// below shows it answered.
				cut++
			default:
				t.Errorf("%s: request %d: status %d %s", name, i, a.status, a.err)
			}
		}
		answers503, answered := logged.take()
		t.Logf("%s: %d read and refused as not an image, %d got 503 + Retry-After, %d cut off while sending; server answered %d (%d with 503)", name, read, busy, cut, answered, answers503)
		if answered != len(answers) || answers503 != busy+cut {
			t.Errorf("%s: the server logged %d answers (%d busy) to %d requests; the clients saw %d busy and %d cut off", name, answered, answers503, len(answers), busy, cut)
		}
		if wantBusy >= 0 && busy != wantBusy {
			t.Errorf("%s: %d requests got 503, want %d (the bound is %d bodies at once)", name, busy, wantBusy, parsers)
		}
		if read == 0 {
			t.Errorf("%s: no request was read at all", name)
		}
	}

	gate := make(chan struct{})
	answered := make(chan struct{}, n)
	go func() {
		// The refused answer at once; then let the admitted bodies through.
		timeout := time.After(30 * time.Second)
		for range n - parsers {
			select {
			case <-answered:
			case <-timeout:
				close(gate) // the check below reports the shortfall
				return
			}
		}
		close(gate)
	}()
	check("gated burst", burst(t, ts.URL, n, size, gate, answered), n-parsers)
	if !testing.Short() {
		for round := range 3 {
			check(fmt.Sprintf("free burst %d", round+1), burst(t, ts.URL, n, size, nil, make(chan struct{}, n)), -1)
		}
	}

	peak := procStatus(t, "VmHWM")
	if !exact {
		t.Logf("VmHWM could not be reset: the peak includes the process before the burst")
	}
	growth := peak - base
	const ceiling = 384 << 20
	t.Logf("RSS before %d MiB, peak %d MiB (+%d MiB, ceiling +%d MiB), after %d MiB; %v",
		base>>20, peak>>20, growth>>20, ceiling>>20, procStatus(t, "VmRSS")>>20, time.Since(start).Round(time.Millisecond))
	if growth > ceiling {
		t.Errorf("peak RSS grew by %d MiB during the bursts, over the %d MiB the parse bound allows", growth>>20, ceiling>>20)
	}

	// The server still serves after the bursts.
	body, ct = form(t, map[string]string{"text": "A man."}, map[string][]byte{"mask": maskPNG(t, 32, false)})
	if r, b := post(t, ts, body, ct, ""); r.StatusCode != http.StatusOK || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("after the bursts: %d %.80q", r.StatusCode, b)
	}
}
