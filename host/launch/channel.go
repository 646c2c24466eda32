package launch

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cocoon-appliance/cocoon/guest/hostlink"
	"github.com/mdlayher/vsock"
)

// Transports of the host channel (guest/hostlink).
const (
	TransportAuto         = "auto" // config only: vsock when the guest has a vsock CID, else virtio-serial
	TransportVirtioSerial = "virtio-serial"
	TransportVsock        = "vsock"
	TransportNone         = "none"
)

// DefaultHealthTimeout is how long a guest that reported ready may go
// without a heartbeat (hostlink sends one every 5 s) before it is
// restarted.
const DefaultHealthTimeout = 30 * time.Second

// channelSocket is the virtio-serial channel's socket in the state
// directory; QEMU connects to it.
const channelSocket = "hostlink.sock"

// ErrUnhealthy ends a boot whose guest reported failure or stopped its
// heartbeats.
var ErrUnhealthy = errors.New("launch: guest unhealthy")

// Channel is how each boot's guest reaches the launcher.
type Channel struct {
	Transport     string        // TransportVirtioSerial or TransportVsock; "" or TransportNone: no channel
	GuestCID      uint32        // vsock: connections from any other CID are refused
	HealthTimeout time.Duration // 0: DefaultHealthTimeout
}

func (c Channel) enabled() bool {
	return c.Transport == TransportVirtioSerial || c.Transport == TransportVsock
}

// Health is a health message from the guest as the launcher received it.
type Health struct {
	State    hostlink.State
	Detail   string    // the guest's words: pass through Printable before a terminal
	Received time.Time // the launcher's clock; the guest's is not trusted
}

// listenChannel opens the launcher's end of the channel before QEMU starts;
// socket is what QEMU connects to (virtio-serial), one says to accept a
// single connection, QEMU's.
func (o *Options) listenChannel() (ln net.Listener, socket string, one bool, err error) {
	switch o.Boot.Channel.Transport {
	case TransportVirtioSerial:
		if socket, err = filepath.Abs(filepath.Join(o.StateDir, channelSocket)); err != nil {
			return nil, "", false, err
		}
		// A socket left by a launcher that was killed would fail Listen.
		if err := os.Remove(socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, "", false, err
		}
		if ln, err = net.Listen("unix", socket); err != nil {
			return nil, "", false, err
		}
		if err := os.Chmod(socket, 0o600); err != nil {
			ln.Close()
			return nil, "", false, err
		}
		return ln, socket, true, nil
	case TransportVsock:
		listen := o.ListenVsock
		if listen == nil {
			listen = func() (net.Listener, error) { return vsock.Listen(hostlink.Port, nil) }
		}
		if ln, err = listen(); err != nil {
			return nil, "", false, fmt.Errorf("vsock port %d: %w", hostlink.Port, err)
		}
		return cidListener{ln, o.Boot.Channel.GuestCID}, "", false, nil
	}
	return nil, "", false, fmt.Errorf("%w: host channel transport %q", ErrConfig, o.Boot.Channel.Transport)
}

// cidListener accepts vsock connections from one guest only: the port is
// the host's, and any other VM (or a local process) may dial it.
type cidListener struct {
	net.Listener
	cid uint32
}

func (l cidListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if a, ok := c.RemoteAddr().(*vsock.Addr); ok && a.ContextID == l.cid {
			return c, nil
		}
		c.Close()
	}
}

// maxBadReports bounds the launcher's reports of bad lines per boot: the
// guest is untrusted and could otherwise flood the launcher's log.
const maxBadReports = 10

// channelServer reads one boot's channel. A newer connection replaces an
// older one (a vsock guest reconnects after a write error).
type channelServer struct {
	ln     net.Listener
	one    bool
	handle func(hostlink.Message) // called from the reader goroutines
	log    io.Writer

	mu       sync.Mutex
	conn     net.Conn
	stopped  bool
	bad      int
	readers  sync.WaitGroup
	accepts  chan struct{} // closed when serve returns
	stopOnce sync.Once
}

func newChannelServer(ln net.Listener, one bool, handle func(hostlink.Message), log io.Writer) *channelServer {
	s := &channelServer{ln: ln, one: one, handle: handle, log: log, accepts: make(chan struct{})}
	go s.serve()
	return s
}

