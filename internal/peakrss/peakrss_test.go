package peakrss

import (
	"bytes"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

const childEnv = "DDGI_PEAKRSS_CHILD"

// A small child of a process that has grown must report its own peak: the
// parent here touches 512 MiB first, then starts itself as a child that
// allocates nothing.
func TestChildPeakIsItsOwn(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		Report(os.Stdout)
		return
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	big := make([]byte, 512<<20)
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	if Bytes() < 512<<20 {
		t.Fatalf("parent peak %d MiB after touching 512 MiB", Bytes()>>20)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildPeakIsItsOwn$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child ru_maxrss %d MiB", cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss>>10)
	n, ok := Parse(out)
	if !ok {
		t.Fatalf("no peak in the child's output:\n%s", out)
	}
	if n > 256<<20 {
		t.Fatalf("the child reports %d MiB: the parent's peak leaked into it", n>>20)
	}
	big[0] = 2 // keep big alive until the child has run
	var buf bytes.Buffer
	Report(&buf)
	if m, ok := Parse(append([]byte("noise\n"), buf.Bytes()...)); !ok || m < 512<<20 {
		t.Fatalf("Parse(Report) = %d, %v", m, ok)
	}
}
