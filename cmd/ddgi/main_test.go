package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

// TestEveryCommandHasHelp runs `ddgi <cmd> -h` (and every train/sample
// target's -h) in-process and expects exit status 0.
func TestEveryCommandHasHelp(t *testing.T) {
	stderr, stdout := os.Stderr, os.Stdout
	devnull, _ := os.Open(os.DevNull)
	os.Stderr = devnull
	defer func() { os.Stderr = stderr }()
	// Help that was asked for goes to stdout, as Go's tools do.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = w
	codes := []int{run([]string{"-h"}), run([]string{"help", "generate"}), run([]string{"help", "train", "gan"}), run([]string{"convert", "-h"})}
	w.Close()
	os.Stdout = stdout
	out, _ := io.ReadAll(r)
	for _, want := range []string{"usage: ddgi <command>", "usage: ddgi generate", "usage: ddgi train gan", "usage: ddgi convert"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("help on stdout lacks %q", want)
		}
	}
	for i, c := range codes {
		if c != 0 {
			t.Errorf("help call %d exited %d", i, c)
		}
	}
	os.Stdout = devnull
	defer func() { os.Stdout = stdout }()
	for _, name := range sortedNames() {
		if code := run([]string{name, "-h"}); code != 0 {
			t.Errorf("ddgi %s -h exited %d", name, code)
		}
		for target := range groups[name] {
			if code := run([]string{name, target, "-h"}); code != 0 {
				t.Errorf("ddgi %s %s -h exited %d", name, target, code)
			}
		}
	}
	if code := run([]string{"no-such-command"}); code != 2 {
		t.Errorf("unknown command exited %d, want 2", code)
	}
	if code := run([]string{"selfcheck", "-no-such-flag"}); code != 2 {
		t.Errorf("bad flag exited %d, want 2", code)
	}
	if code := run([]string{"selfcheck", "-device", "tpu"}); code != 1 {
		t.Errorf("bad device exited %d, want 1", code)
	}
}
