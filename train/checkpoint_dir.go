package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"ddgi/internal/imageio"
)

// A checkpoint is one folder, checkpoints/<units>, holding every file a
// Job saves and MANIFEST.json (each file's size and SHA-256). It is written
// under a temporary name and made a checkpoint by one rename, so a process
// killed at any moment leaves either the previous checkpoint or the new
// one, never a mix; latest points at the newest.

const (
	checkpointsDir = "checkpoints"
	manifestName   = "MANIFEST.json"
	stalePrefix    = ".tmp-"
)

// Checkpoint is one complete checkpoint folder.
type Checkpoint struct {
	Dir  string
	Done int64 // units done when it was saved
}

type manifest struct {
	Done  int64                   `json:"done"`
	Files map[string]manifestFile `json:"files"`
}

type manifestFile struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Checkpoints lists the run's complete checkpoints, oldest first.
func (r *Run) Checkpoints() ([]Checkpoint, error) {
	ents, err := os.ReadDir(r.Path(checkpointsDir))
	if os.IsNotExist(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var cs []Checkpoint
	for _, e := range ents {
		n, perr := strconv.ParseInt(e.Name(), 10, 64)
		if !e.IsDir() || perr != nil || n < 0 {
			continue
		}
		cs = append(cs, Checkpoint{Dir: filepath.Join(r.Path(checkpointsDir), e.Name()), Done: n})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Done < cs[j].Done })
	return cs, nil
}

// Latest is the newest complete checkpoint; ok is false when there is none.
// It does not verify the files (Verify does).
func (r *Run) Latest() (c Checkpoint, ok bool, err error) {
	cs, err := r.Checkpoints()
	if err != nil || len(cs) == 0 {
		return Checkpoint{}, false, err
	}
	return cs[len(cs)-1], true, nil
}

// LoadNewest tries the run's checkpoints newest first: one that does not
// verify, or that load refuses, is reported to warn (nil: silently) and the
// next older one is tried. ok is false when the run has no checkpoint; it
// is an error when it has some and none loads.
func (r *Run) LoadNewest(load func(Checkpoint) error, warn io.Writer) (c Checkpoint, ok bool, err error) {
	cs, err := r.Checkpoints()
	if err != nil || len(cs) == 0 {
		return Checkpoint{}, false, err
	}
	for i := len(cs) - 1; i >= 0; i-- {
		err := cs[i].Verify()
		if err == nil {
			err = load(cs[i])
		}
		if err == nil {
			return cs[i], true, nil
		}
		if warn != nil {
			fmt.Fprintf(warn, "warning: checkpoint %s unusable (%v); trying an older one\n", cs[i].Dir, err)
		}
	}
	return Checkpoint{}, false, fmt.Errorf("%s: no checkpoint verifies; move checkpoints/ aside to start over", r.Dir)
}

// RemoveStale deletes checkpoint folders a killed process left half-written.
func (r *Run) RemoveStale() error {
	ents, err := os.ReadDir(r.Path(checkpointsDir))
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), stalePrefix) {
			if err := os.RemoveAll(filepath.Join(r.Path(checkpointsDir), e.Name())); err != nil {
				return fmt.Errorf("removing a stale checkpoint: %w", err)
			}
		}
	}
	return nil
}

// Checkpoint writes a checkpoint at done: save fills a temporary folder,
// the manifest is written, and one rename makes it complete. Then latest
// points at it and all but the newest keep checkpoints are removed.
func (r *Run) Checkpoint(done int64, save func(dir string) error, keep int) error {
	root := r.Path(checkpointsDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(root, fmt.Sprintf("%s%d-", stalePrefix, done))
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := save(tmp); err != nil {
		return err
	}
	m, err := manifestOf(tmp, done)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := imageio.WriteAtomic(filepath.Join(tmp, manifestName), b); err != nil {
		return err
	}
	final := filepath.Join(root, fmt.Sprintf("%012d", done))
	if err := discard(final); err != nil { // a re-save at the same count
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	ok = true
	syncDir(root)
	if err := r.pointLatest(final); err != nil {
		return err
	}
	return r.prune(keep)
}

// pointLatest makes <run>/latest a symlink to the checkpoint (replaced by
// rename, so readers never see it missing).
func (r *Run) pointLatest(dir string) error {
	rel, err := filepath.Rel(r.Dir, dir)
	if err != nil {
		return err
	}
	tmp := r.Path(".latest.tmp")
	os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, r.Path("latest"))
}

func (r *Run) prune(keep int) error {
	cs, err := r.Checkpoints()
	if err != nil {
		return err
	}
	for i := 0; i < len(cs)-keep; i++ {
		if err := discard(cs[i].Dir); err != nil {
			return err
		}
	}
	return nil
}

// discard deletes a checkpoint folder after renaming it to a stale name,
// so a process killed during the deletion leaves a folder RemoveStale
// clears, never a half-deleted checkpoint under its real name (the CLI
// kill test caught one: G_ema gone, the rest still there).
func discard(dir string) error {
	gone := filepath.Join(filepath.Dir(dir), stalePrefix+"gone-"+filepath.Base(dir))
	if err := os.RemoveAll(gone); err != nil {
		return err
	}
	if err := os.Rename(dir, gone); os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	return os.RemoveAll(gone)
}

// manifestOf hashes every regular file in dir.
func manifestOf(dir string, done int64) (manifest, error) {
	m := manifest{Done: done, Files: map[string]manifestFile{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return m, err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == manifestName {
			continue
		}
		f, err := hashFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return m, err
		}
		m.Files[e.Name()] = f
	}
	return m, nil
}

func hashFile(path string) (manifestFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return manifestFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return manifestFile{}, err
	}
	return manifestFile{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Verify checks every file the manifest lists: present, same size, same
// hash.
func (c Checkpoint) Verify() error {
	b, err := os.ReadFile(filepath.Join(c.Dir, manifestName))
	if err != nil {
		return err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", manifestName, err)
	}
	if m.Done != c.Done {
		return fmt.Errorf("%s says %d units, folder says %d", manifestName, m.Done, c.Done)
	}
	for name, want := range m.Files {
		if name != filepath.Base(name) {
			return fmt.Errorf("%s names %q outside the checkpoint", manifestName, name)
		}
		got, err := hashFile(filepath.Join(c.Dir, name))
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s changed since it was saved (size %d, want %d)", name, got.Size, want.Size)
		}
	}
	return nil
}

// Path names a file inside the checkpoint.
func (c Checkpoint) Path(name string) string { return filepath.Join(c.Dir, name) }

// syncDir makes a rename inside dir durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
