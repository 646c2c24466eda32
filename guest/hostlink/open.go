package hostlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/mdlayher/vsock"
)

// Errors of Open.
var (
	ErrNoChannel = errors.New("hostlink: no channel to the host")
	ErrNoPort    = errors.New("hostlink: no virtio-serial port " + PortName)
)

// Conn is one connection to the host; the guest only writes. *os.File (a
// virtio port), vsock and net.Conn connections are Conns.
type Conn interface {
	io.WriteCloser
	SetWriteDeadline(t time.Time) error
}

// Clock is the link's time source for heartbeats, backoff and Close's
// deadline; RealClock is the real one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// After implements Clock.
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options of Open. The zero value is the real guest: vsock, then
// /sys/class/virtio-ports and /dev.
type Options struct {
	// DialVsock connects to the host over vsock; nil dials CID 2 (the
	// host), Port.
	DialVsock func(ctx context.Context) (Conn, error)
	// VirtioPorts is /sys/class/virtio-ports; nil is the real one. The
	// guest has no udev, hence no /dev/virtio-ports/NAME links: the port is
	// found by the name file of each vportNpM.
	VirtioPorts fs.FS
	// OpenPort opens a port's character device by its sysfs name
	// ("vport1p1"); nil opens /dev/NAME write-only.
	OpenPort func(name string) (Conn, error)

	Clock        Clock         // nil: RealClock
	Interval     time.Duration // heartbeat; 0: 5s
	QueueLen     int           // messages held while the host is slow; 0: 1024
	WriteTimeout time.Duration // a write taking longer breaks the connection; 0: 10s
	FlushTimeout time.Duration // how long Close waits to flush; 0: 2s
}

func (o *Options) defaults() {
	if o.DialVsock == nil {
		o.DialVsock = func(ctx context.Context) (Conn, error) {
			c, err := vsock.DialContext(ctx, vsock.Host, Port, nil)
			if err != nil {
				return nil, err // not a typed nil in the interface
			}
			return c, nil
		}
	}
	if o.VirtioPorts == nil {
		o.VirtioPorts = os.DirFS("/sys/class/virtio-ports")
	}
	if o.OpenPort == nil {
		o.OpenPort = func(name string) (Conn, error) {
			// os.File puts a character device in the runtime poller, so
			// write deadlines work and Close ends a blocked write.
			f, err := os.OpenFile("/dev/"+name, os.O_WRONLY, 0)
			if err != nil {
				return nil, err
			}
			return f, nil
		}
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 1024
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 2 * time.Second
	}
}

// dialTimeout bounds the first vsock connect: a guest without a listener on
// the host gets a reset at once, but a stalled host must not hold the boot.
const dialTimeout = 5 * time.Second

// Open connects to the host: vsock first, then the virtio-serial port. It
// returns an error wrapping ErrNoChannel when neither connects. The link
// then reconnects by itself over the transport it found.
func Open(ctx context.Context, o Options) (*Link, error) {
	o.defaults()
	t, c, err := connect(ctx, o)
	if err != nil {
		return nil, err
	}
	return start(o, t, c), nil
}

// transport is how a link (re)connects.
type transport struct {
	name string
	dial func(ctx context.Context) (Conn, error)
}

func connect(ctx context.Context, o Options) (transport, Conn, error) {
	vctx, cancel := context.WithTimeout(ctx, dialTimeout)
	c, verr := o.DialVsock(vctx)
	cancel()
	if verr == nil {
		return transport{name: "vsock", dial: o.DialVsock}, c, nil
	}
	name, perr := FindPort(o.VirtioPorts)
	if perr == nil {
		if c, perr = o.OpenPort(name); perr == nil {
			open := func(context.Context) (Conn, error) { return o.OpenPort(name) }
			return transport{name: "virtio-serial /dev/" + name, dial: open}, c, nil
		}
	}
	return transport{}, nil, fmt.Errorf("%w (vsock: %w; virtio-serial: %w)", ErrNoChannel, verr, perr)
}

// FindPort returns the sysfs name (vportNpM) of the port named PortName in
// sysfs's virtio-ports class directory.
func FindPort(ports fs.FS) (string, error) {
	es, err := fs.ReadDir(ports, ".")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoPort, err)
	}
	for _, e := range es {
		if !strings.HasPrefix(e.Name(), "vport") {
			continue
		}
		b, err := fs.ReadFile(ports, e.Name()+"/name")
		if err == nil && strings.TrimSpace(string(b)) == PortName {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("%w: none of %d virtio ports has that name", ErrNoPort, len(es))
}
