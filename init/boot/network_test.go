package boot

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/init/netup"
)

// slirpLease is what QEMU's user-mode network grants.
func slirpLease() *netup.Lease {
	return &netup.Lease{
		Address: net.IPv4(10, 0, 2, 15).To4(), Mask: net.CIDRMask(24, 32), Router: net.IPv4(10, 0, 2, 2).To4(),
		DNS: []net.IP{net.IPv4(10, 0, 2, 3).To4()}, Server: net.IPv4(10, 0, 2, 2).To4(), Duration: 24 * time.Hour,
	}
}

func TestNetwork(t *testing.T) {
	for _, tc := range []struct {
		name   string
		net    config.Network
		dhcp   *netup.FakeDHCP
		err    error  // nil: any error, with errHas
		errHas string // "" on success
		log    string // the console line, on success
		routes int    // on success
	}{
		{name: "static", net: config.Network{Mode: "static", Address: "10.0.2.15/24", Gateway: "10.0.2.2"}, routes: 1},
		{name: "dhcp", net: config.Network{Mode: "dhcp"}, dhcp: &netup.FakeDHCP{Lease: slirpLease()},
			log: "cocoon-init: dhcp eth0: 10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3 from 10.0.2.2, lease 24h0m0s (not renewed)\n", routes: 1},
		{name: "dhcp with DNS in the config", net: config.Network{Mode: "dhcp", DNS: []string{"1.1.1.1", "9.9.9.9"}}, dhcp: &netup.FakeDHCP{Lease: slirpLease()},
			log: "cocoon-init: dhcp eth0: 10.0.2.15/24 gateway 10.0.2.2 dns 1.1.1.1,9.9.9.9 (from the config) from 10.0.2.2, lease 24h0m0s (not renewed)\n", routes: 1},
		{name: "dhcp without router", net: config.Network{Mode: "dhcp"},
			dhcp: &netup.FakeDHCP{Lease: &netup.Lease{Address: net.IPv4(10, 0, 2, 15), Mask: net.CIDRMask(24, 32), Server: net.IPv4(10, 0, 2, 2), Duration: netup.InfiniteLease}},
			log:  "cocoon-init: dhcp eth0: 10.0.2.15/24 gateway none dns none from 10.0.2.2, lease infinite\n"},
		{name: "dhcp without lease", net: config.Network{Mode: "dhcp"}, dhcp: &netup.FakeDHCP{Err: netup.ErrNoLease}, err: netup.ErrNoLease},
		{name: "dhcp bad lease", net: config.Network{Mode: "dhcp"}, dhcp: &netup.FakeDHCP{Lease: &netup.Lease{Address: net.IPv4(10, 0, 2, 15)}},
			err: netup.ErrBadLease, errHas: "no subnet mask"},
		{name: "unknown", net: config.Network{Mode: "carrier-pigeon"}, errHas: `network mode "carrier-pigeon", want "static" or "dhcp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := netup.NewFake("eth0")
			s := withPolicy(DevPolicy)
			s.Config.Runtime.Network = tc.net
			n := Network{Link: func() (netup.Link, error) { return f, nil }, ResolvConf: filepath.Join(t.TempDir(), "resolv.conf")}
			if tc.dhcp != nil {
				n.DHCP = tc.dhcp
			}
			err := n.Run(context.Background(), s)
			if tc.err != nil || tc.errHas != "" {
				if err == nil || tc.err != nil && !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !f.Up["eth0"] || len(f.Addrs["eth0"]) != 1 || len(f.Routes) != tc.routes {
				t.Fatalf("fake after Up: %+v", f)
			}
			if got := s.Log.(*bytes.Buffer).String(); got != tc.log {
				t.Errorf("console %q, want %q", got, tc.log)
			}
		})
	}
	if err := (Network{}).Run(context.Background(), &State{}); err == nil {
		t.Fatal("no config accepted")
	}
}

// The DHCP exchange runs under the boot's context.
func TestNetworkDHCPContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var got error
	d := dhcpFunc(func(ctx context.Context, _ *net.Interface) (*netup.Lease, error) {
		got = ctx.Err()
		return nil, got
	})
	s := withPolicy(DevPolicy)
	s.Config.Runtime.Network = config.Network{Mode: "dhcp"}
	n := Network{Link: func() (netup.Link, error) { return netup.NewFake("eth0"), nil }, DHCP: d, ResolvConf: filepath.Join(t.TempDir(), "resolv.conf")}
	if err := n.Run(ctx, s); !errors.Is(err, context.Canceled) || !errors.Is(got, context.Canceled) {
		t.Fatalf("err = %v, the DHCP client saw %v", err, got)
	}
}

type dhcpFunc func(ctx context.Context, ifc *net.Interface) (*netup.Lease, error)

func (f dhcpFunc) Request(ctx context.Context, ifc *net.Interface) (*netup.Lease, error) {
	return f(ctx, ifc)
}
