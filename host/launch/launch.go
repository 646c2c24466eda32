// Package launch runs the appliance on the host: per boot it starts a fresh
// swtpm (development profile), opens the guest's host channel
// (guest/hostlink: its logs and health), starts QEMU, streams the serial
// console, watches for the guest's failure, restarts with backoff, and
// stops everything cleanly when its context ends (SIGINT/SIGTERM in the
// CLI).
//
// Processes sit behind Runner so the restart and shutdown logic is tested
// with fakes; the real runner uses os/exec with process groups.
package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/hostlink"
)

// Errors.
var (
	ErrGaveUp = errors.New("launch: guest failed too often")
	ErrGuest  = errors.New("launch: guest stopped")
)

// Process is a started child.
type Process interface {
	Wait() error
	Signal(sig os.Signal) error
	Pid() int
}

// Runner starts processes; output goes to out (nil: discarded).
type Runner interface {
	Start(ctx context.Context, name string, args []string, out io.Writer) (Process, error)
}

// Boot is what one boot needs: the argv of QEMU, built once the per-boot
// sockets are known.
type Boot struct {
	// QEMUArgs returns QEMU's argv for this boot.
	QEMUArgs func(s Sockets) (name string, args []string, err error)
	// SWTPM: start a fresh software TPM per boot (dev profile).
	SWTPM bool
	// SWTPMBin defaults to "swtpm".
	SWTPMBin string
	// Channel is the guest's host channel; the zero value is none.
	Channel Channel
}

// Sockets are the per-boot unix sockets QEMU connects to; "" when unused.
type Sockets struct {
	TPM         string // swtpm's control socket (qemu.Config.TPMSocket)
	HostChannel string // the virtio-serial host channel (qemu.Config.HostChannelSocket)
}

// Policy says when to restart.
type Policy struct {
	MaxRestarts int           // 0: never restart
	Backoff     time.Duration // first delay, doubled each time
	MaxBackoff  time.Duration
}

// Options of Run.
type Options struct {
	Boot     Boot
	Policy   Policy
	StateDir string    // per-boot state (swtpm state, sockets)
	Console  io.Writer // the guest's serial console, line by line
	// OnLine is called for every console line (tests and health checks
	// watch for markers); may be nil.
	OnLine func(line string)
	Runner Runner
	Sleep  func(ctx context.Context, d time.Duration) error // nil: real timer
	Log    io.Writer                                        // launcher's own messages; nil: Console
	// OnHealth is called for every health message of the guest (the
	// status file records them); may be nil.
	OnHealth func(Health)
	// Clock times the guest's heartbeats; nil: the real clock.
	Clock hostlink.Clock
	// ListenVsock opens the vsock listener of the host channel; nil
	// listens on hostlink.Port with github.com/mdlayher/vsock.
	ListenVsock func() (net.Listener, error)
}

// FatalMarker is what the guest init prints before it powers off.
const FatalMarker = "cocoon-init: FATAL:"

