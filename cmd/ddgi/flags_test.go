package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// captureRun runs ddgi in-process and returns its exit code, stdout, stderr.
func captureRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	stdout, stderr := os.Stdout, os.Stderr
	ro, wo, _ := os.Pipe()
	re, we, _ := os.Pipe()
	os.Stdout, os.Stderr = wo, we
	outc, errc := make(chan string), make(chan string)
	go func() { b, _ := io.ReadAll(ro); outc <- string(b) }()
	go func() { b, _ := io.ReadAll(re); errc <- string(b) }()
	code := run(args)
	wo.Close()
	we.Close()
	os.Stdout, os.Stderr = stdout, stderr
	return code, <-outc, <-errc
}

// TestNonFiniteFloatFlagsAreRefused finds every float flag of every command
// in its help and gives it NaN, +Inf and -Inf: each must be a usage error
// (exit 2) naming the flag, before the command does anything.
func TestNonFiniteFloatFlagsAreRefused(t *testing.T) {
	floatFlag := regexp.MustCompile(`(?m)^  -(\S+) float`)
	var cmds [][]string
	for _, name := range sortedNames() {
		if len(groups[name]) == 0 {
			cmds = append(cmds, []string{name})
		}
		for target := range groups[name] {
			cmds = append(cmds, []string{name, target})
		}
	}
	checked := 0
	for _, c := range cmds {
		_, help, _ := captureRun(t, append(append([]string(nil), c...), "-h")...)
		for _, m := range floatFlag.FindAllStringSubmatch(help, -1) {
			for _, bad := range []string{"NaN", "+Inf", "-Inf"} {
				args := append(append([]string(nil), c...), "-"+m[1], bad)
				code, _, stderr := captureRun(t, args...)
				if code != 2 || !strings.Contains(stderr, "-"+m[1]) || !strings.Contains(stderr, "finite") {
					t.Errorf("ddgi %s: exit %d, stderr %q; want 2 and an error naming the flag", strings.Join(args, " "), code, firstLine(stderr))
				}
				checked++
			}
		}
	}
	if checked < 30 {
		t.Fatalf("only %d float flag values checked; the help parsing found too few flags", checked)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// TestSharedCoresHint: the --nproc advice appears only when others keep at
// least a core busy on a machine with two or more.
func TestSharedCoresHint(t *testing.T) {
	for _, c := range []struct {
		others float64
		cores  int
		want   bool
	}{{0, 2, false}, {0.9, 2, false}, {1, 2, true}, {3.5, 4, true}, {2, 1, false}} {
		h := sharedCoresHint(c.others, c.cores)
		if (h != "") != c.want || c.want && !strings.Contains(h, fmt.Sprintf("--nproc %d", c.cores)) {
			t.Errorf("others %g, %d cores: %q", c.others, c.cores, h)
		}
	}
}
