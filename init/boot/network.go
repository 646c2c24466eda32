package boot

import (
	"context"
	"errors"
	"fmt"

	"github.com/cocoon-appliance/cocoon/init/netup"
)

// Network configures the interface from the runtime config.
type Network struct {
	Link       func() (netup.Link, error)
	ResolvConf string
}

func (Network) String() string { return "ip link set up && ip addr add && ip route add default" }

// Run implements Step.
func (n Network) Run(_ context.Context, s *State) error {
	if s.Config == nil {
		return errors.New("no config")
	}
	c := s.Config.Runtime.Network
	switch c.Mode {
	case "static":
	case "dhcp":
		return fmt.Errorf("network mode dhcp is not implemented yet; configure a static address")
	default:
		return fmt.Errorf("network mode %q", c.Mode)
	}
	l, err := n.Link()
	if err != nil {
		return err
	}
	return netup.Up(l, netup.Config{Mode: "static", Address: c.Address, Gateway: c.Gateway, DNS: c.DNS, ResolvConf: n.ResolvConf})
}
