package train

import (
	"errors"
	"testing"
	"time"
)

// fakeClock is a Checkpointer clock that moves only when told.
type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time          { return f.t }
func (f *fakeClock) advance(d time.Duration) { f.t = f.t.Add(d) }

func newTestCheckpointer(every time.Duration) (*Checkpointer, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	c := &Checkpointer{Every: every, now: clk.now}
	c.last = clk.now()
	return c, clk
}

func TestCheckpointerDue(t *testing.T) {
	c, clk := newTestCheckpointer(3 * time.Minute)
	if c.Due(false) {
		t.Fatal("due before the interval passed")
	}
	if !c.Due(true) {
		t.Fatal("not due at the final step")
	}
	clk.advance(3*time.Minute - time.Second)
	if c.Due(false) {
		t.Fatal("due a second before the interval")
	}
	clk.advance(time.Second)
	if !c.Due(false) {
		t.Fatal("not due once the interval passed")
	}
	c.Saved()
	if c.Due(false) {
		t.Fatal("due right after a save")
	}
	clk.advance(2 * time.Minute)
	if c.Due(false) {
		t.Fatal("due 2 min after a save with a 3 min interval")
	}
	clk.advance(time.Minute)
	if !c.Due(false) {
		t.Fatal("not due 3 min after a save")
	}
}

func TestCheckpointerMaybeSave(t *testing.T) {
	c, clk := newTestCheckpointer(time.Minute)
	saves := 0
	save := func() error { saves++; return nil }
	if err := c.MaybeSave(false, save); err != nil || saves != 0 {
		t.Fatalf("saved %d times before the interval (err %v)", saves, err)
	}
	if err := c.MaybeSave(true, save); err != nil || saves != 1 {
		t.Fatalf("final step: %d saves, err %v", saves, err)
	}
	clk.advance(time.Minute)
	boom := errors.New("disk full")
	if err := c.MaybeSave(false, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("save error not returned: %v", err)
	}
	if !c.Due(false) {
		t.Fatal("a failed save was recorded as done")
	}
	if err := c.MaybeSave(false, save); err != nil || saves != 2 {
		t.Fatalf("after the interval: %d saves, err %v", saves, err)
	}
	if c.Due(false) {
		t.Fatal("due right after MaybeSave saved")
	}
}

func TestNewCheckpointerUsesTheWallClock(t *testing.T) {
	if NewCheckpointer(time.Hour).Due(false) {
		t.Fatal("an hour interval is due at once")
	}
	if !NewCheckpointer(0).Due(false) {
		t.Fatal("a zero interval is not due")
	}
}
