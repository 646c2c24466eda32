package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cocoon-appliance/cocoon/host/check"
	"github.com/cocoon-appliance/cocoon/host/gpu"
	"github.com/cocoon-appliance/cocoon/host/launch"
	"github.com/cocoon-appliance/cocoon/image/build"
	"github.com/cocoon-appliance/cocoon/image/manifest"
)

func (c *Context) host(ctx context.Context, _ *Context, args []string) error {
	return c.dispatch(ctx, "cocoon host", args, []command{
		{"launch", "boot the appliance under QEMU and keep it running", c.hostLaunch},
		{"status", "show what a running launcher reports", c.hostStatus},
		{"check", "check this host can run TDX workers", c.hostCheck},
		{"gpus", "list NVIDIA GPUs and their drivers", c.hostGPUs},
	})
}

func (c *Context) hostCheck(_ context.Context, _ *Context, args []string) error {
	fs := c.flags("check", "cocoon host check")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	rs := check.Run(check.Env{})
	check.Format(c.Stdout, rs)
	if !check.AllOK(rs) {
		return errors.New("host check: not ready (see FIX above)")
	}
	return nil
}

func (c *Context) hostGPUs(_ context.Context, _ *Context, args []string) error {
	fs := c.flags("gpus", "cocoon host gpus")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	ds, err := gpu.Sysfs{Root: "/"}.NVIDIAGPUs()
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		fmt.Fprintln(c.Stdout, "no NVIDIA GPUs found")
		return nil
	}
	fmt.Fprintf(c.Stdout, "%-14s %-8s %-10s %s\n", "ADDRESS", "DEVICE", "DRIVER", "IOMMU GROUP")
	for _, d := range ds {
		fmt.Fprintf(c.Stdout, "%-14s %-8s %-10s %s\n", d.Address, d.Device, orDash(d.Driver), orDash(d.IOMMUGroup))
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// status is what a launcher writes to its state directory.
type status struct {
	PID      int          `json:"pid"`
	Boot     int          `json:"boot"`
	State    string       `json:"state"` // booting, running, failed, stopped
	Since    time.Time    `json:"since"`
	LastLine string       `json:"last_line"`
	Guest    *guestHealth `json:"guest,omitempty"` // this boot's last health message, if any
}

// guestHealth is the guest's own report over the host channel.
type guestHealth struct {
	State     string    `json:"state"` // booting, ready, failed
	Detail    string    `json:"detail,omitempty"`
	Heartbeat time.Time `json:"heartbeat"` // when the launcher received it
}

// guestLine is the status's guest line; the detail is the guest's words,
// escaped for the terminal.
func guestLine(g *guestHealth, now time.Time) string {
	if g == nil {
		return "no health report this boot"
	}
	s := g.State
	if g.Detail != "" {
		s += ": " + launch.Printable(g.Detail)
	}
	return fmt.Sprintf("%s (last heartbeat %s, %s ago)", s, g.Heartbeat.Format(time.RFC3339), now.Sub(g.Heartbeat).Round(time.Second))
}

func (c *Context) hostStatus(_ context.Context, _ *Context, args []string) error {
	fs := c.flags("status", "cocoon host status [--state DIR]")
	state := fs.String("state", defaultStateDir(), "launcher state directory")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(*state, "status.json"))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("host status: no launcher has run with state directory %s", *state)
	} else if err != nil {
		return err
	}
	var s status
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("host status: %s: %w", *state, err)
	}
	alive := "not running"
	if s.PID > 0 {
		if err := syscallKill0(s.PID); err == nil {
			alive = "running"
		}
	}
	fmt.Fprintf(c.Stdout, "launcher pid %d (%s)\nboot       %d\nstate      %s since %s\nguest      %s\nconsole    %s\n",
		s.PID, alive, s.Boot, s.State, s.Since.Format(time.RFC3339), guestLine(s.Guest, time.Now()), launch.Printable(s.LastLine))
	return nil
}

func defaultStateDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "cocoon-host")
	}
	return filepath.Join(os.TempDir(), "cocoon-host")
}

