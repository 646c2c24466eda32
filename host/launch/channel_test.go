package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/hostlink"
	"github.com/cocoon-appliance/cocoon/guest/hostlink/hostlinktest"
	"github.com/mdlayher/vsock"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func line(m hostlink.Message) string {
	m.V, m.Time = hostlink.Version, t0
	b, err := m.Encode()
	if err != nil {
		panic(err)
	}
	return string(b)
}

func logLine(s string) string { return line(hostlink.Message{Type: hostlink.TypeLog, Line: s}) }

func healthLine(s hostlink.State, detail string) string {
	return line(hostlink.Message{Type: hostlink.TypeHealth, State: s, Detail: detail})
}

// guestRunner starts a fake QEMU that, like the real one, connects to the
// host channel's socket as it starts; guest then plays the guest on that
// connection. QEMU exits when guest returns if exit is set, else when the
// launcher stops it; its end of the connection closes when it exits.
type guestRunner struct {
	guest func(c net.Conn)
	exit  bool

	mu      sync.Mutex
	stopped int // QEMUs the launcher signalled
}

func (r *guestRunner) Start(_ context.Context, name string, args []string, out io.Writer) (Process, error) {
	c, err := net.Dial("unix", args[len(args)-1])
	if err != nil {
		return nil, err // real QEMU refuses to start too
	}
	p := &signalProc{fakeProc: fakeProc{done: make(chan struct{})}, r: r}
	go func() {
		r.guest(c)
		if r.exit {
			p.fakeProc.Signal(os.Interrupt)
		}
	}()
	go func() { <-p.done; c.Close() }()
	return p, nil
}

type signalProc struct {
	fakeProc
	r *guestRunner
}

func (p *signalProc) Signal(s os.Signal) error {
	p.r.mu.Lock()
	p.r.stopped++
	p.r.mu.Unlock()
	return p.fakeProc.Signal(s)
}

func channelArgs(s Sockets) (string, []string, error) {
	return "qemu", []string{"-chardev", "socket,id=cocoonhost,path=" + s.HostChannel, s.HostChannel}, nil
}

func write(c net.Conn, lines ...string) {
	for _, l := range lines {
		io.WriteString(c, l)
	}
}

// TestGuestLogsAndHealth: through a real unix socket in the state
// directory (a stale one removed first), the guest's lines reach the
// console stream, escaped and prefixed; health reaches OnHealth; bad lines
// are reported, a bounded number of times, and do not stop the reader.
func TestGuestLogsAndHealth(t *testing.T) {
	state := t.TempDir()
	os.WriteFile(filepath.Join(state, channelSocket), nil, 0o600) // left by a killed launcher
	r := &guestRunner{exit: true, guest: func(c net.Conn) {
		write(c, "\n", logLine("worker: listening"), healthLine(hostlink.Ready, ""))
		for range 20 {
			write(c, "not json\n")
		}
		write(c, logLine("evil \x1b]0;owned\x07 title"), strings.Repeat("x", hostlink.MaxMessage+1)+"\n",
			healthLine(hostlink.Ready, "loaded"), logLine("last words"))
	}}
	var console, log strings.Builder
	var health []Health
	clk := hostlinktest.NewClock(t0)
	err := Run(context.Background(), Options{
		Boot:     Boot{QEMUArgs: channelArgs, Channel: Channel{Transport: TransportVirtioSerial}},
		StateDir: state, Runner: r, Console: &console, Log: &log, Clock: clk,
		OnHealth: func(h Health) { health = append(health, h) },
	})
	if !errors.Is(err, ErrGaveUp) {
		t.Fatalf("Run = %v", err)
	}
	want := "guest: worker: listening\nguest: evil \\x1b]0;owned\\x07 title\nguest: last words\n"
	if console.String() != want {
		t.Fatalf("console:\n%s\nwant:\n%s", console.String(), want)
	}
	if len(health) != 2 || health[0] != (Health{State: hostlink.Ready, Received: t0}) || health[1].Detail != "loaded" {
		t.Fatalf("health %+v", health)
	}
	l := log.String()
	if n := strings.Count(l, "guest channel: hostlink: bad message: line "); n != maxBadReports || !strings.Contains(l, "more bad messages, not shown") {
		t.Fatalf("%d bad-line reports, want %d and a summary:\n%s", n, maxBadReports, l)
	}
	if !strings.Contains(l, "cocoon host: guest health ready\n") || strings.Count(l, "guest health") != 1 {
		t.Fatalf("health changes not logged once:\n%s", l)
	}
	if _, err := os.Stat(filepath.Join(state, channelSocket)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// heartbeats lets a test play the guest's heartbeats one at a time.
type heartbeats struct {
	send chan string   // lines for the guest to write
	seen chan Health   // what the launcher received
	conn chan net.Conn // the guest's connection, once
}

func newHeartbeats() *heartbeats {
	return &heartbeats{send: make(chan string), seen: make(chan Health, 16), conn: make(chan net.Conn, 1)}
}

func (h *heartbeats) guest(c net.Conn) {
	for l := range h.send {
		io.WriteString(c, l)
	}
}

func (h *heartbeats) beat(state hostlink.State, detail string) Health {
	h.send <- healthLine(state, detail)
	return <-h.seen
}

func TestMissedHeartbeatsRestart(t *testing.T) {
	hb := newHeartbeats()
	r := &guestRunner{guest: hb.guest}
	clk := hostlinktest.NewClock(t0)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(context.Background(), Options{
			Boot:     Boot{QEMUArgs: channelArgs, Channel: Channel{Transport: TransportVirtioSerial, HealthTimeout: 30 * time.Second}},
			StateDir: t.TempDir(), Runner: r, Clock: clk,
			OnHealth: func(h Health) { hb.seen <- h },
		})
	}()
	// Booting: no timeout yet, however long it takes.
	hb.beat(hostlink.Booting, "")
	clk.Advance(time.Hour)
	if h := hb.beat(hostlink.Ready, ""); !h.Received.Equal(t0.Add(time.Hour)) {
		t.Fatalf("received at %s, want the launcher's clock", h.Received)
	}
	clk.BlockUntil(1) // the watch's timer, 30 s from the ready
	clk.Advance(20 * time.Second)
	hb.beat(hostlink.Ready, "")
	clk.Advance(20 * time.Second) // 40 s after ready, 20 s after the heartbeat
	clk.BlockUntil(1)             // the watch looked, and waits again
	clk.Advance(10 * time.Second)
	err := <-errc
	close(hb.send)
	if !errors.Is(err, ErrGaveUp) || !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "no heartbeat for 30s") {
		t.Fatalf("Run = %v, want no heartbeat", err)
	}
	if r.stopped != 1 {
		t.Fatalf("QEMU signalled %d times, want 1", r.stopped)
	}
}

