// Package netup brings the guest's network up over netlink: the loopback,
// one ethernet interface with a static address or one leased over DHCPv4
// (UpDHCP, RFC 2131), a default route, and the resolver configuration.
//
// The root filesystem is read-only (dm-verity), so the resolver list is
// written to /run/resolv.conf; the image links /etc/resolv.conf there.
package netup

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
)

// Modes.
const (
	ModeStatic = "static"
	ModeDHCP   = "dhcp" // UpDHCP: the address, router and DNS servers come from a lease
	ModeNone   = "none" // loopback only
)

// DefaultResolvConf is where Up writes the DNS servers.
const DefaultResolvConf = "/run/resolv.conf"

// Errors.
var (
	// ErrConfig: the configuration is invalid; nothing was changed.
	ErrConfig = errors.New("netup: invalid network config")
	// ErrNoInterface: the named interface, or any ethernet interface, is absent.
	ErrNoInterface = errors.New("netup: no such network interface")
)

// Config is the network part of the runtime config.
type Config struct {
	Mode      string   // "static", "dhcp" or "none"
	Interface string   // "" = the first non-loopback ethernet interface
	Address   string   // CIDR, e.g. 10.0.2.15/24; static only
	Gateway   string   // "" = no default route; static only
	DNS       []string // nameserver addresses; in mode dhcp they replace the lease's
	// ResolvConf is where the DNS servers go; DefaultResolvConf when empty.
	ResolvConf string
}

// Link is the part of netlink Up uses. *netlink.Handle implements it:
// netlink.NewHandle() for the current network namespace,
// netlink.NewHandleAt(ns) for another.
type Link interface {
	LinkList() ([]netlink.Link, error)
	LinkByName(name string) (netlink.Link, error)
	LinkSetUp(link netlink.Link) error
	AddrAdd(link netlink.Link, addr *netlink.Addr) error
	RouteAdd(route *netlink.Route) error
}

var _ Link = (*netlink.Handle)(nil)

// plan is a validated config.
type plan struct {
	addr *net.IPNet // address with its prefix (IP is the host's, not the network's)
	gw   net.IP
	dns  []net.IP
}

func parse(c Config) (*plan, error) {
	switch c.Mode {
	case ModeNone:
		if c.Address != "" || c.Gateway != "" || len(c.DNS) != 0 {
			return nil, fmt.Errorf("%w: mode %q takes no address, gateway or DNS", ErrConfig, c.Mode)
		}
		return &plan{}, nil
	case ModeDHCP:
		// Only the DNS servers may be configured: the lease supplies the
		// rest, and UpDHCP checks it once it arrives.
		if c.Address != "" || c.Gateway != "" {
			return nil, fmt.Errorf("%w: mode %q takes no address or gateway (the lease supplies them), got %q, %q", ErrConfig, c.Mode, c.Address, c.Gateway)
		}
		dns, err := parseDNS(c.DNS)
		if err != nil {
			return nil, err
		}
		return &plan{dns: dns}, nil
	case ModeStatic:
	default:
		return nil, fmt.Errorf("%w: mode %q, want %q, %q or %q", ErrConfig, c.Mode, ModeStatic, ModeDHCP, ModeNone)
	}
	ip, subnet, err := net.ParseCIDR(c.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: address %q is not CIDR (want e.g. 10.0.2.15/24): %v", ErrConfig, c.Address, err)
	}
	if ip.Equal(subnet.IP) && !isHostPrefix(subnet) {
		return nil, fmt.Errorf("%w: address %s is the network address of %s", ErrConfig, ip, subnet)
	}
	p := &plan{addr: &net.IPNet{IP: ip, Mask: subnet.Mask}}
	if c.Gateway != "" {
		gw := net.ParseIP(c.Gateway)
		if gw == nil {
			return nil, fmt.Errorf("%w: gateway %q is not an IP address", ErrConfig, c.Gateway)
		}
		if !subnet.Contains(gw) {
			return nil, fmt.Errorf("%w: gateway %s is outside the subnet %s of %s", ErrConfig, gw, subnet, c.Address)
		}
		if gw.Equal(ip) {
			return nil, fmt.Errorf("%w: gateway %s is the interface's own address", ErrConfig, gw)
		}
		p.gw = gw
	}
	if p.dns, err = parseDNS(c.DNS); err != nil {
		return nil, err
	}
	return p, nil
}

