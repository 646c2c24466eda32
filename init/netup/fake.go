package netup

import (
	"context"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// Fake is an in-memory Link for tests. Links are its interfaces; Up, Addrs
// and Routes record what was done; Fail makes the named call fail.
type Fake struct {
	Links  []netlink.Link
	Up     map[string]bool
	Addrs  map[string][]string
	Routes []netlink.Route
	Fail   map[string]error // "LinkSetUp", "AddrAdd", "RouteAdd", "LinkList", "LinkByName"
}

// NewFake returns a machine with lo and the given ethernet interfaces
// (indexes 2, 3, ... in order).
func NewFake(eth ...string) *Fake {
	f := &Fake{Up: map[string]bool{}, Addrs: map[string][]string{}, Fail: map[string]error{}}
	f.Links = append(f.Links, &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo", EncapType: "loopback"}})
	for i, n := range eth {
		f.Links = append(f.Links, &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: i + 2, Name: n, EncapType: "ether"}})
	}
	return f
}

// LinkList implements Link.
func (f *Fake) LinkList() ([]netlink.Link, error) {
	if err := f.Fail["LinkList"]; err != nil {
		return nil, err
	}
	return f.Links, nil
}

// LinkByName implements Link.
func (f *Fake) LinkByName(name string) (netlink.Link, error) {
	if err := f.Fail["LinkByName"]; err != nil {
		return nil, err
	}
	for _, l := range f.Links {
		if l.Attrs().Name == name {
			return l, nil
		}
	}
	return nil, netlink.LinkNotFoundError{}
}

// LinkSetUp implements Link.
func (f *Fake) LinkSetUp(l netlink.Link) error {
	if err := f.Fail["LinkSetUp"]; err != nil {
		return err
	}
	f.Up[l.Attrs().Name] = true
	return nil
}

// AddrAdd implements Link.
func (f *Fake) AddrAdd(l netlink.Link, a *netlink.Addr) error {
	if err := f.Fail["AddrAdd"]; err != nil {
		return err
	}
	f.Addrs[l.Attrs().Name] = append(f.Addrs[l.Attrs().Name], a.IPNet.String())
	return nil
}

// RouteAdd implements Link. Like the kernel, it refuses a gateway that no
// address of the link's reaches.
func (f *Fake) RouteAdd(r *netlink.Route) error {
	if err := f.Fail["RouteAdd"]; err != nil {
		return err
	}
	var name string
	for _, l := range f.Links {
		if l.Attrs().Index == r.LinkIndex {
			name = l.Attrs().Name
		}
	}
	for _, a := range f.Addrs[name] {
		if _, n, _ := net.ParseCIDR(a); n != nil && n.Contains(r.Gw) {
			f.Routes = append(f.Routes, *r)
			return nil
		}
	}
	return fmt.Errorf("fake: gateway %s unreachable from %s", r.Gw, name)
}

// FakeDHCP is a DHCP for tests: Request records the interface and returns
// Lease (a copy, with Interface set) or Err.
type FakeDHCP struct {
	Lease *Lease
	Err   error
	Asked []string // interfaces asked for, in order
}

// Request implements DHCP.
func (f *FakeDHCP) Request(_ context.Context, ifc *net.Interface) (*Lease, error) {
	f.Asked = append(f.Asked, ifc.Name)
	if f.Err != nil {
		return nil, f.Err
	}
	l := *f.Lease
	l.Interface = ifc.Name
	return &l, nil
}
