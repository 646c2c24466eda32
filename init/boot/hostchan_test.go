package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/hostlink"
)

type fakeChannel struct {
	buf    bytes.Buffer
	health []string
}

func (f *fakeChannel) Health(st hostlink.State, d string) {
	f.health = append(f.health, string(st)+" "+d)
}
func (f *fakeChannel) Writer() io.Writer { return &f.buf }
func (f *fakeChannel) Transport() string { return "virtio-serial /dev/vport1p1" }
func (f *fakeChannel) Close() error      { return nil }

func TestHostLink(t *testing.T) {
	var serial bytes.Buffer
	tee := &Tee{W: &serial}
	ch := &fakeChannel{}
	s := &State{Log: tee}
	h := HostLink{Open: func(context.Context) (Channel, error) { return ch, nil }, Tee: tee}
	if err := h.Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if s.Host != ch || len(ch.health) != 1 || ch.health[0] != "booting " {
		t.Fatalf("host %v, health %q", s.Host, ch.health)
	}
	fmt.Fprintln(tee, "cocoon-init: [9/19] next step ok")
	if !strings.Contains(ch.buf.String(), "next step ok") || !strings.Contains(serial.String(), "next step ok") {
		t.Errorf("console not copied: serial %q, channel %q", serial.String(), ch.buf.String())
	}

	// The worker's start reports ready.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := &fakeClock{now: time.Unix(0, 0), stopAt: 1, cancel: cancel}
	w := Worker{Sup: &Supervisor{Path: "/usr/bin/cocoon-worker", Runner: &fakeRunner{clk: clk}, Clock: clk, Console: io.Discard}}
	if err := w.Run(ctx, s); err != nil {
		t.Fatal(err)
	}
	if last := ch.health[len(ch.health)-1]; !strings.HasPrefix(last, "ready worker running (pid ") {
		t.Errorf("health after the worker started: %q", ch.health)
	}

	// No channel: the boot goes on, said on the console.
	serial.Reset()
	s = &State{Log: &serial}
	none := HostLink{Open: func(context.Context) (Channel, error) {
		return nil, fmt.Errorf("%w: no vsock, %w", hostlink.ErrNoChannel, hostlink.ErrNoPort)
	}, Tee: &Tee{W: &serial}}
	if err := none.Run(context.Background(), s); err != nil || s.Host != nil || !strings.Contains(serial.String(), "no host channel") {
		t.Errorf("without a channel: err %v, console %q", err, serial.String())
	}
	bad := HostLink{Open: func(context.Context) (Channel, error) { return nil, errors.New("EIO") }, Tee: &Tee{W: &serial}}
	serial.Reset()
	if err := bad.Run(context.Background(), &State{Log: &serial}); err != nil || !strings.Contains(serial.String(), "host channel failed (EIO)") {
		t.Errorf("a failing channel: err %v, console %q", err, serial.String())
	}
}
