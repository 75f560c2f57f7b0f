package main

import (
	"os"
	"testing"
)

// TestEveryCommandHasHelp runs `ddgi <cmd> -h` (and every train/sample
// target's -h) in-process and expects exit status 0.
func TestEveryCommandHasHelp(t *testing.T) {
	stderr := os.Stderr
	devnull, _ := os.Open(os.DevNull)
	os.Stderr = devnull
	defer func() { os.Stderr = stderr }()
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
