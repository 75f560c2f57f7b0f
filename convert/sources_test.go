package convert

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"ddgi/internal/peakrss"
	"ddgi/safetensors"
)

// writeBigSafetensors streams a safetensors file of n F32 tensors of
// perMB MiB each (random bytes) without holding it in memory.
func writeBigSafetensors(t *testing.T, path string, n, perMB int) {
	t.Helper()
	per := int64(perMB) << 20
	header := map[string]any{}
	for i := 0; i < n; i++ {
		header[fmt.Sprintf("t%03d", i)] = map[string]any{"dtype": "F32", "shape": []int64{per / 4}, "data_offsets": []int64{int64(i) * per, int64(i+1) * per}}
	}
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	binary.Write(w, binary.LittleEndian, uint64(len(h)))
	w.Write(h)
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for i := int64(0); i < int64(n)*per; i += int64(len(buf)) {
		for j := 0; j < len(buf); j += 8 {
			binary.LittleEndian.PutUint64(buf[j:], r.Uint64()&^0x4000000040000000) // finite floats
		}
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSafetensorsReadRSS reads every tensor of a large .safetensors file
// through OpenSources in a child process and checks its peak RSS stays near
// one tensor, not the file; a second child reads it whole the way
// OpenSources used to (safetensors.Load), for comparison. The size is
// DDGI_RSS_MB (default 512 MiB, in 64 MiB tensors); -short skips it.
func TestSafetensorsReadRSS(t *testing.T) {
	if mode := os.Getenv("DDGI_RSS_CHILD"); mode != "" {
		rssChild(t, mode, os.Getenv("DDGI_RSS_FILE"))
		return
	}
	if testing.Short() {
		t.Skip("writes a large file")
	}
	total := 512
	if v, err := strconv.Atoi(os.Getenv("DDGI_RSS_MB")); err == nil && v >= 128 {
		total = v
	}
	const perMB = 64
	path := filepath.Join(t.TempDir(), "big.safetensors")
	writeBigSafetensors(t, path, total/perMB, perMB)
	peak := map[string]int64{}
	for _, mode := range []string{"none", "lazy", "whole"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSafetensorsReadRSS$", "-test.v")
		cmd.Env = append(os.Environ(), "DDGI_RSS_CHILD="+mode, "DDGI_RSS_FILE="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s child: %v\n%s", mode, err, out)
		}
		b, ok := peakrss.Parse(out) // the child's own: ru_maxrss would carry this process's peak
		if !ok {
			t.Fatalf("%s child reported no peak RSS:\n%s", mode, out)
		}
		peak[mode] = b >> 20
	}
	size := int64(total / perMB * perMB)
	t.Logf("%d MiB file of %d MiB tensors: peak RSS %d MiB read tensor by tensor, %d MiB read whole, %d MiB reading nothing (the test binary with libtorch)",
		size, perMB, peak["lazy"], peak["whole"], peak["none"])
	// Go's collector lets the heap reach about twice what is live: up to
	// three tensors at once are allowed for.
	if d := peak["lazy"] - peak["none"]; d > 3*perMB {
		t.Errorf("reading tensor by tensor took %d MiB above the baseline for a %d MiB file", d, size)
	}
	if d := peak["whole"] - peak["none"]; d < size*9/10 {
		t.Errorf("reading whole took only %d MiB above the baseline for a %d MiB file: the measurement is off", d, size)
	}
}

// rssChild reads every tensor of path once: through OpenSources (lazy) or
// with safetensors.Load (whole), keeping nothing; or reads nothing (none).
func rssChild(t *testing.T, mode, path string) {
	var bytes int
	switch mode {
	case "none": // the baseline: the test binary, libtorch loaded
	case "lazy":
		src, cl, err := OpenSources(path)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for _, n := range sortedKeys(src) {
			x, err := src[n].Read()
			if err != nil {
				t.Fatal(err)
			}
			bytes += len(x.Data)
		}
	case "whole":
		f, err := safetensors.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range f.Tensors {
			bytes += len(x.Data)
		}
	}
	t.Logf("read %d bytes", bytes)
	peakrss.Report(os.Stdout)
}
