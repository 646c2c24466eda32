package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cocoon-appliance/cocoon/guest/hostlink"
)

// Tee is the init's console: the serial console, plus the host channel
// once it is open. Safe for concurrent use (boot steps and the worker's
// output both write).
type Tee struct {
	mu    sync.Mutex
	W     io.Writer // the serial console
	extra io.Writer
}

// Attach adds w (the host channel's writer) to the console.
func (t *Tee) Attach(w io.Writer) {
	t.mu.Lock()
	t.extra = w
	t.mu.Unlock()
}

// Write writes p to the console and to the attached writer; only the
// console's error counts (the host channel never blocks and is untrusted).
func (t *Tee) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.extra != nil {
		t.extra.Write(p)
	}
	return t.W.Write(p)
}

// Channel is the host channel as the boot uses it; *hostlink.Link is the
// real one.
type Channel interface {
	Health(state hostlink.State, detail string)
	Writer() io.Writer
	Transport() string
	Close() error
}

// HostLink opens the channel to the host launcher (vsock, else the
// virtio-serial port), copies the console into it and reports health. The
// host is not trusted: only operational logs go there (never prompts), and
// a guest without a channel boots all the same.
type HostLink struct {
	Open func(ctx context.Context) (Channel, error)
	Tee  *Tee
}

func (HostLink) String() string {
	return "connect to the host: vsock 2:1024 or virtio port " + hostlink.PortName
}

// Run implements Step.
func (h HostLink) Run(ctx context.Context, s *State) error {
	c, err := h.Open(ctx)
	if err != nil {
		// Not fatal: the channel carries no security decision, and the
		// host could always withhold it.
		what := "host channel failed"
		if errors.Is(err, hostlink.ErrNoChannel) {
			what = "no host channel"
		}
		fmt.Fprintf(s.Log, "cocoon-init: %s (%v); health and logs stay on the serial console\n", what, err)
		return nil
	}
	s.Host = c
	h.Tee.Attach(c.Writer())
	c.Health(hostlink.Booting, "")
	fmt.Fprintf(s.Log, "cocoon-init: host channel over %s\n", c.Transport())
	return nil
}

// OpenHostLink opens the real channel.
func OpenHostLink(ctx context.Context) (Channel, error) {
	return hostlink.Open(ctx, hostlink.Options{})
}