func TestGuestReportsFailed(t *testing.T) {
	hb := newHeartbeats()
	r := &guestRunner{guest: hb.guest}
	errc := make(chan error, 1)
	go func() {
		errc <- Run(context.Background(), Options{
			Boot:     Boot{QEMUArgs: channelArgs, Channel: Channel{Transport: TransportVirtioSerial}},
			StateDir: t.TempDir(), Runner: r, Clock: hostlinktest.NewClock(t0),
			OnHealth: func(h Health) { hb.seen <- h },
		})
	}()
	hb.beat(hostlink.Failed, "no GPU in CC mode")
	err := <-errc
	close(hb.send)
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "guest reported failed: no GPU in CC mode") {
		t.Fatalf("Run = %v", err)
	}
	if r.stopped != 1 {
		t.Fatalf("QEMU signalled %d times, want 1", r.stopped)
	}
}

// vsockConn is a connection as mdlayher/vsock's listener returns it.
type vsockConn struct {
	net.Conn
	cid uint32
}

func (c vsockConn) RemoteAddr() net.Addr { return &vsock.Addr{ContextID: c.cid, Port: 49152} }

// fakeListener hands out the connections sent on conns.
type fakeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newFakeListener() *fakeListener {
	return &fakeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *fakeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *fakeListener) Addr() net.Addr { return &vsock.Addr{ContextID: 2, Port: hostlink.Port} }

// dial connects a fake guest with the given CID; the launcher's end is
// returned once it is accepted or refused.
func (l *fakeListener) dial(cid uint32) net.Conn {
	g, h := net.Pipe()
	l.conns <- vsockConn{h, cid}
	return g
}

// TestVsockChannel: only the configured guest's connections are read, and a
// reconnecting guest's new connection replaces the old.
func TestVsockChannel(t *testing.T) {
	ln := newFakeListener()
	o := Options{Boot: Boot{Channel: Channel{Transport: TransportVsock, GuestCID: 7}}, ListenVsock: func() (net.Listener, error) { return ln, nil }}
	l, sock, one, err := o.listenChannel()
	if err != nil || sock != "" || one {
		t.Fatalf("listenChannel: %q %v %v", sock, one, err)
	}
	got := make(chan string, 8)
	s := newChannelServer(l, one, func(m hostlink.Message) { got <- m.Line }, io.Discard)

	other := ln.dial(8)
	if _, err := other.Write([]byte(logLine("from another VM"))); err == nil {
		t.Fatal("a connection from CID 8 was read")
	}
	first := ln.dial(7)
	write(first, logLine("one"))
	if l := <-got; l != "one" {
		t.Fatalf("got %q", l)
	}
	second := ln.dial(7) // the guest reconnects; the old connection is closed
	ln.dial(9)           // accepted once the server is done with the second
	if _, err := first.Write([]byte(logLine("stale"))); err == nil {
		t.Fatal("the replaced connection is still read")
	}
	write(second, logLine("two"))
	if l := <-got; l != "two" {
		t.Fatalf("got %q", l)
	}
	second.Close()
	s.stop(time.Minute)
}

func TestListenVsockError(t *testing.T) {
	o := Options{Boot: Boot{QEMUArgs: channelArgs, Channel: Channel{Transport: TransportVsock, GuestCID: 3}},
		ListenVsock: func() (net.Listener, error) { return nil, errors.New("no such device") }}
	err := Run(context.Background(), o)
	if !errors.Is(err, ErrGaveUp) || !strings.Contains(err.Error(), "host channel: vsock port 1024: no such device") {
		t.Fatalf("Run = %v", err)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, tabs\tand ünïcode": "plain text, tabs\tand ünïcode",
		"\x1b[2J\x1b[H":                 `\x1b[2J\x1b[H`,
		"bell\x07 del\x7f c1\u0085":     `bell\x07 del\x7f c1\x85`,
		"bidi \u202eevil":               `bidi \u202eevil`,
		"":                              "",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func ExamplePrintable() {
	fmt.Println("guest: " + Printable("\x1b]0;pwned\x07"))
	// Output: guest: \x1b]0;pwned\x07
}