// Run boots the guest, and reboots it after a failure (QEMU exiting, a
// FATAL line from the init, or the guest's health: a "failed" report, or
// missed heartbeats once it was ready) up to Policy.MaxRestarts times with
// exponential backoff. It returns nil when ctx is cancelled (after
// stopping QEMU and swtpm), ErrGaveUp when the guest keeps failing.
func Run(ctx context.Context, o Options) error {
	if o.Runner == nil {
		o.Runner = ExecRunner{}
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Clock == nil {
		o.Clock = hostlink.RealClock{}
	}
	// The console stream, the guest's log lines and the launcher's own
	// messages are written from several goroutines.
	if o.Console == nil {
		o.Console = io.Discard
	}
	console := &lockedWriter{w: o.Console}
	o.Console = console
	if o.Log == nil {
		o.Log = console
	} else {
		o.Log = &lockedWriter{w: o.Log}
	}
	delay := o.Policy.Backoff
	for attempt := 0; ; attempt++ {
		err := bootOnce(ctx, o, attempt)
		if ctx.Err() != nil {
			fmt.Fprintln(o.Log, "cocoon host: stopped")
			return nil
		}
		fmt.Fprintf(o.Log, "cocoon host: boot %d ended: %v\n", attempt+1, err)
		if attempt >= o.Policy.MaxRestarts {
			return fmt.Errorf("%w: %d boots, last: %w", ErrGaveUp, attempt+1, err)
		}
		fmt.Fprintf(o.Log, "cocoon host: restarting in %s\n", delay)
		if err := o.Sleep(ctx, delay); err != nil {
			return nil
		}
		delay *= 2
		if o.Policy.MaxBackoff > 0 && delay > o.Policy.MaxBackoff {
			delay = o.Policy.MaxBackoff
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// bootOnce runs one boot to its end.
func bootOnce(ctx context.Context, o Options, attempt int) error {
	bootCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tpmSocket string
	var tpm Process
	if o.Boot.SWTPM {
		dir := filepath.Join(o.StateDir, fmt.Sprintf("swtpm-%d", attempt))
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		tpmSocket = filepath.Join(dir, "sock")
		bin := o.Boot.SWTPMBin
		if bin == "" {
			bin = "swtpm"
		}
		// One swtpm per boot: it exits when the VM closes the socket.
		args := []string{"socket", "--tpmstate", "dir=" + dir, "--ctrl", "type=unixio,path=" + tpmSocket, "--tpm2", "--log", "level=0"}
		var err error
		if tpm, err = o.Runner.Start(bootCtx, bin, args, nil); err != nil {
			return fmt.Errorf("start swtpm: %w", err)
		}
		defer stop(tpm)
		if err := waitSocket(bootCtx, tpmSocket, 5*time.Second, o.Sleep); err != nil {
			return fmt.Errorf("swtpm: %w", err)
		}
	}
	sockets := Sockets{TPM: tpmSocket}
	var ch *channelServer
	var watch *healthWatch
	if o.Boot.Channel.enabled() {
		ln, sock, one, err := o.listenChannel()
		if err != nil {
			return fmt.Errorf("host channel: %w", err)
		}
		sockets.HostChannel = sock
		watch = newHealthWatch(o.Clock, o.Boot.Channel.HealthTimeout)
		ch = newChannelServer(ln, one, guestHandler(o, watch), o.Log)
		defer ch.stop(0) // QEMU did not start; once it has run, stopped below
	}
	name, args, err := o.Boot.QEMUArgs(sockets)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Log, "cocoon host: boot %d: %s %s\n", attempt+1, name, strings.Join(args, " "))
	pr, pw := io.Pipe()
	q, err := o.Runner.Start(bootCtx, name, args, pw)
	if err != nil {
		pw.Close()
		return fmt.Errorf("start qemu: %w", err)
	}
	fatal := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			fmt.Fprintln(o.Console, line)
			if o.OnLine != nil {
				o.OnLine(line)
			}
			if strings.Contains(line, FatalMarker) {
				select {
				case fatal <- line:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	unhealthy := make(chan error, 1)
	if watch != nil {
		go func() {
			if err := watch.run(bootCtx.Done()); err != nil {
				unhealthy <- err
			}
		}()
	}
	done := make(chan error, 1)
	go func() { done <- q.Wait(); pw.Close() }()
	var result error
	select {
	case err := <-done:
		result = fmt.Errorf("%w: qemu exited: %v", ErrGuest, err)
		wg.Wait() // every console line is read before looking for a FATAL one
		if ch != nil {
			ch.stop(channelGrace) // and every message of the guest
			if err := watch.failure(); err != nil {
				result = err
			}
		}
		select {
		case line := <-fatal:
			result = fmt.Errorf("%w: %s", ErrGuest, strings.TrimSpace(line))
		default:
		}
	case line := <-fatal:
		// The init powers off after a FATAL line; give QEMU a moment,
		// then make sure it is gone.
		result = fmt.Errorf("%w: %s", ErrGuest, strings.TrimSpace(line))
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			stop(q)
			<-done
		}
	case err := <-unhealthy:
		result = err
		stop(q)
		<-done
	case <-ctx.Done():
		stop(q)
		<-done
		result = ctx.Err()
	}
	wg.Wait()
	if ch != nil {
		ch.stop(channelGrace)
	}
	return result
}

// guestHandler handles the guest's messages: log lines go to the console
// stream, prefixed "guest: "; health goes to the watch and OnHealth, and a
// change of state to the launcher's log.
func guestHandler(o Options, watch *healthWatch) func(hostlink.Message) {
	var mu sync.Mutex
	var last hostlink.State
	return func(m hostlink.Message) {
		switch m.Type {
		case hostlink.TypeLog:
			fmt.Fprintf(o.Console, "guest: %s\n", Printable(m.Line))
		case hostlink.TypeHealth:
			h := Health{State: m.State, Detail: m.Detail, Received: o.Clock.Now()}
			watch.note(h)
			mu.Lock()
			changed := h.State != last
			last = h.State
			mu.Unlock()
			if changed {
				detail := ""
				if h.Detail != "" {
					detail = ": " + Printable(h.Detail)
				}
				fmt.Fprintf(o.Log, "cocoon host: guest health %s%s\n", h.State, detail)
			}
			if o.OnHealth != nil {
				o.OnHealth(h)
			}
		}
	}
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// channelGrace bounds the reading of the host channel once QEMU is gone.
const channelGrace = 2 * time.Second

// stop asks a process to terminate, then kills it.
func stop(p Process) {
	_ = p.Signal(syscall.SIGTERM)
}

func waitSocket(ctx context.Context, path string, max time.Duration, sleepFn func(context.Context, time.Duration) error) error {
	for waited := time.Duration(0); waited < max; waited += 50 * time.Millisecond {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if err := sleepFn(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("control socket %s did not appear within %s", path, max)
}

// ExecRunner starts real processes in their own process group, so a
// signal to the launcher's terminal does not race the launcher's own
// shutdown of its children.
type ExecRunner struct{}

type execProcess struct{ cmd *exec.Cmd }

func (p execProcess) Wait() error                { return p.cmd.Wait() }
func (p execProcess) Pid() int                   { return p.cmd.Process.Pid }
func (p execProcess) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Start implements Runner.
func (ExecRunner) Start(ctx context.Context, name string, args []string, out io.Writer) (Process, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return execProcess{cmd}, nil
}
