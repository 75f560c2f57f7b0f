package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"ddgi/internal/imageio"
)

// StateFile is the name of a job's resumable state (step, seed, config)
// inside each of its checkpoint folders.
const StateFile = "state.json"

// WriteState writes v as JSON to dir/state.json; a Job's Save calls it
// with its checkpoint folder (made complete by a rename; the file goes
// through WriteAtomic all the same, as every file ddgi writes does).
func WriteState(dir string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return imageio.WriteAtomic(filepath.Join(dir, StateFile), b)
}

// ReadState reads dir/state.json into v.
func ReadState(dir string, v any) error {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, StateFile), err)
	}
	return nil
}

// ResumeState reads the state of the checkpoint Loop.Run will resume from
// (the newest that verifies) into v, so a job can build networks of the
// run's shape before the loop calls its Load; ok is false for a new run.
func (r *Run) ResumeState(v any) (ok bool, err error) {
	// Silent: the loop warns about the same checkpoints when it resumes.
	_, ok, err = r.LoadNewest(func(c Checkpoint) error { return ReadState(c.Dir, v) }, nil)
	return ok, err
}
