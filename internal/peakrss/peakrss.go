// Package peakrss reads a process's peak resident set size the way that
// survives exec. getrusage's ru_maxrss does not: Linux records the address
// space a process execs from in its RSS peak, and Go starts children on the
// parent's address space, so a child of a test binary or bench that has
// grown to gigabytes reports the parent's peak as its own. VmHWM, the
// high-water mark of the process's own address space, does not carry over.
package peakrss

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Bytes is this process's peak RSS: VmHWM from /proc/self/status, or
// getrusage where /proc cannot be read.
func Bytes() int64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		if n, ok := vmHWM(b); ok {
			return n
		}
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss << 10
}

// vmHWM reads the "VmHWM: N kB" line of a /proc/PID/status file.
func vmHWM(status []byte) (int64, bool) {
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return kb << 10, true
			}
		}
	}
	return 0, false
}

// marker starts the line Report writes and Parse finds.
const marker = "ddgi-peak-rss-bytes "

// Report writes this process's peak RSS as one line for a parent to Parse
// from the child's output (a child measured from outside would carry the
// parent's peak).
func Report(w io.Writer) { fmt.Fprintf(w, "\n%s%d\n", marker, Bytes()) }

// Parse finds the last line Report wrote in out.
func Parse(out []byte) (int64, bool) {
	i := bytes.LastIndex(out, []byte(marker))
	if i < 0 {
		return 0, false
	}
	rest := out[i+len(marker):]
	if j := bytes.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(rest)), 10, 64)
	return n, err == nil
}
