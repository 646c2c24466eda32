package netup

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// slirpLease is what QEMU's user-mode network grants its first guest.
func slirpLease() *Lease {
	return &Lease{
		Address: net.IPv4(10, 0, 2, 15).To4(), Mask: net.CIDRMask(24, 32), Router: net.IPv4(10, 0, 2, 2).To4(),
		DNS: []net.IP{net.IPv4(10, 0, 2, 3).To4()}, Server: net.IPv4(10, 0, 2, 2).To4(), Duration: 24 * time.Hour,
	}
}

func TestUpDHCP(t *testing.T) {
	noRouter := slirpLease()
	noRouter.Router = nil
	noDNS := slirpLease()
	noDNS.DNS = nil
	for _, tc := range []struct {
		name   string
		eth    []string
		c      Config
		lease  *Lease
		dhcp   error
		err    error
		errHas string
		// on success
		iface  string
		addrs  map[string][]string
		routes int
		dns    []string // nil: no resolv.conf
	}{
		{name: "slirp", eth: []string{"eth0", "eth1"}, lease: slirpLease(),
			iface: "eth0", addrs: map[string][]string{"eth0": {"10.0.2.15/24"}}, routes: 1, dns: []string{"10.0.2.3"}},
		{name: "named interface", eth: []string{"eth0", "eth1"}, c: Config{Interface: "eth1"}, lease: slirpLease(),
			iface: "eth1", addrs: map[string][]string{"eth1": {"10.0.2.15/24"}}, routes: 1, dns: []string{"10.0.2.3"}},
		{name: "config DNS supersedes the lease's", eth: []string{"eth0"}, c: Config{DNS: []string{"1.1.1.1", "9.9.9.9"}}, lease: slirpLease(),
			iface: "eth0", addrs: map[string][]string{"eth0": {"10.0.2.15/24"}}, routes: 1, dns: []string{"1.1.1.1", "9.9.9.9"}},
		{name: "no router: subnet only", eth: []string{"eth0"}, lease: noRouter,
			iface: "eth0", addrs: map[string][]string{"eth0": {"10.0.2.15/24"}}, dns: []string{"10.0.2.3"}},
		{name: "no DNS: no resolv.conf", eth: []string{"eth0"}, lease: noDNS,
			iface: "eth0", addrs: map[string][]string{"eth0": {"10.0.2.15/24"}}, routes: 1},

		{name: "no lease", eth: []string{"eth0"}, dhcp: ErrNoLease, err: ErrNoLease, iface: "eth0"},
		{name: "bad lease", eth: []string{"eth0"}, lease: &Lease{Address: net.IPv4(10, 0, 2, 15)}, err: ErrBadLease, errHas: "no subnet mask", iface: "eth0"},
		{name: "no NIC", err: ErrNoInterface, errHas: "lo(device)"},
		{name: "missing named NIC", eth: []string{"eth0"}, c: Config{Interface: "eth7"}, err: ErrNoInterface, errHas: "eth7"},
		{name: "address in config", eth: []string{"eth0"}, c: Config{Address: "10.0.2.15/24"}, err: ErrConfig, errHas: "takes no address"},
		{name: "gateway in config", eth: []string{"eth0"}, c: Config{Gateway: "10.0.2.2"}, err: ErrConfig, errHas: "takes no address or gateway"},
		{name: "bad DNS in config", eth: []string{"eth0"}, c: Config{DNS: []string{"dns.google"}}, err: ErrConfig, errHas: "dns.google"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake(tc.eth...)
			d := &FakeDHCP{Lease: tc.lease, Err: tc.dhcp}
			c := tc.c
			c.Mode = ModeDHCP
			c.ResolvConf = filepath.Join(t.TempDir(), "run", "resolv.conf")
			lease, err := UpDHCP(context.Background(), f, d, c)
			if tc.iface == "" && len(d.Asked) != 0 || tc.iface != "" && !reflect.DeepEqual(d.Asked, []string{tc.iface}) {
				t.Errorf("DHCP asked on %v, want %q", d.Asked, tc.iface)
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.err, tc.errHas)
				}
				// Whatever failed, no address, route or resolver file.
				if len(f.Addrs) != 0 || len(f.Routes) != 0 {
					t.Errorf("a failed UpDHCP configured addrs %v routes %v", f.Addrs, f.Routes)
				}
				if _, err := os.Stat(c.ResolvConf); err == nil {
					t.Error("a failed UpDHCP wrote resolv.conf")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if lease.Interface != tc.iface || !lease.Address.Equal(tc.lease.Address) {
				t.Errorf("lease %+v, want %s's %s", lease, tc.iface, tc.lease.Address)
			}
			if !f.Up["lo"] || !f.Up[tc.iface] {
				t.Errorf("up %v, want lo and %s", f.Up, tc.iface)
			}
			if !reflect.DeepEqual(f.Addrs, tc.addrs) {
				t.Errorf("addrs %v, want %v", f.Addrs, tc.addrs)
			}
			if len(f.Routes) != tc.routes {
				t.Fatalf("routes %v, want %d", f.Routes, tc.routes)
			}
			for _, r := range f.Routes {
				if r.Dst != nil || !r.Gw.Equal(tc.lease.Router) || r.LinkIndex != 2+indexOf(tc.eth, tc.iface) {
					t.Errorf("route %v, want default via %s dev %s", r, tc.lease.Router, tc.iface)
				}
			}
			b, err := os.ReadFile(c.ResolvConf)
			if tc.dns == nil {
				if err == nil {
					t.Errorf("resolv.conf %q written without DNS servers", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, line := range strings.Split(string(b), "\n") {
				if s, ok := strings.CutPrefix(line, "nameserver "); ok {
					got = append(got, s)
				}
			}
			if !reflect.DeepEqual(got, tc.dns) {
				t.Errorf("resolv.conf nameservers %v, want %v", got, tc.dns)
			}
		})
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// dhcpFunc adapts a function to DHCP.
type dhcpFunc func(ctx context.Context, ifc *net.Interface) (*Lease, error)

func (f dhcpFunc) Request(ctx context.Context, ifc *net.Interface) (*Lease, error) {
	return f(ctx, ifc)
}

// The DISCOVER needs the link up, and the client needs the link's index and
// hardware address to open its socket and fill chaddr.
func TestUpDHCPAsksOnAnUpLink(t *testing.T) {
	f := NewFake("eth0")
	hw := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	f.Links[1].Attrs().HardwareAddr = hw
	d := dhcpFunc(func(_ context.Context, ifc *net.Interface) (*Lease, error) {
		if !f.Up["eth0"] || ifc.Index != 2 || ifc.Name != "eth0" || ifc.HardwareAddr.String() != hw.String() {
			t.Errorf("asked on %+v with links up %v", ifc, f.Up)
		}
		return slirpLease(), nil
	})
	if _, err := UpDHCP(context.Background(), f, d, Config{Mode: ModeDHCP, ResolvConf: filepath.Join(t.TempDir(), "resolv.conf")}); err != nil {
		t.Fatal(err)
	}
}

func TestUpDHCPDeviceErrors(t *testing.T) {
	for _, call := range []string{"LinkSetUp", "AddrAdd", "RouteAdd", "LinkList", "LinkByName"} {
		f := NewFake("eth0")
		f.Fail[call] = errors.New("EPERM from " + call)
		_, err := UpDHCP(context.Background(), f, &FakeDHCP{Lease: slirpLease()}, Config{Mode: ModeDHCP, ResolvConf: filepath.Join(t.TempDir(), "resolv.conf")})
		if err == nil || !strings.Contains(err.Error(), "EPERM from "+call) {
			t.Errorf("%s failing: err = %v", call, err)
		}
	}
}

// Up and UpDHCP each refuse the other's mode.
func TestModeEntryPoints(t *testing.T) {
	if err := Up(NewFake("eth0"), Config{Mode: ModeDHCP}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "UpDHCP") {
		t.Errorf("Up in mode dhcp: %v", err)
	}
	for _, mode := range []string{ModeStatic, ModeNone, ""} {
		f := NewFake("eth0")
		d := &FakeDHCP{Lease: slirpLease()}
		if _, err := UpDHCP(context.Background(), f, d, Config{Mode: mode, Address: "10.0.2.15/24"}); !errors.Is(err, ErrConfig) || len(f.Up) != 0 || len(d.Asked) != 0 {
			t.Errorf("UpDHCP in mode %q: %v, up %v, asked %v", mode, err, f.Up, d.Asked)
		}
	}
}

func TestLeasePlan(t *testing.T) {
	ip := func(s string) net.IP { return net.ParseIP(s).To4() }
	mask := func(s string) net.IPMask { return net.IPMask(net.ParseIP(s).To4()) }
	with := func(f func(l *Lease)) *Lease {
		l := slirpLease()
		l.Interface = "eth0"
		f(l)
		return l
	}
	for _, tc := range []struct {
		name   string
		lease  *Lease
		addr   string // on success
		gw     string // "" = no default route
		errHas string // "" = success
	}{
		{"slirp", with(func(*Lease) {}), "10.0.2.15/24", "10.0.2.2", ""},
		{"no router", with(func(l *Lease) { l.Router = nil }), "10.0.2.15/24", "", ""},
		{"/31 (RFC 3021)", with(func(l *Lease) { l.Address, l.Mask, l.Router = ip("10.0.2.0"), mask("255.255.255.254"), ip("10.0.2.1") }), "10.0.2.0/31", "10.0.2.1", ""},
		{"/32 without router", with(func(l *Lease) { l.Mask, l.Router = mask("255.255.255.255"), nil }), "10.0.2.15/32", "", ""},
		{"16-byte address", with(func(l *Lease) { l.Address = net.ParseIP("10.0.2.15") }), "10.0.2.15/24", "10.0.2.2", ""},
		{"/8", with(func(l *Lease) { l.Mask = mask("255.0.0.0") }), "10.0.2.15/8", "10.0.2.2", ""},

		{"no address", with(func(l *Lease) { l.Address = nil }), "", "", "address <nil>, want a unicast IPv4 address"},
		{"zero address", with(func(l *Lease) { l.Address = ip("0.0.0.0") }), "", "", "address 0.0.0.0"},
		{"IPv6 address", with(func(l *Lease) { l.Address = net.ParseIP("fd00::5") }), "", "", "address fd00::5"},
		{"broadcast address", with(func(l *Lease) { l.Address = ip("255.255.255.255") }), "", "", "want a unicast"},
		{"multicast address", with(func(l *Lease) { l.Address = ip("224.0.0.1") }), "", "", "want a unicast"},
		{"no mask", with(func(l *Lease) { l.Mask = nil }), "", "", "no subnet mask (option 1"},
		{"non-contiguous mask", with(func(l *Lease) { l.Mask = mask("255.0.255.0") }), "", "", "subnet mask 255.0.255.0, want a contiguous"},
		{"zero mask", with(func(l *Lease) { l.Mask = mask("0.0.0.0") }), "", "", "subnet mask 0.0.0.0"},
		{"3-byte mask", with(func(l *Lease) { l.Mask = net.IPMask{255, 255, 255} }), "", "", "subnet mask"},
		{"network address", with(func(l *Lease) { l.Address = ip("10.0.2.0") }), "", "", "network or broadcast address of 10.0.2.0/24"},
		{"subnet broadcast", with(func(l *Lease) { l.Address = ip("10.0.2.255") }), "", "", "network or broadcast address"},
		{"router off subnet", with(func(l *Lease) { l.Router = ip("10.0.3.1") }), "", "", "router 10.0.3.1 is outside the subnet 10.0.2.0/24"},
		{"router off /32", with(func(l *Lease) { l.Mask = mask("255.255.255.255") }), "", "", "outside the subnet 10.0.2.15/32"},
		{"router is self", with(func(l *Lease) { l.Router = ip("10.0.2.15") }), "", "", "router 10.0.2.15 is the leased address"},
		{"IPv6 router", with(func(l *Lease) { l.Router = net.ParseIP("fd00::1") }), "", "", "not an IPv4 address"},
		{"zero DNS", with(func(l *Lease) { l.DNS = []net.IP{ip("0.0.0.0")} }), "", "", "DNS server 0.0.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := leasePlan(tc.lease)
			if tc.errHas != "" {
				if !errors.Is(err, ErrBadLease) || !strings.Contains(err.Error(), tc.errHas) || !strings.Contains(err.Error(), "on eth0 from server 10.0.2.2") {
					t.Fatalf("err = %v, want %v on eth0 from server 10.0.2.2 containing %q", err, ErrBadLease, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.addr.String() != tc.addr {
				t.Errorf("address %s, want %s", p.addr, tc.addr)
			}
			if gw := p.gw; tc.gw == "" && gw != nil || tc.gw != "" && gw.String() != tc.gw {
				t.Errorf("gateway %v, want %q", gw, tc.gw)
			}
			if len(p.dns) != len(tc.lease.DNS) {
				t.Errorf("dns %v, want %v", p.dns, tc.lease.DNS)
			}
		})
	}
}
