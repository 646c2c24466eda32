package boot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock advances only when the supervisor sleeps; it records the sleeps.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
	stopAt int
	cancel context.CancelFunc
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	if len(c.sleeps) >= c.stopAt {
		c.cancel() // the supervisor sees ctx done instead of sleeping on
		return ch
	}
	ch <- c.now
	return ch
}

type fakeProc struct {
	pid  int
	err  error
	ran  time.Duration
	clk  *fakeClock
	out  io.Writer
	line string
}

func (p *fakeProc) Pid() int { return p.pid }
func (p *fakeProc) Wait() error {
	io.WriteString(p.out, p.line)
	p.clk.mu.Lock()
	p.clk.now = p.clk.now.Add(p.ran)
	p.clk.mu.Unlock()
	return p.err
}

type fakeRunner struct {
	clk   *fakeClock
	n     int
	runs  []time.Duration // how long each run lasts
	fails map[int]error   // start failures by attempt
	args  [][]string
}

func (r *fakeRunner) Start(path string, args []string, out io.Writer) (Process, error) {
	r.n++
	r.args = append(r.args, args)
	if err := r.fails[r.n]; err != nil {
		return nil, err
	}
	ran := time.Second
	if r.n-1 < len(r.runs) {
		ran = r.runs[r.n-1]
	}
	return &fakeProc{pid: 100 + r.n, err: errors.New("exit status 1"), ran: ran, clk: r.clk, out: out, line: "hello\npartial"}, nil
}

func TestSupervisorBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clk := &fakeClock{now: time.Unix(0, 0), stopAt: 9, cancel: cancel}
	// Run 5 is healthy (2 minutes): the backoff resets.
	r := &fakeRunner{clk: clk, runs: []time.Duration{0, 0, 0, 0, 2 * time.Minute}, fails: map[int]error{2: errors.New("ENOENT")}}
	var console bytes.Buffer
	var started []int
	s := &Supervisor{Path: "/usr/bin/cocoon-worker", Args: []string{"-listen", ":8080"}, Runner: r, Clock: clk, Console: &console,
		Started: func(pid int, err error) { started = append(started, pid) }}
	if err := s.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}
	if !reflect.DeepEqual(clk.sleeps, want) {
		t.Errorf("sleeps %v, want %v", clk.sleeps, want)
	}
	if started[0] != 101 || started[1] != 0 || len(started) != 9 {
		t.Errorf("started callbacks %v", started)
	}
	if !reflect.DeepEqual(r.args[0], []string{"-listen", ":8080"}) {
		t.Errorf("args %q", r.args[0])
	}
	out := console.String()
	for _, w := range []string{
		"cocoon-init: worker started (pid 101)\nworker: hello\nworker: partial\ncocoon-init: worker exited: exit status 1 (restart in 1s)\n",
		"cocoon-init: worker: start /usr/bin/cocoon-worker: ENOENT (retry in 2s)\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("console lacks %q:\n%s", w, out)
		}
	}
}

func TestSupervisorCap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clk := &fakeClock{now: time.Unix(0, 0), stopAt: 8, cancel: cancel}
	s := &Supervisor{Path: "/w", Runner: &fakeRunner{clk: clk}, Clock: clk, Console: io.Discard}
	s.Run(ctx)
	if got := clk.sleeps[len(clk.sleeps)-1]; got != 30*time.Second {
		t.Errorf("last sleep %v, want the 30s cap (sleeps %v)", got, clk.sleeps)
	}
}

func TestLinePrefixer(t *testing.T) {
	var b bytes.Buffer
	l := &LinePrefixer{W: &b, Prefix: "worker: "}
	l.Write([]byte("a\nb"))
	l.Write([]byte("c\n\n"))
	l.Write([]byte("d"))
	l.Flush()
	if got, want := b.String(), "worker: a\nworker: bc\nworker: \nworker: d\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
