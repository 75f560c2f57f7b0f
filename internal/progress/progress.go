// Package progress prints one self-updating status line for long jobs:
// count, rate, elapsed time, ETA and free-form fields such as losses.
// Bars draw only when stderr is a terminal (a piped or redirected run stays
// clean), except NewLogged's, and never when Quiet is set.
package progress

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Bar reports progress toward Total units (samples, steps, kimg…).
type Bar struct {
	Label string
	Total int64
	Unit  string
	Out   io.Writer
	// Every limits redraws; the final one always prints.
	Every time.Duration

	mu      sync.Mutex
	start   time.Time
	done    int64
	base    int64
	last    time.Time
	isTerm  bool
	fields  map[string]float64
	printed bool
	drawn   int64 // done at the last draw
}

// Quiet silences every bar made after it is set (ddgi's --quiet).
var Quiet bool

// New starts a bar at start (non-zero when a job resumes) of total. It
// redraws one line on stderr when that is a terminal and prints nothing
// otherwise.
func New(label string, start, total int64, unit string) *Bar {
	return newBar(label, start, total, unit, false)
}

// NewLogged is New for jobs that can run for many minutes with stderr in a
// log file (training, evaluation, sampling, conversion): there it prints a
// plain line every 10 s instead of nothing.
func NewLogged(label string, start, total int64, unit string) *Bar {
	return newBar(label, start, total, unit, true)
}

func newBar(label string, start, total int64, unit string, logged bool) *Bar {
	term := IsTerminal(os.Stderr)
	b := &Bar{Label: label, Total: total, Unit: unit, Out: os.Stderr, Every: 500 * time.Millisecond, start: time.Now(), done: start, base: start, isTerm: term}
	switch {
	case Quiet || (!term && !logged):
		b.Out = io.Discard
	case !term:
		b.Every = 10 * time.Second // logs: a line every few seconds, not a flood
	}
	return b
}

// IsTerminal reports whether f is a character device (a terminal).
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Set records the current count and fields (e.g. {"loss": 0.12}).
func (b *Bar) Set(done int64, fields map[string]float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = done
	if fields != nil {
		b.fields = fields
	}
	if now := time.Now(); now.Sub(b.last) >= b.Every || done >= b.Total {
		b.last = now
		b.draw()
	}
}

// Add advances the count by n.
func (b *Bar) Add(n int64) {
	b.mu.Lock()
	d := b.done + n
	b.mu.Unlock()
	b.Set(d, nil)
}

// Finish prints the final line (unless Set just drew it) and a newline.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.printed || b.drawn != b.done {
		b.draw()
	}
	if b.isTerm {
		fmt.Fprintln(b.Out)
	}
}

// ETA estimates the time left from the rate since start.
func (b *Bar) ETA() time.Duration {
	el := time.Since(b.start)
	did := b.done - b.base
	if did <= 0 {
		return 0
	}
	left := b.Total - b.done
	return time.Duration(float64(el) * float64(left) / float64(did))
}

func (b *Bar) draw() {
	el := time.Since(b.start)
	rate := float64(b.done-b.base) / el.Seconds()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %d/%d %s", b.Label, b.done, b.Total, b.Unit)
	if b.Total > 0 {
		fmt.Fprintf(&sb, " (%.0f%%)", 100*float64(b.done)/float64(b.Total))
	}
	fmt.Fprintf(&sb, " %.2f %s/s elapsed %s", rate, b.Unit, round(el))
	if b.done < b.Total && b.done > b.base { // no rate yet, no estimate
		fmt.Fprintf(&sb, " ETA %s", round(b.ETA()))
	}
	keys := make([]string, 0, len(b.fields))
	for k := range b.fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s=%.4g", k, b.fields[k])
	}
	if b.isTerm {
		fmt.Fprintf(b.Out, "\r\033[K%s", sb.String())
	} else {
		fmt.Fprintln(b.Out, sb.String())
	}
	b.printed, b.drawn = true, b.done
}

func round(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