func (c *Context) hostLaunch(ctx context.Context, _ *Context, args []string) error {
	fs := c.flags("launch", "cocoon host launch [--state DIR] [--console FILE] CONFIG")
	state := fs.String("state", defaultStateDir(), "state directory (swtpm state, config disk, status)")
	consoleFile := fs.String("console", "", "also append the serial console to this file")
	rest, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: host launch: want one host config file", errUsage)
	}
	cfg, err := launch.LoadConfig(rest[0])
	if err != nil {
		return err
	}
	imgDir := cfg.ImageDir()
	m, err := manifest.Load(filepath.Join(imgDir, build.ManifestName))
	if err != nil {
		return err
	}
	// Boot only what the manifest names: every file is checked first.
	for _, name := range []string{build.VmlinuzName, build.FirmwareName, build.InitrdName, build.DiskName} {
		if _, err := readVerified(imgDir, m, name); err != nil {
			return fmt.Errorf("host launch: %w", err)
		}
	}
	if err := os.MkdirAll(*state, 0o700); err != nil {
		return err
	}
	disk, err := cfg.GuestDisk()
	if err != nil {
		return fmt.Errorf("host launch: %w", err)
	}
	configDisk := filepath.Join(*state, "config.img")
	if err := os.WriteFile(configDisk, disk, 0o600); err != nil {
		return err
	}
	qc, err := cfg.QEMU(m, configDisk)
	if err != nil {
		return err
	}
	var console *os.File
	out := c.Stdout
	if *consoleFile != "" {
		if console, err = os.OpenFile(*consoleFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return err
		}
		defer console.Close()
		out = multiWriter(c.Stdout, console)
	}
	st := &statusWriter{path: filepath.Join(*state, "status.json"), s: status{PID: os.Getpid(), State: "booting", Since: time.Now()}}
	st.write()
	defer st.set(func(s *status) { s.State = "stopped" })
	err = launch.Run(ctx, launch.Options{
		Boot: launch.Boot{SWTPM: cfg.SWTPM(), Channel: cfg.Channel(), QEMUArgs: func(sk launch.Sockets) (string, []string, error) {
			q := qc
			q.TPMSocket, q.HostChannelSocket = sk.TPM, sk.HostChannel
			st.set(func(s *status) { s.Boot++; s.State = "booting"; s.Since = time.Now(); s.Guest = nil })
			if err := q.Validate(); err != nil {
				return "", nil, err
			}
			a, err := q.Args()
			return q.Binary(), a, err
		}},
		Policy: cfg.Restart.Policy(), StateDir: *state, Console: out, Log: c.Stderr,
		OnHealth: st.health,
		OnLine: func(l string) {
			// Every console line is remembered; the file is rewritten only
			// when the state changes or a second has passed, not per line.
			st.note(l, func(s *status) bool {
				switch {
				case strings.Contains(l, "cocoon-init: worker started"):
					s.State, s.Since = "running", time.Now()
				case strings.Contains(l, launch.FatalMarker):
					s.State, s.Since = "failed", time.Now()
				default:
					return false
				}
				return true
			})
		},
	})
	if err != nil {
		return fmt.Errorf("host launch: %w", err)
	}
	return nil
}

type statusWriter struct {
	mu      sync.Mutex
	path    string
	s       status
	written time.Time
}

func (w *statusWriter) set(f func(*status)) {
	w.mu.Lock()
	f(&w.s)
	w.mu.Unlock()
	w.write()
}

// note records a console line; changed updates the state and says whether
// it changed. The file is written on a change or at most once a second.
func (w *statusWriter) note(line string, changed func(*status) bool) {
	w.mu.Lock()
	w.s.LastLine = line
	due := changed(&w.s) || time.Since(w.written) >= time.Second
	w.mu.Unlock()
	if due {
		w.write()
	}
}

// health records the guest's health message: written on a change of state
// or detail, else at most once a second (heartbeats come every 5 s).
func (w *statusWriter) health(h launch.Health) {
	g := &guestHealth{State: string(h.State), Detail: h.Detail, Heartbeat: h.Received}
	w.mu.Lock()
	changed := w.s.Guest == nil || w.s.Guest.State != g.State || w.s.Guest.Detail != g.Detail
	w.s.Guest = g
	due := changed || time.Since(w.written) >= time.Second
	w.mu.Unlock()
	if due {
		w.write()
	}
}

func (w *statusWriter) write() {
	w.mu.Lock()
	b, _ := json.Marshal(w.s)
	w.written = time.Now()
	w.mu.Unlock()
	tmp := w.path + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		os.Rename(tmp, w.path)
	}
}

func multiWriter(ws ...io.Writer) io.Writer { return io.MultiWriter(ws...) }

// syscallKill0 tells whether a process exists (kill -0).
func syscallKill0(pid int) error { return syscall.Kill(pid, 0) }
