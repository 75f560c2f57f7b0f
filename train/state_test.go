package train

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResumeStateSkipsACheckpointThatFailsToVerify: the state comes from
// the newest checkpoint that verifies, as Loop.Run resumes from it.
func TestResumeStateSkipsACheckpointThatFailsToVerify(t *testing.T) {
	r := openRun(t)
	type state struct{ Step int64 }
	var st state
	if ok, err := r.ResumeState(&st); ok || err != nil {
		t.Fatalf("empty run: ok %v err %v", ok, err)
	}
	for _, step := range []int64{3, 6} {
		if err := r.Checkpoint(step, func(dir string) error { return WriteState(dir, state{step}) }, 2); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := r.ResumeState(&st); !ok || err != nil || st.Step != 6 {
		t.Fatalf("ok %v err %v state %+v, want step 6", ok, err, st)
	}
	cks, _ := r.Checkpoints()
	if err := os.WriteFile(filepath.Join(cks[1].Dir, StateFile), []byte(`{"Step": 9}`), 0o644); err != nil {
		t.Fatal(err)
	}
	st = state{}
	if ok, err := r.ResumeState(&st); !ok || err != nil || st.Step != 3 {
		t.Fatalf("ok %v err %v state %+v, want step 3 (the newest one was altered)", ok, err, st)
	}
	if err := os.WriteFile(filepath.Join(cks[0].Dir, StateFile), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ResumeState(&st); err == nil {
		t.Error("no checkpoint verifies, yet no error")
	}
}
