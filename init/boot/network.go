package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/cocoon-appliance/cocoon/init/netup"
)

// Network configures the interface from the runtime config: a static
// address, or one leased over DHCP.
type Network struct {
	Link func() (netup.Link, error)
	// DHCP obtains the lease in mode dhcp; nil: a netup.Client with its
	// defaults (RFC 2131 retransmission; gives up after about a minute
	// without a reply, failing the boot).
	DHCP       netup.DHCP
	ResolvConf string
}

// String names both modes' commands (it has no state to choose one). dhclient
// brings its interface up itself, as UpDHCP does.
func (Network) String() string {
	return "mode dhcp: dhclient -1; mode static: ip link set up && ip addr add && ip route add default"
}

// Run implements Step.
func (n Network) Run(ctx context.Context, s *State) error {
	if s.Config == nil {
		return errors.New("no config")
	}
	c := s.Config.Runtime.Network
	nc := netup.Config{Mode: c.Mode, Address: c.Address, Gateway: c.Gateway, DNS: c.DNS, ResolvConf: n.ResolvConf}
	switch c.Mode {
	case netup.ModeStatic:
		l, err := n.Link()
		if err != nil {
			return err
		}
		return netup.Up(l, nc)
	case netup.ModeDHCP:
		l, err := n.Link()
		if err != nil {
			return err
		}
		d := n.DHCP
		if d == nil {
			d = &netup.Client{}
		}
		lease, err := netup.UpDHCP(ctx, l, d, nc)
		if err != nil {
			return err
		}
		fmt.Fprintln(s.Log, "cocoon-init: "+leaseLine(lease, c.DNS))
		return nil
	default:
		return fmt.Errorf("network mode %q, want %q or %q", c.Mode, netup.ModeStatic, netup.ModeDHCP)
	}
}

// leaseLine is the console's account of a lease:
//
//	dhcp eth0: 10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3 from 10.0.2.2, lease 24h0m0s (not renewed)
//
// Renewal is not implemented (see netup.Lease), so the line says so.
func leaseLine(l *netup.Lease, configDNS []string) string {
	addr := (&net.IPNet{IP: l.Address, Mask: l.Mask}).String()
	gw := "none"
	if l.Router != nil {
		gw = l.Router.String()
	}
	dns := "none"
	switch {
	case len(configDNS) > 0:
		dns = strings.Join(configDNS, ",") + " (from the config)"
	case len(l.DNS) > 0:
		var s []string
		for _, d := range l.DNS {
			s = append(s, d.String())
		}
		dns = strings.Join(s, ",")
	}
	var d string
	switch l.Duration {
	case 0:
		d = "of unstated length"
	case netup.InfiniteLease:
		d = "infinite"
	default:
		d = l.Duration.String() + " (not renewed)"
	}
	return fmt.Sprintf("dhcp %s: %s gateway %s dns %s from %s, lease %s", l.Interface, addr, gw, dns, l.Server, d)
}
