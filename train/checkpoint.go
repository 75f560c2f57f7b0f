package train

import "time"

// Checkpointer decides when a training loop saves: once Every has passed
// since the last save (or since it was made), and at the final step.
//
//	ck := runs.NewCheckpointer(every)
//	for … {
//		…
//		if err := ck.MaybeSave(step == total, save); err != nil {
//			return err
//		}
//	}
type Checkpointer struct {
	Every time.Duration
	last  time.Time
	now   func() time.Time // the clock; tests replace it
}

// NewCheckpointer starts the interval now.
func NewCheckpointer(every time.Duration) *Checkpointer {
	c := &Checkpointer{Every: every, now: time.Now}
	c.last = c.now()
	return c
}

// Due reports whether a checkpoint is due: final is set, or Every has passed
// since the last save.
func (c *Checkpointer) Due(final bool) bool {
	return final || c.now().Sub(c.last) >= c.Every
}

// Saved records a save now: the next is due Every from here.
func (c *Checkpointer) Saved() { c.last = c.now() }

// MaybeSave calls save when Due(final) and records the save when it
// succeeds; a failed save stays due and its error is returned.
func (c *Checkpointer) MaybeSave(final bool, save func() error) error {
	if !c.Due(final) {
		return nil
	}
	if err := save(); err != nil {
		return err
	}
	c.Saved()
	return nil
}
