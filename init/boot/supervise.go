package boot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/init/reap"
)

// Process is a started worker.
type Process interface {
	Pid() int
	Wait() error
}

// Runner starts processes; ReapRunner is the real one.
type Runner interface {
	Start(path string, args []string, out io.Writer) (Process, error)
}

// Clock is the supervisor's time source; RealClock is the real one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

func (RealClock) Now() time.Time                         { return time.Now() }
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// ReapRunner starts programs through PID 1's reaper (init/reap), which
// owns wait4(-1): os/exec's Wait would race it for the worker's status.
type ReapRunner struct {
	Reaper *reap.Reaper
	Env    []string
}

// Start starts path with args in /; stdout and stderr both go to out.
func (r ReapRunner) Start(path string, args []string, out io.Writer) (Process, error) {
	p, err := r.Reaper.Start(path, args, r.Env, "/", out, out)
	if err != nil {
		return nil, err // not a nil *reap.Process in a non-nil interface
	}
	return p, nil
}

// Supervisor keeps one program running: restart on exit with exponential
// backoff (Min doubling up to Max; back to Min after a run of ResetAfter),
// its output forwarded line by line to Console prefixed "worker: ".
type Supervisor struct {
	Path    string
	Args    []string
	Runner  Runner
	Clock   Clock
	Console io.Writer
	Min     time.Duration // 0: 1s
	Max     time.Duration // 0: 30s
	// ResetAfter is how long a run must last to count as healthy. 0: 60s.
	ResetAfter time.Duration
	// Started, when set, is called after each start attempt.
	Started func(pid int, err error)
}

func (s *Supervisor) defaults() (lo, hi, reset time.Duration) {
	lo, hi, reset = s.Min, s.Max, s.ResetAfter
	if lo == 0 {
		lo = time.Second
	}
	if hi == 0 {
		hi = 30 * time.Second
	}
	if reset == 0 {
		reset = time.Minute
	}
	return
}

// Run supervises until ctx ends.
func (s *Supervisor) Run(ctx context.Context) error {
	lo, hi, reset := s.defaults()
	out := &LinePrefixer{W: s.Console, Prefix: "worker: "}
	backoff := lo
	for {
		t0 := s.Clock.Now()
		p, err := s.Runner.Start(s.Path, s.Args, out)
		if s.Started != nil {
			s.Started(pidOf(p), err)
		}
		if err != nil {
			fmt.Fprintf(s.Console, "cocoon-init: worker: start %s: %v (retry in %s)\n", s.Path, err, backoff)
		} else {
			fmt.Fprintf(s.Console, "cocoon-init: worker started (pid %d)\n", p.Pid())
			err = p.Wait()
			out.Flush()
			if s.Clock.Now().Sub(t0) >= reset {
				backoff = lo
			}
			fmt.Fprintf(s.Console, "cocoon-init: worker exited: %v (restart in %s)\n", errOrOK(err), backoff)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.Clock.After(backoff):
		}
		backoff = min(backoff*2, hi)
	}
}

func pidOf(p Process) int {
	if p == nil {
		return 0
	}
	return p.Pid()
}

func errOrOK(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// LinePrefixer writes whole lines to W, each prefixed; a partial last line
// waits for its newline or Flush. Safe for concurrent use.
type LinePrefixer struct {
	W      io.Writer
	Prefix string
	mu     sync.Mutex
	buf    []byte
}

func (l *LinePrefixer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(l.W, "%s%s\n", l.Prefix, l.buf[:i]); err != nil {
			return len(p), err
		}
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 4096 { // a run-away line is cut, not buffered forever
		fmt.Fprintf(l.W, "%s%s\n", l.Prefix, l.buf)
		l.buf = nil
	}
	return len(p), nil
}

// Flush writes a pending partial line.
func (l *LinePrefixer) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		fmt.Fprintf(l.W, "%s%s\n", l.Prefix, l.buf)
		l.buf = nil
	}
}
