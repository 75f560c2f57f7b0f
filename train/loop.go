package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"syscall"
	"time"

	"ddgi/internal/progress"
	"ddgi/torch"
)

// Job is one trainer's side of the run loop: what a step does and which
// files make a checkpoint. The loop owns everything else (the run folder,
// resume, progress, log, plot, previews, checkpoint timing and atomicity,
// interruption).
type Job interface {
	// Step runs one optimizer step. done counts the units (steps, or
	// images for a GAN) finished before it.
	Step(ctx context.Context, done int64) (Result, error)
	// Save writes every file of a checkpoint into dir, an empty folder
	// that becomes the checkpoint only once Save returns.
	Save(dir string) error
	// Load restores the job from a checkpoint folder written by Save.
	Load(dir string) error
}

// Previewer is a Job that draws its progress (sample grids).
type Previewer interface {
	Preview(path string) error
}

// Result is what one step reports.
type Result struct {
	// Units the step advanced (1 when zero: one step).
	Units int64
	// Losses are averaged over LogEvery steps, logged, plotted and shown.
	Losses map[string]float64
	// Info is logged and shown but not plotted (a stage, a learning rate).
	Info map[string]float64
}

// Loop runs a Job in a run folder until Total units are done.
type Loop struct {
	Label string
	Total int64
	Unit  string // "step" (the default) or "img"
	// CheckpointEvery is the wall-clock time between checkpoints; the
	// final one is always written.
	CheckpointEvery time.Duration
	// PreviewEvery (units) writes preview-<units>.png; 0: at the end only.
	PreviewEvery int64
	LogEvery     int   // steps averaged per log row; 0: 20
	Keep         int   // complete checkpoints kept; 0: 2
	MaxSteps     int64 // stop after this many steps in this process (tests); 0: no limit
	Quiet        bool  // no progress line
	Out          io.Writer
	// Group, when it has several ranks, runs the job data-parallel (the
	// job must be Distributed): rank 0 alone writes the run folder.
	Group Group
}

// ErrInterrupted is returned (wrapped in *Interrupted) when a run stops
// at a signal or a cancelled context after saving its checkpoint.
var ErrInterrupted = errors.New("interrupted")

// Interrupted says where a run stopped and why.
type Interrupted struct {
	Done   int64
	Unit   string
	Signal os.Signal // nil when the context was cancelled otherwise
}

func (e *Interrupted) Error() string {
	why := "cancelled"
	if e.Signal != nil {
		why = e.Signal.String()
	}
	return fmt.Sprintf("%s at %d %ss; checkpoint saved, rerun the same command to resume", why, e.Done, e.Unit)
}

func (e *Interrupted) Unwrap() error { return ErrInterrupted }

// signalCause is the context cause set by SignalContext.
type signalCause struct{ sig os.Signal }

func (s signalCause) Error() string { return s.sig.String() }

// SignalContext is cancelled at the first SIGINT or SIGTERM, with the
// signal as its cause; a second signal kills the process as usual.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			cancel(signalCause{s})
		case <-ctx.Done():
			signal.Stop(ch)
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// ExitCode is the process status for err: 0 for nil, 128+signal for a run
// interrupted by a signal (130 for Ctrl-C, 143 for SIGTERM, as shells
// report them), 1 otherwise.
func ExitCode(err error) int {
	var in *Interrupted
	var coded interface{ ExitCode() int } // a launcher's rank that failed
	switch {
	case err == nil:
		return 0
	case errors.As(err, &coded):
		return coded.ExitCode()
	case errors.As(err, &in) && in.Signal != nil:
		if s, ok := in.Signal.(syscall.Signal); ok {
			return 128 + int(s)
		}
		return 130
	case errors.As(err, &in):
		return 130
	}
	return 1
}

