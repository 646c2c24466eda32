package hostlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/hostlink/hostlinktest"
)

// host decodes what a link writes, as the launcher does; bad lines are
// test failures.
type host struct {
	t    *testing.T
	msgs chan Message
}

// newHost returns the guest's end of a connection to a fake host.
func newHost(t *testing.T) (net.Conn, *host) {
	g, h := net.Pipe()
	hs := &host{t: t, msgs: make(chan Message, 4096)}
	go func() {
		defer close(hs.msgs)
		d := NewDecoder(h)
		for {
			m, err := d.Next()
			if errors.Is(err, ErrBadMessage) {
				t.Errorf("host got a bad line: %v", err)
				continue
			}
			if err != nil {
				return
			}
			hs.msgs <- m
		}
	}()
	return g, hs
}

// next returns the next message; the link must send one.
func (h *host) next() Message {
	m, ok := <-h.msgs
	if !ok {
		h.t.Fatal("connection closed, want a message")
	}
	return m
}

// rest reads until the connection closes and returns the log lines.
func (h *host) rest() []string {
	var lines []string
	for m := range h.msgs {
		if m.Type == TypeLog {
			lines = append(lines, m.Line)
		}
	}
	return lines
}

func dialer(conns ...Conn) func(context.Context) (Conn, error) {
	var mu sync.Mutex
	return func(context.Context) (Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if len(conns) == 0 {
			return nil, errors.New("no more connections")
		}
		c := conns[0]
		conns = conns[1:]
		return c, nil
	}
}

