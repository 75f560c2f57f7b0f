package dist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// RankError is a rank that exited unsuccessfully under Launch.
type RankError struct {
	Rank int
	Code int // its exit status (128+signal when a signal ended it)
}

func (e *RankError) Error() string {
	return fmt.Sprintf("rank %d exited with status %d", e.Rank, e.Code)
}

// ExitCode is the status the launcher exits with: the rank's (130/143 when
// the ranks stopped at a signal, checkpoint saved).
func (e *RankError) ExitCode() int { return e.Code }

// LaunchOptions tune Launch.
type LaunchOptions struct {
	// Timeout is passed to the ranks (DDGI_DIST_TIMEOUT); 0: theirs.
	Timeout time.Duration
	// Grace is how long the other ranks get to exit on their own once one
	// has failed (they notice the closed connection) before they are
	// killed; 0: Timeout, or DefaultTimeout.
	Grace time.Duration
	// Stdout and Stderr receive every rank's output (nil: this process's).
	Stdout, Stderr io.Writer
}

// Launch runs n copies of this program with args as ranks 0…n-1 of one
// group on loopback (torchrun's variables, a free port) and waits for all.
// Each rank gets DDGI_THREADS = cores/n unless the caller set it. When ctx
// is cancelled every rank gets SIGTERM (each checkpoints and stops). The
// error is the first rank to fail, as *RankError.
func Launch(ctx context.Context, n int, args []string, o LaunchOptions) error {
	if n < 1 {
		return fmt.Errorf("--nproc %d: want at least 1", n)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("launching ranks: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("launching ranks: no free port on loopback: %w", err)
	}
	env := os.Environ()
	if os.Getenv("DDGI_THREADS") == "" {
		env = append(env, "DDGI_THREADS="+strconv.Itoa(max(1, runtime.NumCPU()/n)))
	}
	if o.Timeout > 0 {
		env = append(env, "DDGI_DIST_TIMEOUT="+o.Timeout.String())
	}
	grace := o.Grace
	if grace <= 0 {
		grace = max(o.Timeout, DefaultTimeout)
	}
	type exit struct {
		rank int
		err  error
	}
	var mu sync.Mutex // the ranks' copies into a shared writer
	stdout, stderr := lockedWriter(&mu, o.Stdout, os.Stdout), lockedWriter(&mu, o.Stderr, os.Stderr)
	exits := make(chan exit, n)
	cmds := make([]*exec.Cmd, n)
	exited := make([]bool, n)
	for r := range n {
		c := exec.Command(exe, args...)
		c.Env = append(append([]string(nil), env...),
			"RANK="+strconv.Itoa(r), "LOCAL_RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(n),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		// Their own process group: a Ctrl-C reaches the launcher alone,
		// which passes one SIGTERM on (a second signal would kill a rank
		// mid-checkpoint).
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		c.Stdout, c.Stderr = stdout, stderr
		if err := c.Start(); err != nil {
			signalAll(cmds[:r], exited, syscall.SIGKILL)
			return fmt.Errorf("starting rank %d: %w", r, err)
		}
		cmds[r] = c
		go func(r int) { exits <- exit{r, c.Wait()} }(r)
	}
	var first error
	var killAt <-chan time.Time
	for left := n; left > 0; {
		select {
		case e := <-exits:
			left--
			exited[e.rank] = true
			if e.err != nil && first == nil {
				first = rankError(e.rank, e.err)
				killAt = time.After(grace)
			}
		case <-ctx.Done():
			signalAll(cmds, exited, syscall.SIGTERM)
			ctx = context.Background() // once
		case <-killAt:
			signalAll(cmds, exited, syscall.SIGKILL)
		}
	}
	return first
}

func rankError(rank int, err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return &RankError{Rank: rank, Code: code}
	}
	return fmt.Errorf("rank %d: %w", rank, err)
}

// signalAll signals every started rank that has not exited.
func signalAll(cmds []*exec.Cmd, exited []bool, sig syscall.Signal) {
	for r, c := range cmds {
		if c != nil && !exited[r] {
			c.Process.Signal(sig)
		}
	}
}

// lockedWriter is w (nil: def) written under mu. An *os.File needs no
// lock: each rank then writes the file itself.
func lockedWriter(mu *sync.Mutex, w io.Writer, def *os.File) io.Writer {
	if w == nil {
		return def
	}
	if f, ok := w.(*os.File); ok {
		return f
	}
	return writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return w.Write(p)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
