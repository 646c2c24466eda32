package netup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/vishvananda/netlink"
)

// Errors of mode dhcp.
var (
	// ErrNoLease: no server granted a lease on the interface (no DHCPOFFER
	// or DHCPACK in time, or only DHCPNAKs). Nothing beyond the link state
	// was changed.
	ErrNoLease = errors.New("netup: no DHCP lease")
	// ErrBadLease: the server granted a lease the guest cannot use as
	// given; nothing beyond the link state was changed.
	ErrBadLease = errors.New("netup: unusable DHCP lease")
)

// InfiniteLease is Lease.Duration for a lease time of 0xffffffff seconds,
// which RFC 2131 §3.3 defines as "infinity".
const InfiniteLease = time.Duration(math.MaxUint32) * time.Second

// Lease is what a server granted in its DHCPACK (RFC 2131 §3.1 step 5).
//
// Renewal is not implemented: the address stays configured after Duration
// runs out, although RFC 2131 §4.4.5 says a client must renew at T1
// (by default half the lease) and stop using the address at expiry. QEMU's
// user-mode network (slirp) grants 24-hour leases and never hands the
// address to anyone else, so a guest there keeps working; on a network with
// a real server, renewal is the follow-up. Duration is returned so the
// caller can log it.
type Lease struct {
	Interface string        // the interface it was granted on
	Address   net.IP        // yiaddr
	Mask      net.IPMask    // subnet mask, option 1 (RFC 2132 §3.3); nil when absent
	Router    net.IP        // first router, option 3 (RFC 2132 §3.5: in order of preference); nil when absent
	DNS       []net.IP      // domain name servers, option 6 (RFC 2132 §3.8)
	Server    net.IP        // server identifier, option 54 (RFC 2132 §9.7)
	Duration  time.Duration // lease time, option 51 (RFC 2132 §9.2); 0 when absent
}

// DHCP obtains a lease for one interface. Client is the real one; FakeDHCP
// is for tests.
type DHCP interface {
	// Request runs DISCOVER/OFFER/REQUEST/ACK on ifc, which is up, until ctx
	// is done or the client gives up, and returns the lease unchecked.
	Request(ctx context.Context, ifc *net.Interface) (*Lease, error)
}

// UpDHCP brings the loopback and the interface up, asks d for a lease on the
// interface, checks the lease and applies it: the address with the prefix of
// the subnet mask, the default route through the router, and the resolver
// file with the lease's DNS servers, or c.DNS when the config names some
// (as dhclient's "supersede domain-name-servers").
//
// A lease without a router is accepted: RFC 2132 §3.5 makes the option
// optional, and the guest then reaches its subnet only, as a static config
// without a gateway does. A lease without an address or a usable subnet
// mask is refused with ErrBadLease.
func UpDHCP(ctx context.Context, l Link, d DHCP, c Config) (*Lease, error) {
	if c.Mode != ModeDHCP {
		return nil, fmt.Errorf("%w: UpDHCP with mode %q, want %q", ErrConfig, c.Mode, ModeDHCP)
	}
	cp, err := parse(c)
	if err != nil {
		return nil, err
	}
	if err := loUp(l); err != nil {
		return nil, err
	}
	link, err := pick(l, c.Interface)
	if err != nil {
		return nil, err
	}
	a := link.Attrs()
	// The link must be up to send the DISCOVER; no address is needed, the
	// client talks from 0.0.0.0 (RFC 2131 §4.1).
	if err := l.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("netup: ip link set %s up: %w", a.Name, err)
	}
	ifc := &net.Interface{Index: a.Index, MTU: a.MTU, Name: a.Name, HardwareAddr: a.HardwareAddr, Flags: a.Flags}
	lease, err := d.Request(ctx, ifc)
	if err != nil {
		return nil, err
	}
	p, err := leasePlan(lease)
	if err != nil {
		return nil, err
	}
	if len(cp.dns) > 0 {
		p.dns = cp.dns
	}
	if err := l.AddrAdd(link, &netlink.Addr{IPNet: p.addr}); err != nil {
		return nil, fmt.Errorf("netup: ip addr add %s dev %s: %w", p.addr, a.Name, err)
	}
	if err := route(l, link, p, c.ResolvConf); err != nil {
		return nil, err
	}
	return lease, nil
}

// leasePlan checks a lease as parse checks a static config.
func leasePlan(l *Lease) (*plan, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w on %s from server %v: %s", ErrBadLease, l.Interface, l.Server, fmt.Sprintf(format, a...))
	}
	ip := l.Address.To4()
	if ip == nil || ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() || ip.Equal(net.IPv4bcast) {
		return nil, bad("address %v, want a unicast IPv4 address", l.Address)
	}
	if l.Mask == nil {
		// Servers send it whenever asked (every request lists option 1);
		// guessing a classful mask, as some clients do, could make the
		// router unreachable: refuse instead.
		return nil, bad("no subnet mask (option 1, RFC 2132 §3.3)")
	}
	ones, bits := l.Mask.Size()
	if bits != 8*net.IPv4len || ones == 0 {
		return nil, bad("subnet mask %v, want a contiguous IPv4 mask of /1 to /32", net.IP(l.Mask))
	}
	subnet := &net.IPNet{IP: ip.Mask(l.Mask), Mask: l.Mask}
	if !isHostPrefix(subnet) {
		bcast := make(net.IP, net.IPv4len)
		for i := range bcast {
			bcast[i] = subnet.IP[i] | ^l.Mask[i]
		}
		if ip.Equal(subnet.IP) || ip.Equal(bcast) {
			return nil, bad("address %s is the network or broadcast address of %s", ip, subnet)
		}
	}
	p := &plan{addr: &net.IPNet{IP: ip, Mask: l.Mask}}
	if l.Router != nil {
		gw := l.Router.To4()
		switch {
		case gw == nil:
			return nil, bad("router %v is not an IPv4 address", l.Router)
		case !subnet.Contains(gw):
			// An off-link router needs a host route first, which servers
			// send as classless static routes (RFC 3442, option 121): not
			// supported yet.
			return nil, bad("router %s is outside the subnet %s", gw, subnet)
		case gw.Equal(ip):
			return nil, bad("router %s is the leased address", gw)
		}
		p.gw = gw
	}
	for _, d := range l.DNS {
		if d.To4() == nil || d.IsUnspecified() {
			return nil, bad("DNS server %v, want an IPv4 address", d)
		}
		p.dns = append(p.dns, d.To4())
	}
	return p, nil
}