func openFake(t *testing.T, clk *hostlinktest.Clock, conns ...Conn) *Link {
	t.Helper()
	l, err := Open(context.Background(), Options{DialVsock: dialer(conns...), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLinkLogsAndWriter(t *testing.T) {
	c, h := newHost(t)
	l := openFake(t, hostlinktest.NewClock(t0), c)
	l.Log("cocoon-init: one")
	w := l.Writer()
	io.WriteString(w, "two\r\nthree\nfo")
	io.WriteString(w, "ur\nunfinished")
	l.Log("five\nsix\n")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := h.rest()
	// The writer's lines are in order, and so are Log's; the unfinished
	// line goes out at Close.
	want := []string{"cocoon-init: one", "two", "three", "four", "five", "six", "unfinished"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("host got %q, want %q", got, want)
	}
	l.Log("after close") // ignored, no panic
}

func TestSplitLines(t *testing.T) {
	long := strings.Repeat("é", MaxText) // 2 bytes a rune: the cut must not split one
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", []string{""}},
		{"a", []string{"a"}},
		{"a\n", []string{"a"}},
		{"a\r\nb", []string{"a", "b"}},
		{"50%\r60%", []string{"50% 60%"}},
		{"\n\n", []string{"", ""}},
		{"x" + long, []string{"x" + long[:MaxText-2], long[MaxText-2 : 2*MaxText-2], long[2*MaxText-2:]}},
	} {
		got := splitLines(tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitLines(%.20q…) = %d pieces, want %d", tc.in, len(got), len(tc.want))
		}
		for _, s := range got {
			if err := logMsg(s).Validate(); err != nil {
				t.Errorf("piece of %.20q: %v", tc.in, err)
			}
		}
	}
}

// stallConn is a host that takes nothing until released, then takes
// everything (or fails the write, like a host that went away).
type stallConn struct {
	net.Conn
	fail    bool
	entered chan struct{} // a write is waiting
	release chan struct{}
	closed  chan struct{}
	once    sync.Once
}

func newStall(c net.Conn) *stallConn {
	return &stallConn{Conn: c, entered: make(chan struct{}, 1), release: make(chan struct{}), closed: make(chan struct{})}
}

func (c *stallConn) Write(p []byte) (int, error) {
	select {
	case c.entered <- struct{}{}:
	default:
	}
	select {
	case <-c.release:
		if c.fail {
			return 0, errors.New("connection reset by peer")
		}
		return c.Conn.Write(p)
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestLinkNeverBlocks: with the host stalled, Log returns at once; the
// queue keeps the newest lines and the host learns how many were dropped.
func TestLinkNeverBlocks(t *testing.T) {
	c, h := newHost(t)
	s := newStall(c)
	l := openFake(t, hostlinktest.NewClock(t0), s)
	l.Log("first")
	<-s.entered // the writer holds "first" and waits on the host
	for i := range 3000 {
		l.Log(fmt.Sprint(i))
	}
	close(s.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"first", "hostlink: 1976 lines dropped"}
	for i := 3000 - 1024; i < 3000; i++ {
		want = append(want, fmt.Sprint(i))
	}
	if got := h.rest(); !reflect.DeepEqual(got, want) {
		t.Fatalf("host got %d lines %.60q…, want %d %.60q…", len(got), got, len(want), want)
	}
}

func TestHeartbeat(t *testing.T) {
	c, h := newHost(t)
	clk := hostlinktest.NewClock(t0)
	l := openFake(t, clk, c)
	defer l.Close()

	// No state yet: a tick sends nothing.
	clk.BlockUntil(1)
	clk.Advance(5 * time.Second)
	clk.BlockUntil(1) // the tick is handled
	l.Log("booted")
	if m := h.next(); m.Line != "booted" {
		t.Fatalf("got %+v, want the log line only", m)
	}
	l.Health(Ready, "model\nloaded")
	if m := h.next(); m.State != Ready || m.Detail != "model loaded" {
		t.Fatalf("got %+v", m)
	}
	for i := 1; i <= 3; i++ {
		clk.BlockUntil(1)
		clk.Advance(5 * time.Second)
		m := h.next()
		if m.Type != TypeHealth || m.State != Ready || m.Detail != "model loaded" || !m.Time.Equal(t0.Add(time.Duration(i+1)*5*time.Second)) {
			t.Fatalf("heartbeat %d: %+v", i, m)
		}
	}
	l.Health("degraded", "")
	if m := h.next(); m.Type != TypeLog || !strings.Contains(m.Line, `state "degraded"`) {
		t.Fatalf("unknown state: got %+v, want a log line saying so", m)
	}
}

// brokenConn fails every write, like a host that went away.
type brokenConn struct{ net.Conn }

func (brokenConn) Write([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

func TestLinkReconnects(t *testing.T) {
	c, h := newHost(t)
	dead, _ := net.Pipe()
	clk := hostlinktest.NewClock(t0)
	broken := newStall(dead)
	broken.fail = true
	l := openFake(t, clk, broken, c)
	l.Log("lost")
	<-broken.entered
	l.Health(Booting, "")
	close(broken.release)
	// The write fails; the writer waits out its backoff (the heartbeat
	// waits too), then dials again.
	clk.BlockUntil(2)
	clk.Advance(minBackoff)
	m := h.next()
	if m.Type != TypeHealth || m.State != Booting {
		t.Fatalf("first after reconnecting: %+v, want the health again", m)
	}
	if m := h.next(); m.Line != "hostlink: 1 lines dropped" {
		t.Fatalf("got %+v, want the drop count", m)
	}
	l.Log("after")
	if m := h.next(); m.Line != "after" {
		t.Fatalf("got %+v", m)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestVirtioSerialReopens: over virtio-serial the link reopens the port,
// backing off longer after each failure.
func TestVirtioSerialReopens(t *testing.T) {
	c, h := newHost(t)
	dead, _ := net.Pipe()
	conns := []Conn{brokenConn{dead}, nil, c} // nil: the port is busy
	var opened []string
	clk := hostlinktest.NewClock(t0)
	l, err := Open(context.Background(), Options{
		DialVsock:   func(context.Context) (Conn, error) { return nil, errors.New("no vsock") },
		VirtioPorts: fstest.MapFS{"vport1p1/name": {Data: []byte(PortName + "\n")}},
		OpenPort: func(name string) (Conn, error) {
			opened = append(opened, name)
			c := conns[0]
			conns = conns[1:]
			if c == nil {
				return nil, syscall.EBUSY
			}
			return c, nil
		},
		Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Log("x")
	clk.BlockUntil(2) // the heartbeat, and the first backoff
	clk.Advance(minBackoff)
	clk.BlockUntil(2) // the port was busy: a second backoff, twice as long
	clk.Advance(minBackoff)
	clk.Advance(minBackoff)
	if m := h.next(); m.Line != "hostlink: 1 lines dropped" {
		t.Fatalf("got %+v", m)
	}
	l.Close()
	if strings.Join(opened, " ") != "vport1p1 vport1p1 vport1p1" {
		t.Fatalf("opened %q", opened)
	}
}

// TestWriterLongLine: an unfinished line longer than a message goes out in
// pieces as it is written, cut between runes.
func TestWriterLongLine(t *testing.T) {
	c, h := newHost(t)
	l := openFake(t, hostlinktest.NewClock(t0), c)
	w := l.Writer()
	long := strings.Repeat("€", MaxText) // 3 bytes a rune
	for i := 0; i < len(long); i += 1000 {
		io.WriteString(w, long[i:min(i+1000, len(long))])
	}
	io.WriteString(w, "\nnext\n")
	l.Close()
	got := h.rest()
	// 2730 runes (8190 bytes) a piece: four pieces, the last of two runes.
	if len(got) != 5 || strings.Join(got[:4], "") != long || got[4] != "next" {
		t.Fatalf("got %d lines", len(got))
	}
	for _, s := range got[:3] {
		if len(s) > MaxText || len(s) < MaxText-2 {
			t.Fatalf("piece of %d bytes", len(s))
		}
	}
}

// TestCloseGivesUp: a host that never reads does not hold Close past its
// deadline.
func TestCloseGivesUp(t *testing.T) {
	c, _ := net.Pipe()
	s := newStall(c)
	clk := hostlinktest.NewClock(t0)
	l := openFake(t, clk, s)
	l.Log("stuck")
	<-s.entered
	l.Log("queued")
	errc := make(chan error, 1)
	go func() { errc <- l.Close() }()
	clk.BlockUntil(2) // the heartbeat's timer and Close's
	clk.Advance(2 * time.Second)
	err := <-errc
	if !errors.Is(err, ErrFlush) || !strings.Contains(err.Error(), "2 messages not sent") {
		t.Fatalf("Close = %v, want ErrFlush for 2 messages", err)
	}
}