// Run resumes job from the newest complete checkpoint in run (when there
// is one) and steps it until Total units: a progress line with ETA,
// log.jsonl and loss.png, previews, a checkpoint every CheckpointEvery and
// at the end. When ctx is cancelled it finishes the step, checkpoints and
// returns *Interrupted.
func (l *Loop) Run(ctx context.Context, run *Run, job Job) error {
	// One OS thread for every step: libtorch's grad mode and intra-op
	// thread count are per thread, and a goroutine that moved between
	// threads could reduce in another order (last-bit differences that
	// break bit-identical resume).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d, err := l.startGroup(job)
	if err != nil {
		return err
	}
	if !d.root() {
		l.Quiet = true // rank 0 alone shows progress and writes the run folder
	}
	l.defaults()
	var done int64
	if d.root() {
		if done, err = l.resume(run, job); err != nil {
			return err
		}
	}
	if d != nil {
		if done, err = d.agree(run, job, done); err != nil {
			return d.fail(err)
		}
	}
	if done >= l.Total {
		fmt.Fprintf(l.Out, "%s: %s already at %d/%d %ss\n", l.Label, run.Dir, done, l.Total, l.Unit)
		return nil
	}
	bar := progress.NewLogged(l.Label, done, l.Total, l.Unit)
	if l.Quiet {
		bar.Out = io.Discard
	}
	ck := NewCheckpointer(l.CheckpointEvery)
	nextPreview := int64(math.MaxInt64)
	if l.PreviewEvery > 0 {
		nextPreview = (done/l.PreviewEvery + 1) * l.PreviewEvery
	}
	avg := newAverager()
	lossKeys := map[string]bool{}
	var steps int64
	stepCtx := ctx
	if d != nil {
		// A rank's step must not end early at its own signal: the others
		// would be in the step's collectives while it waits in the stop
		// decision. The ranks stop together at the top of the next step.
		stepCtx = context.WithoutCancel(ctx)
	}
	for done < l.Total {
		paused := l.MaxSteps > 0 && steps >= l.MaxSteps
		stop := ctx.Err() != nil || paused
		if d != nil {
			// Every rank stops at the same step, after all of them have
			// finished it, so rank 0's checkpoint is the group's.
			if _, stop, err = d.decide(false, stop); err != nil {
				return d.fail(err)
			}
		}
		if stop {
			bar.Finish()
			if err := l.save(run, job, done, lossKeys, d); err != nil {
				return err
			}
			if ctx.Err() == nil && paused {
				return nil // MaxSteps: a checkpointed pause, not an interruption
			}
			in := &Interrupted{Done: done, Unit: l.Unit} // here or, in a group, another rank
			if c, ok := context.Cause(ctx).(signalCause); ok {
				in.Signal = c.sig
			}
			return in
		}
		var res Result
		if terr := torch.Try(func() { res, err = job.Step(stepCtx, done) }); terr != nil {
			err = terr
		}
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				continue // the data stopped for the signal: checkpoint above
			}
			if d != nil {
				err = d.fail(err)
			}
			return fmt.Errorf("%s %d: %w", l.Unit, done, err)
		}
		if d != nil {
			if err := d.meanLosses(res.Losses); err != nil {
				return d.fail(err)
			}
		}
		for k, v := range res.Losses {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%s %d: loss %s is %v; the last checkpoint is intact, lower the learning rate and resume", l.Unit, done, k, v)
			}
			lossKeys[k] = true
		}
		if res.Units <= 0 {
			res.Units = 1
		}
		done += res.Units
		steps++
		avg.add(res)
		bar.Set(done, merge(res.Losses, res.Info))
		if d.root() && (avg.n >= l.LogEvery || done >= l.Total) {
			if err := run.Log(done, avg.mean()); err != nil {
				return err
			}
			avg = newAverager()
		}
		if d.root() && (done >= nextPreview || done >= l.Total) {
			if p, ok := job.(Previewer); ok {
				if err := p.Preview(run.Path(fmt.Sprintf("preview-%09d.png", done))); err != nil {
					return fmt.Errorf("preview: %w", err)
				}
			}
		}
		for nextPreview <= done {
			nextPreview += l.PreviewEvery
		}
		due := ck.Due(done >= l.Total)
		if d != nil {
			if due, _, err = d.decide(due, false); err != nil {
				return d.fail(err)
			}
		}
		if due {
			if err := l.save(run, job, done, lossKeys, d); err != nil {
				return err
			}
			ck.Saved()
		}
	}
	bar.Finish()
	return nil
}

func (l *Loop) defaults() {
	if l.Unit == "" {
		l.Unit = "step"
	}
	if l.LogEvery <= 0 {
		l.LogEvery = 20
	}
	if l.Keep <= 0 {
		l.Keep = 2
	}
	if l.Out == nil {
		l.Out = os.Stderr
	}
	if l.Quiet {
		l.Out = io.Discard
	}
}

// resume loads the newest checkpoint that verifies, falling back to older
// ones, and drops log rows past it.
func (l *Loop) resume(run *Run, job Job) (int64, error) {
	if err := run.RemoveStale(); err != nil {
		return 0, err
	}
	c, ok, err := run.LoadNewest(func(c Checkpoint) error { return job.Load(c.Dir) }, os.Stderr)
	if err != nil {
		return 0, err
	}
	if !ok {
		if _, err := os.Stat(run.Path("state.json")); err == nil {
			return 0, fmt.Errorf("%s holds a run from an older ddgi (state.json beside the weights, no checkpoints/ folder); resume it with that version or train into a new folder", run.Dir)
		}
		return 0, run.TruncateLog(0)
	}
	fmt.Fprintf(l.Out, "resuming %s at %d %ss\n", run.Dir, c.Done, l.Unit)
	return c.Done, run.TruncateLog(c.Done)
}

// save writes one checkpoint as a unit and refreshes the loss plot; in a
// group rank 0 writes it while the others wait at a barrier, so no rank
// runs ahead of the newest checkpoint.
func (l *Loop) save(run *Run, job Job, done int64, lossKeys map[string]bool, d *distributed) error {
	if d.root() {
		if err := run.Checkpoint(done, job.Save, l.Keep); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		keys := make([]string, 0, len(lossKeys))
		for k := range lossKeys {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if err := run.PlotLosses(l.Label, keys...); err != nil {
			fmt.Fprintf(os.Stderr, "warning: loss plot: %v\n", err)
		}
	}
	if d != nil {
		if err := d.g.Barrier(); err != nil {
			return d.fail(fmt.Errorf("checkpoint barrier: %w", err))
		}
	}
	return nil
}

// averager means each scalar over the steps that reported it.
type averager struct {
	sum, cnt map[string]float64
	n        int
}

func newAverager() *averager {
	return &averager{sum: map[string]float64{}, cnt: map[string]float64{}}
}

func (a *averager) add(r Result) {
	for k, v := range merge(r.Losses, r.Info) {
		a.sum[k] += v
		a.cnt[k]++
	}
	a.n++
}

func (a *averager) mean() map[string]float64 {
	m := make(map[string]float64, len(a.sum))
	for k, v := range a.sum {
		m[k] = v / a.cnt[k]
	}
	return m
}

func merge(a, b map[string]float64) map[string]float64 {
	m := make(map[string]float64, len(a)+len(b))
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}
