// Package train is the run loop every ddgi trainer shares, and the run folder
// it manages: a JSON-lines log of scalar metrics, its loss plot, resumable
// checkpoints.
package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"ddgi/internal/imageio"
	"ddgi/internal/plot"
)

// Run is one training run's folder.
type Run struct {
	Dir string
}

// Open creates dir if needed and claims it for this process: a second
// process training into the same folder would overwrite its checkpoints.
func Open(dir string) (*Run, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("run folder: %w", err)
	}
	r := &Run{Dir: dir}
	return r, r.claim()
}

// claim writes this process's pid to <dir>/.lock, replacing a lock whose
// process is gone. The lock lives as long as the process.
func (r *Run) claim() error {
	p := r.Path(".lock")
	for try := 0; try < 2; try++ {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = fmt.Fprintf(f, "%d\n", os.Getpid())
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}
		pid := LockHolder(r.Dir)
		if pid == os.Getpid() {
			return nil
		}
		if pid > 0 && alive(pid) {
			return fmt.Errorf("run folder %s is in use by process %d (remove %s if that is wrong)", r.Dir, pid, p)
		}
		os.Remove(p) // stale: its process is gone
	}
	return fmt.Errorf("run folder %s: cannot create %s", r.Dir, p)
}

// LockHolder is the pid in dir's run lock: the process training there,
// or one that did and is gone. 0 when there is no lock (or no pid in it yet).
func LockHolder(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// alive reports whether a process with this pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Path names a file inside the run folder.
func (r *Run) Path(name string) string { return filepath.Join(r.Dir, name) }

// Log appends {"step": step, k: v…} to log.jsonl.
func (r *Run) Log(step int64, vals map[string]float64) error {
	rec := map[string]float64{"step": float64(step)}
	for k, v := range vals {
		rec[k] = v
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(r.Path("log.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadLog returns the logged steps and each metric's values (NaN-free rows
// only; keys missing from a row are skipped in that row).
func (r *Run) ReadLog() (steps []float64, vals map[string][]float64, err error) {
	f, err := os.Open(r.Path("log.jsonl"))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, map[string][]float64{}, nil
		}
		return nil, nil, err
	}
	defer f.Close()
	var rows []map[string]float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]float64
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			rows = append(rows, rec) // a torn last line after a crash is skipped
		}
	}
	keys := map[string]bool{}
	for _, rec := range rows {
		for k := range rec {
			if k != "step" {
				keys[k] = true
			}
		}
	}
	vals = map[string][]float64{}
	for _, rec := range rows {
		complete := true
		for k := range keys {
			if _, ok := rec[k]; !ok {
				complete = false
			}
		}
		if !complete {
			continue
		}
		steps = append(steps, rec["step"])
		for k := range keys {
			vals[k] = append(vals[k], rec[k])
		}
	}
	return steps, vals, sc.Err()
}

// TruncateLog drops rows after step (a resumed run repeats them).
func (r *Run) TruncateLog(step int64) error {
	b, err := os.ReadFile(r.Path("log.jsonl"))
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	var keep []byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]float64
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["step"] <= float64(step) {
			keep = append(keep, sc.Bytes()...)
			keep = append(keep, '\n')
		}
	}
	return imageio.WriteAtomic(r.Path("log.jsonl"), keep)
}

// PlotLosses draws the logged metrics named by keys (every one when none
// is named) into loss.png.
func (r *Run) PlotLosses(title string, keys ...string) error {
	steps, vals, err := r.ReadLog()
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		only := make(map[string][]float64, len(keys))
		for _, k := range keys {
			if v, ok := vals[k]; ok {
				only[k] = v
			}
		}
		vals = only
	}
	return plot.SaveLosses(r.Path("loss.png"), title, steps, vals)
}

// SaveState writes any JSON-able resume state atomically to state.json.
func (r *Run) SaveState(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return imageio.WriteAtomic(r.Path("state.json"), b)
}

// LoadState reads state.json into v; ok is false when there is none.
func (r *Run) LoadState(v any) (ok bool, err error) {
	b, err := os.ReadFile(r.Path("state.json"))
	if os.IsNotExist(err) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s: %w", r.Path("state.json"), err)
	}
	return true, nil
}

// SortedKeys is a helper for stable printing of metric maps.
func SortedKeys(m map[string]float64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
