package hostlink

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

// sysfs as the guest kernel shows it with a console port and ours.
var ports = fstest.MapFS{
	"vport0p0/name": {Data: []byte("\n")},
	"vport1p0/name": {Data: []byte("org.qemu.guest_agent.0\n")},
	"vport2p1/name": {Data: []byte(PortName + "\n")},
}

func TestFindPort(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   fs.FS
		want string
		err  error
	}{
		{"ours among others", ports, "vport2p1", nil},
		{"only others", fstest.MapFS{"vport1p0/name": {Data: []byte("org.qemu.guest_agent.0\n")}}, "", ErrNoPort},
		{"no virtio console", fstest.MapFS{}, "", ErrNoPort},
		{"not a port", fstest.MapFS{"power/name": {Data: []byte(PortName)}}, "", ErrNoPort},
	} {
		got, err := FindPort(tc.fs)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%s: FindPort = %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestOpenPicksTransport(t *testing.T) {
	refused := func(context.Context) (Conn, error) { return nil, syscall.ECONNRESET }
	noVsock := func(context.Context) (Conn, error) { return nil, syscall.EAFNOSUPPORT }
	vsockOK := func(context.Context) (Conn, error) { c, _ := net.Pipe(); return c, nil }
	for _, tc := range []struct {
		name   string
		dial   func(context.Context) (Conn, error)
		ports  fs.FS
		openOK bool
		want   string  // transport
		errs   []error // or these
	}{
		{"vsock first", vsockOK, ports, true, "vsock", nil},
		{"no listener on the host: virtio-serial", refused, ports, true, "virtio-serial /dev/vport2p1", nil},
		{"no vsock: virtio-serial", noVsock, ports, true, "virtio-serial /dev/vport2p1", nil},
		{"neither", noVsock, fstest.MapFS{}, true, "", []error{ErrNoChannel, ErrNoPort, syscall.EAFNOSUPPORT}},
		{"port busy", refused, ports, false, "", []error{ErrNoChannel, syscall.EBUSY}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opened []string
			open := func(name string) (Conn, error) {
				opened = append(opened, name)
				if !tc.openOK {
					return nil, syscall.EBUSY
				}
				c, _ := net.Pipe()
				return c, nil
			}
			l, err := Open(context.Background(), Options{DialVsock: tc.dial, VirtioPorts: tc.ports, OpenPort: open})
			for _, e := range tc.errs {
				if !errors.Is(err, e) {
					t.Fatalf("Open: %v, want %v", err, e)
				}
			}
			if tc.errs != nil {
				if !strings.Contains(err.Error(), "vsock: ") || !strings.Contains(err.Error(), "virtio-serial: ") {
					t.Fatalf("error does not say why each transport failed: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if l.Transport() != tc.want {
				t.Fatalf("transport %q, want %q", l.Transport(), tc.want)
			}
			if tc.want != "vsock" && strings.Join(opened, " ") != "vport2p1" {
				t.Fatalf("opened %q", opened)
			}
		})
	}
}
