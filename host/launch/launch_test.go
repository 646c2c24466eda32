package launch

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProc prints lines then exits (or blocks until signalled).
type fakeProc struct {
	done chan struct{}
	once sync.Once
	err  error
}

func (p *fakeProc) Wait() error { <-p.done; return p.err }
func (p *fakeProc) Pid() int    { return 42 }
func (p *fakeProc) Signal(os.Signal) error {
	p.once.Do(func() { p.err = errors.New("signal: terminated"); close(p.done) })
	return nil
}

// fakeRunner scripts each QEMU boot: lines to print, and whether QEMU then
// exits by itself or runs until stopped.
type fakeRunner struct {
	mu     sync.Mutex
	boots  [][]string
	exit   []bool
	starts []string
}

func (r *fakeRunner) Start(_ context.Context, name string, args []string, out io.Writer) (Process, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts = append(r.starts, name)
	p := &fakeProc{done: make(chan struct{})}
	if name == "swtpm" {
		for i, a := range args {
			if a == "--ctrl" {
				path := strings.TrimPrefix(args[i+1], "type=unixio,path=")
				os.WriteFile(path, nil, 0o600)
			}
		}
		return p, nil
	}
	n := 0
	for _, s := range r.starts {
		if s == "qemu" {
			n++
		}
	}
	lines, exits := r.boots[n-1], r.exit[n-1]
	go func() {
		for _, l := range lines {
			io.WriteString(out, l+"\r\n")
		}
		if exits {
			p.Signal(os.Interrupt)
		}
	}()
	return p, nil
}

func qemuBoot(s Sockets) (string, []string, error) { return "qemu", []string{"-tpm", s.TPM}, nil }

func TestRestartsWithBackoffThenGivesUp(t *testing.T) {
	r := &fakeRunner{
		boots: [][]string{{"cocoon-init: FATAL: verity: bad block"}, {"booting", "cocoon-init: FATAL: no config disk"}, {"x"}},
		exit:  []bool{true, true, true},
	}
	var slept []time.Duration
	var console strings.Builder
	err := Run(context.Background(), Options{
		Boot: Boot{QEMUArgs: qemuBoot, SWTPM: true}, StateDir: t.TempDir(),
		Policy: Policy{MaxRestarts: 2, Backoff: time.Second, MaxBackoff: 90 * time.Second},
		Runner: r, Console: &console,
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil },
	})
	if !errors.Is(err, ErrGaveUp) {
		t.Fatalf("err = %v", err)
	}
	if len(slept) != 2 || slept[0] != time.Second || slept[1] != 2*time.Second {
		t.Fatalf("backoff %v", slept)
	}
	if !strings.Contains(console.String(), "FATAL: no config disk") || !strings.Contains(console.String(), "boot 2 ended: launch: guest stopped: cocoon-init: FATAL: no config disk") {
		t.Fatalf("console:\n%s", console.String())
	}
	// A fresh swtpm before every QEMU.
	want := "swtpm qemu swtpm qemu swtpm qemu"
	if got := strings.Join(r.starts, " "); got != want {
		t.Fatalf("starts %q, want %q", got, want)
	}
}

func TestStopsOnCancel(t *testing.T) {
	r := &fakeRunner{boots: [][]string{{"cocoon-init: worker started (pid 7)"}}, exit: []bool{false}}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Options{Boot: Boot{QEMUArgs: qemuBoot}, StateDir: t.TempDir(), Runner: r,
			OnLine: func(l string) {
				if strings.Contains(l, "worker started") {
					once.Do(func() { close(started) })
				}
			}})
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("no worker-started line")
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}
