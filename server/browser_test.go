package server

import (
	"bytes"
	"context"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"ddgi/synthface"
	"ddgi/torch"
)

// browserPath finds a Chromium or Chrome: $DDGI_CHROME, else the usual
// names on PATH ('.ci/run' installs Debian's chromium).
func browserPath() string {
	if p := os.Getenv("DDGI_CHROME"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// countPaths counts API calls by path, to see what the page really sent.
type countPaths struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countPaths) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.n[r.Method+" "+r.URL.Path]++
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (c *countPaths) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// TestBrowserPage drives the page in headless Chromium, as a person would:
// load an example mask, paint over it, flood-fill and undo, generate a 3D
// face, play the turn (POST /api/render), drag the head, download the PNG.
// Weights are the tiny test ones unless $DDGI_PAGE_WEIGHTS names a model
// set; $DDGI_SCREENSHOTS=DIR saves screenshots of the page there.
func TestBrowserPage(t *testing.T) {
	chrome := browserPath()
	if chrome == "" {
		t.Skip("no Chromium or Chrome found (install Debian's chromium, or set DDGI_CHROME): the page is not tested in a browser")
	}
	weights := os.Getenv("DDGI_PAGE_WEIGHTS")
	if weights == "" {
		weights = tinyWeights(t)
	}
	s := New(Config{Weights: weights, Device: torch.CPU, Step: -1, Version: "test", Log: log.New(io.Discard, "", 0)})
	calls := &countPaths{n: map[string]int{}}
	ts := httptest.NewServer(calls.wrap(s.Handler()))
	t.Cleanup(func() { ts.Close(); s.Close() })

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.WindowSize(1180, 1000), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first Run starts the browser; it must not carry the timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL)); err != nil {
		t.Fatalf("start %s: %v", chrome, err)
	}
	ctx, stop := context.WithTimeout(ctx, 40*time.Second)
	defer stop()
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent`))
			t.Fatalf("%s: %v (page status %q)", what, err, status)
		}
	}
	eval := func(expr string) []float64 {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	// pixel reads the painter canvas (256² canvas shown at 256 px).
	pixel := func(x, y int) [3]int {
		v := eval(fmt.Sprintf(`Array.from(document.getElementById("maskpad").getContext("2d").getImageData(%d,%d,1,1).data)`, x, y))
		return [3]int{int(v[0]), int(v[1]), int(v[2])}
	}
	rgb := func(label int) [3]int {
		c := synthface.Palette[label]
		return [3]int{int(c.R), int(c.G), int(c.B)}
	}
	run("page ready", chromedp.WaitVisible(chromedp.CSS(`body[data-ready]`)))
	// at is a painter pixel in window coordinates, measured now: clicks
	// scroll the page.
	at := func(x, y float64) (float64, float64) {
		box := eval(`(r => [r.left, r.top])(document.getElementById("maskpad").getBoundingClientRect())`)
		return box[0] + x, box[1] + y
	}
	shoot := func(name string) {
		dir := os.Getenv("DDGI_SCREENSHOTS")
		if dir == "" {
			return
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
			t.Fatal(err)
		}
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The palette comes from the server; an example mask loads in colour.
	run("palette", chromedp.WaitVisible(chromedp.CSS(`#palette button[data-label="18"]`)),
		chromedp.Click(chromedp.CSS(`#mexamples button`)))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(d => d[0] + d[1] + d[2] > 0)(document.getElementById("maskpad").getContext("2d").getImageData(128,140,1,1).data)`)); err != nil {
		t.Fatalf("example mask did not load: %v", err)
	}
	if got := pixel(2, 2); got != rgb(synthface.Background) {
		t.Errorf("example corner %v, want background", got)
	}

	// Paint a stroke of hair across the top.
	run("paint", chromedp.Click(chromedp.CSS(`#palette button[data-label="13"]`)))
	x0, y0 := at(40, 20)
	x1, y1 := at(200, 24)
	run("stroke", chromedp.MouseEvent(chromedp.MousePressed, x0, y0, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.MouseEvent(chromedp.MouseMoved, (x0+x1)/2, (y0+y1)/2, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseMoved, x1, y1, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseReleased, x1, y1, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	if got := pixel(120, 22); got != rgb(synthface.Hair) {
		t.Errorf("painted pixel %v, want hair %v", got, rgb(synthface.Hair))
	}
	// Fill the background with hat, then undo it.
	run("fill tool", chromedp.Click(chromedp.CSS(`input[name=tool][value=fill]`)),
		chromedp.Click(chromedp.CSS(`#palette button[data-label="14"]`)))
	cx, cy := at(3, 250)
	run("fill", chromedp.MouseClickXY(cx, cy))
	if got := pixel(2, 2); got != rgb(synthface.Hat) {
		t.Errorf("filled corner %v, want hat %v", got, rgb(synthface.Hat))
	}
	if got := pixel(120, 22); got != rgb(synthface.Hair) {
		t.Errorf("fill crossed into the hair stroke: %v", got)
	}
	run("undo", chromedp.Click(chromedp.ID("mundo")))
	if got := pixel(2, 2); got != rgb(synthface.Background) {
		t.Errorf("after undo the corner is %v, want background", got)
	}

	// Generate a 3D face from the painted mask.
	run("generate", chromedp.Click(chromedp.CSS(`input[name=gan][value=eg3d]`)),
		chromedp.Click(chromedp.ID("generate")),
		chromedp.WaitVisible(chromedp.ID("out")))
	status := eval(`[document.getElementById("status").textContent.startsWith("done") ? 1 : 0, document.querySelectorAll("#history figure").length]`)
	if status[0] != 1 || status[1] != 1 || calls.get("POST /api/generate") != 1 {
		t.Fatalf("after generate: done %v, history %v, %d generate calls", status[0], status[1], calls.get("POST /api/generate"))
	}
	title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#history figure").title`))
	if err != nil || !strings.Contains(title, "mask · 3D") {
		t.Errorf("history entry %q (%v), want the mask and 3D settings", title, err)
	}
	shoot("page.png")

	// The turn renders a sweep through /api/render, then plays it.
	run("turn", chromedp.Click(chromedp.ID("turn")))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("cam").dataset.turn === "playing"`)); err != nil {
		t.Fatalf("turn never played: %v", err)
	}
	if n := calls.get("POST /api/render"); n != 9 {
		t.Errorf("turn made %d render calls, want 9", n)
	}
	// Dragging the face stops the turn and renders the new camera.
	r := eval(`(r => [r.left + r.width / 2, r.top + r.height / 2])(document.getElementById("out").getBoundingClientRect())`)
	fx, fy := r[0], r[1]
	run("drag", chromedp.MouseEvent(chromedp.MousePressed, fx, fy, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.MouseEvent(chromedp.MouseMoved, fx+30, fy, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseMoved, fx+60, fy-10, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseReleased, fx+60, fy-10, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("cam").textContent.startsWith("yaw 24°, pitch 3°") && document.getElementById("out").dataset.view === "24,3"`)); err != nil {
		cam, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("cam").textContent`))
		t.Fatalf("drag: camera reads %q: %v", cam, err)
	}
	if n := calls.get("POST /api/render"); n < 10 {
		t.Errorf("drag made no render call (%d in all)", n)
	}
	shoot("page-turned.png")

	// Download the face on display.
	dir := t.TempDir()
	run("download", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
		return err
	}), chromedp.Click(chromedp.ID("download")))
	var got []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, err = os.ReadFile(filepath.Join(dir, "face-seed1.png")); err == nil && len(got) > 0 {
			break
		}
	}
	img, err := png.Decode(bytes.NewReader(got))
	if err != nil {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("download: %v (folder holds %v)", err, entries)
	}
	// It is the dragged view: the code re-rendered at the last camera.
	id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`shown.id`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(ts.URL+"/api/render", "application/json", strings.NewReader(`{"id":"`+id+`","yaw":24,"pitch":3}`))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Equal(got, want) {
		t.Errorf("downloaded %v (%d bytes) is not the view at yaw 24°, pitch 3°", img.Bounds().Size(), len(got))
	}
	res, err = http.Post(ts.URL+"/api/render", "application/json", strings.NewReader(`{"id":"`+id+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	front, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if bytes.Equal(front, want) {
		t.Error("the frontal view equals the turned one: the download check above proves nothing")
	}

	// An error clears the stale result: upload chosen, no file given.
	run("error", chromedp.Click(chromedp.CSS(`input[name=source][value=upload]`)), chromedp.Click(chromedp.ID("generate")),
		chromedp.Poll[chromedp.Void](`document.getElementById("status").className === "error"`))
	if v := eval(`[document.getElementById("out").offsetHeight, document.getElementById("download").offsetHeight, document.getElementById("view3d").offsetHeight]`); v[0]+v[1]+v[2] != 0 {
		t.Errorf("after an error the old result still shows (heights %v)", v)
	}
	// A history entry brings the result and its settings back.
	run("history", chromedp.SetValue(chromedp.ID("seed"), "5"), chromedp.Click(chromedp.CSS(`#history figure`)),
		chromedp.WaitVisible(chromedp.ID("out")))
	if seed, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("seed").value`)); err != nil || seed != "1" {
		t.Errorf("history click: seed %q (%v), want 1 restored", seed, err)
	}

	// An uploaded label mask (near-black as is) previews in class colours,
	// and "edit in painter" loads the same labels into the painter.
	labelsPNG, err := filepath.Abs("../examples/mask_0.png")
	if err != nil {
		t.Fatal(err)
	}
	run("upload", chromedp.Click(chromedp.CSS(`input[name=source][value=upload]`)),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{labelsPNG}),
		chromedp.Poll[chromedp.Void](`!document.getElementById("toPainter").disabled`))
	// The label at a point inside one part (512² file, 256² preview).
	f, err := os.ReadFile(labelsPNG)
	if err != nil {
		t.Fatal(err)
	}
	m, err := png.Decode(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	const px, py = 128, 100
	label := int(color.GrayModel.Convert(m.At(2*px, 2*py)).(color.Gray).Y)
	for d := -3; d <= 3; d++ {
		if l := int(color.GrayModel.Convert(m.At(2*px+d, 2*py+d)).(color.Gray).Y); l != label {
			t.Fatalf("test point (%d,%d) of %s is on a part border", px, py, labelsPNG)
		}
	}
	preview := eval(fmt.Sprintf(`Array.from(document.getElementById("preview").getContext("2d").getImageData(%d,%d,1,1).data)`, px, py))
	if p := [3]int{int(preview[0]), int(preview[1]), int(preview[2])}; p != rgb(label) || label == 0 {
		t.Errorf("upload preview at (%d,%d) %v, want %s %v", px, py, p, synthface.Classes[label], rgb(label))
	}
	run("edit upload", chromedp.Click(chromedp.ID("toPainter")))
	if got := pixel(px, py); got != rgb(label) {
		t.Errorf("painter after edit-in-painter %v, want %s", got, synthface.Classes[label])
	}
}