func (s *channelServer) serve() {
	defer close(s.accepts)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			c.Close()
			return
		}
		if s.conn != nil {
			s.conn.Close()
		}
		s.conn = c
		s.readers.Add(1)
		s.mu.Unlock()
		go s.read(c)
		if s.one {
			s.ln.Close() // and the socket file goes: nobody else can connect
			return
		}
	}
}

func (s *channelServer) read(c net.Conn) {
	defer s.readers.Done()
	d := hostlink.NewDecoder(c)
	for {
		m, err := d.Next()
		if errors.Is(err, hostlink.ErrBadMessage) {
			s.report(err)
			continue
		}
		if err != nil {
			return
		}
		s.handle(m)
	}
}

func (s *channelServer) report(err error) {
	s.mu.Lock()
	s.bad++
	n := s.bad
	s.mu.Unlock()
	switch {
	case n <= maxBadReports:
		fmt.Fprintf(s.log, "cocoon host: guest channel: %s\n", Printable(err.Error()))
	case n == maxBadReports+1:
		fmt.Fprintf(s.log, "cocoon host: guest channel: more bad messages, not shown\n")
	}
}

// stop closes the channel. With a grace period (QEMU is gone), what the
// guest wrote last, often why it stopped, is read first: QEMU's connection
// (made as it started) is accepted if still pending, and the current one
// is read to its end, for at most grace each. Without one (QEMU never
// ran), everything closes at once. Later calls do nothing.
func (s *channelServer) stop(grace time.Duration) {
	s.stopOnce.Do(func() { s.stopNow(grace) })
}

func (s *channelServer) stopNow(grace time.Duration) {
	dl, ok := s.ln.(interface{ SetDeadline(time.Time) error })
	if s.one && grace > 0 && ok {
		// Real-time deadlines, here and below: they only bound the odd
		// case, as a QEMU that exited has closed its end.
		dl.SetDeadline(time.Now().Add(grace))
	} else {
		s.ln.Close()
	}
	<-s.accepts
	s.ln.Close()
	s.mu.Lock()
	s.stopped = true
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		if grace > 0 {
			c.SetReadDeadline(time.Now().Add(grace))
		} else {
			c.Close()
		}
	}
	s.readers.Wait()
	if c != nil {
		c.Close()
	}
}

// healthWatch decides from the guest's health messages when a boot has
// failed: a "failed" report, or no heartbeat for the timeout once the guest
// has been ready. Times are the launcher's own.
type healthWatch struct {
	clock   hostlink.Clock
	timeout time.Duration
	changed chan struct{} // cap 1: a message arrived

	mu     sync.Mutex
	ready  bool
	last   time.Time
	failed *Health
}

func newHealthWatch(clock hostlink.Clock, timeout time.Duration) *healthWatch {
	if timeout <= 0 {
		timeout = DefaultHealthTimeout
	}
	return &healthWatch{clock: clock, timeout: timeout, changed: make(chan struct{}, 1)}
}

func (w *healthWatch) note(h Health) {
	w.mu.Lock()
	w.last = h.Received
	switch h.State {
	case hostlink.Ready:
		w.ready = true
	case hostlink.Failed:
		if w.failed == nil {
			w.failed = &h
		}
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// failure is the guest's failure report, or nil.
func (w *healthWatch) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed == nil {
		return nil
	}
	return fmt.Errorf("%w: guest reported failed: %s", ErrUnhealthy, Printable(w.failed.Detail))
}

// run returns an error wrapping ErrUnhealthy when the guest is to be
// stopped, nil when done is closed. At most one timer is pending at a time.
func (w *healthWatch) run(done <-chan struct{}) error {
	var timer <-chan time.Time
	for {
		if err := w.failure(); err != nil {
			return err
		}
		w.mu.Lock()
		ready, last := w.ready, w.last
		w.mu.Unlock()
		if ready {
			silent := w.clock.Now().Sub(last)
			if silent >= w.timeout {
				return fmt.Errorf("%w: no heartbeat for %s (timeout %s)", ErrUnhealthy, silent, w.timeout)
			}
			if timer == nil {
				timer = w.clock.After(w.timeout - silent)
			}
		}
		select {
		case <-done:
			return nil
		case <-w.changed:
		case <-timer:
			timer = nil
		}
	}
}

// Printable escapes control and format characters (terminal escape
// sequences, bidi overrides) in text from the guest, which is not trusted,
// before it reaches a terminal or a log.
func Printable(s string) string {
	hidden := func(r rune) bool { return r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) }
	if strings.IndexFunc(s, hidden) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !hidden(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}