func parseDNS(list []string) ([]net.IP, error) {
	var dns []net.IP
	for _, s := range list {
		d := net.ParseIP(s)
		if d == nil {
			return nil, fmt.Errorf("%w: DNS server %q is not an IP address", ErrConfig, s)
		}
		dns = append(dns, d)
	}
	return dns, nil
}

func isHostPrefix(n *net.IPNet) bool {
	ones, bits := n.Mask.Size()
	return ones >= bits-1 // /32, /31 (RFC 3021), /128, /127
}

// Up brings the loopback up and, in static mode, the interface with its
// address, the default route through the gateway and the resolver file.
// The config is validated before anything changes. Mode dhcp is UpDHCP's.
func Up(l Link, c Config) error {
	p, err := parse(c)
	if err != nil {
		return err
	}
	if c.Mode == ModeDHCP {
		return fmt.Errorf("%w: mode %q needs a DHCP client: call UpDHCP", ErrConfig, c.Mode)
	}
	if err := loUp(l); err != nil {
		return err
	}
	if c.Mode == ModeNone {
		return nil
	}
	link, err := pick(l, c.Interface)
	if err != nil {
		return err
	}
	name := link.Attrs().Name
	if err := l.AddrAdd(link, &netlink.Addr{IPNet: p.addr}); err != nil {
		return fmt.Errorf("netup: ip addr add %s dev %s: %w", p.addr, name, err)
	}
	if err := l.LinkSetUp(link); err != nil {
		return fmt.Errorf("netup: ip link set %s up: %w", name, err)
	}
	return route(l, link, p, c.ResolvConf)
}

func loUp(l Link) error {
	lo, err := l.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("%w: lo: %v", ErrNoInterface, err)
	}
	if err := l.LinkSetUp(lo); err != nil {
		return fmt.Errorf("netup: ip link set lo up: %w", err)
	}
	return nil
}

// route adds the default route through p.gw, if any, and writes the
// resolver file, if there are DNS servers: what follows the address in
// both modes.
func route(l Link, link netlink.Link, p *plan, resolvConf string) error {
	name := link.Attrs().Name
	if p.gw != nil {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: p.gw} // no Dst: the default route
		if err := l.RouteAdd(r); err != nil {
			return fmt.Errorf("netup: ip route add default via %s dev %s: %w", p.gw, name, err)
		}
	}
	if len(p.dns) > 0 {
		path := resolvConf
		if path == "" {
			path = DefaultResolvConf
		}
		if err := writeResolvConf(path, p.dns); err != nil {
			return err
		}
	}
	return nil
}

// pick returns the named interface or, for "", the ethernet interface
// with the lowest index other than lo.
func pick(l Link, name string) (netlink.Link, error) {
	if name != "" {
		link, err := l.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNoInterface, name, err)
		}
		return link, nil
	}
	links, err := l.LinkList()
	if err != nil {
		return nil, fmt.Errorf("netup: ip link show: %w", err)
	}
	var seen []string
	var eth []netlink.Link
	for _, k := range links {
		a := k.Attrs()
		seen = append(seen, fmt.Sprintf("%s(%s)", a.Name, k.Type()))
		if ethernet(k) {
			eth = append(eth, k)
		}
	}
	if len(eth) == 0 {
		return nil, fmt.Errorf("%w: no ethernet interface among %s", ErrNoInterface, strings.Join(seen, ", "))
	}
	sort.Slice(eth, func(i, j int) bool { return eth[i].Attrs().Index < eth[j].Attrs().Index })
	return eth[0], nil
}

// ethernet: a NIC (virtio-net and friends are "device") or a veth (tests,
// containers), with an ethernet link layer; not lo, bridges, bonds, tunnels.
func ethernet(k netlink.Link) bool {
	a := k.Attrs()
	if a.Name == "lo" || a.EncapType != "ether" {
		return false
	}
	return k.Type() == "device" || k.Type() == "veth"
}

// writeResolvConf replaces path atomically (a reader never sees half a file).
func writeResolvConf(path string, dns []net.IP) error {
	var b strings.Builder
	b.WriteString("# written by cocoon-init (init/netup)\n")
	for _, d := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("netup: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("netup: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("netup: %w", err)
	}
	return nil
}
