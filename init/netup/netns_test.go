package netup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// needIP skips the test unless it runs as root with iproute2's ip, and
// returns ip's path and a runner that fails the test on an error.
func needIP(t *testing.T) (string, func(args ...string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("ip (iproute2) not installed")
	}
	return ipBin, func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// TestUpNetns runs Up with real netlink in a fresh network namespace that
// holds lo and one end (eth0) of a veth pair; the other end stays in the
// test's namespace. The netlink handle is bound to the namespace
// (netlink.NewHandleAt), so no OS thread has to switch namespaces.
// Deleting the namespace removes both veth ends.
func TestUpNetns(t *testing.T) {
	ipBin, ip := needIP(t)
	ns := fmt.Sprintf("cocoon-netup-%d", os.Getpid())
	peer := fmt.Sprintf("cnu%d", os.Getpid()%100000) // <= 15 bytes
	addNetns(t, ipBin, ns)
	ip("link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns)
	ip("link", "set", peer, "up")

	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()

	c := Config{Mode: ModeStatic, Address: "10.99.0.2/24", Gateway: "10.99.0.1", DNS: []string{"10.99.0.53"},
		ResolvConf: filepath.Join(t.TempDir(), "resolv.conf")}
	if err := Up(nl, c); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"lo", "eth0"} {
		l, err := nl.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s is not up: %v", name, l.Attrs().Flags)
		}
	}
	eth0, _ := nl.LinkByName("eth0")
	addrs, err := nl.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.99.0.2/24" {
		t.Errorf("eth0 addresses %v, want 10.99.0.2/24", addrs)
	}
	routes, err := nl.RouteList(eth0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var def bool
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.Equal(net.ParseIP("10.99.0.1")) {
			def = true
		}
	}
	if !def {
		t.Errorf("no default route via 10.99.0.1 in %v", routes)
	}
	if b, err := os.ReadFile(c.ResolvConf); err != nil || !strings.Contains(string(b), "nameserver 10.99.0.53\n") {
		t.Errorf("resolv.conf %q, %v", b, err)
	}

	// A second Up on the configured machine fails (the address exists);
	// the init runs it once per boot.
	if err := Up(nl, c); err == nil {
		t.Error("second Up succeeded")
	}
}

// TestDHCPNetns runs the real Client and UpDHCP against an
// insomniacslk/dhcp server4 server across a veth pair between two fresh
// network namespaces: the server's end (srv0, 10.99.0.1/24) in one, the
// client's (eth0, no address) in the other. The packet socket is opened in
// the client's namespace by running the exchange on a thread switched into
// it (inNetns); the netlink handle is bound to it (NewHandleAt).
func TestDHCPNetns(t *testing.T) {
	ipBin, ip := needIP(t)
	srvNS := fmt.Sprintf("cocoon-dhcpd-%d", os.Getpid())
	cliNS := fmt.Sprintf("cocoon-dhcpc-%d", os.Getpid())
	addNetns(t, ipBin, srvNS)
	addNetns(t, ipBin, cliNS)
	ip("link", "add", "srv0", "netns", srvNS, "type", "veth", "peer", "name", "eth0", "netns", cliNS)
	ip("-n", srvNS, "addr", "add", "10.99.0.1/24", "dev", "srv0")
	ip("-n", srvNS, "link", "set", "srv0", "up")
	srvH, err := netns.GetFromName(srvNS)
	if err != nil {
		t.Fatal(err)
	}
	defer srvH.Close()
	cliH, err := netns.GetFromName(cliNS)
	if err != nil {
		t.Fatal(err)
	}
	defer cliH.Close()

	// The server: a DHCPOFFER for every DHCPDISCOVER, a DHCPACK for a
	// DHCPREQUEST of the offered address from this server, else a DHCPNAK.
	// server4 sends replies to a client without an address to
	// 255.255.255.255:68.
	var (
		mu   sync.Mutex
		seen []string
	)
	serverID := net.IPv4(10, 99, 0, 1).To4()
	leased := net.IPv4(10, 99, 0, 15).To4()
	handler := func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		mu.Lock()
		seen = append(seen, m.MessageType().String())
		mu.Unlock()
		var typ dhcpv4.MessageType
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			typ = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			typ = dhcpv4.MessageTypeNak
			if m.RequestedIPAddress().Equal(leased) && m.ServerIdentifier().Equal(serverID) {
				typ = dhcpv4.MessageTypeAck
			}
		default:
			return
		}
		r, err := dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(typ),
			dhcpv4.WithYourIP(leased),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithRouter(net.IPv4(10, 99, 0, 1)),
			dhcpv4.WithDNS(net.IPv4(10, 99, 0, 3)),
			dhcpv4.WithLeaseTime(3600),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverID)),
		)
		if err == nil {
			_, _ = conn.WriteTo(r.ToBytes(), peer)
		}
	}
	var srv *server4.Server
	inNetns(t, srvH, func() {
		srv, err = server4.NewServer("srv0", &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, handler)
	})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	stop := sync.OnceFunc(func() { _ = srv.Close(); <-served })
	t.Cleanup(stop)

	nl, err := netlink.NewHandleAt(cliH)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	var lease *Lease
	inNetns(t, cliH, func() {
		// Short waits keep the test quick should a message be lost (a
		// first DISCOVER may leave before the new link's queue is active).
		lease, err = UpDHCP(ctx, nl, &Client{Timeout: 250 * time.Millisecond, Attempts: 6}, Config{Mode: ModeDHCP, ResolvConf: resolv})
	})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Interface != "eth0" || !lease.Address.Equal(leased) || !lease.Server.Equal(serverID) || lease.Duration != time.Hour {
		t.Errorf("lease %+v", lease)
	}
	mu.Lock()
	if n := len(seen); n < 2 || seen[0] != "DISCOVER" || seen[n-1] != "REQUEST" {
		t.Errorf("server saw %v, want DISCOVERs then a REQUEST", seen)
	}
	mu.Unlock()

	eth0, err := nl.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if eth0.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("eth0 is not up: %v", eth0.Attrs().Flags)
	}
	addrs, err := nl.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.99.0.15/24" {
		t.Errorf("eth0 addresses %v, want 10.99.0.15/24", addrs)
	}
	routes, err := nl.RouteList(eth0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var def bool
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.Equal(net.IPv4(10, 99, 0, 1)) {
			def = true
		}
	}
	if !def {
		t.Errorf("no default route via 10.99.0.1 in %v", routes)
	}
	if b, err := os.ReadFile(resolv); err != nil || !strings.Contains(string(b), "nameserver 10.99.0.3\n") {
		t.Errorf("resolv.conf %q, %v", b, err)
	}

	// With the server gone, the client gives up with ErrNoLease naming the
	// interface. (The outcome does not depend on the waits' length.)
	stop()
	inNetns(t, cliH, func() {
		_, err = (&Client{Timeout: 20 * time.Millisecond, Attempts: 2}).Request(ctx, &net.Interface{Index: eth0.Attrs().Index, Name: "eth0", HardwareAddr: eth0.Attrs().HardwareAddr})
	})
	if !errors.Is(err, ErrNoLease) || !strings.Contains(err.Error(), "on eth0: no reply to 2 DHCPDISCOVERs") {
		t.Errorf("without a server: err = %v, want %v on eth0", err, ErrNoLease)
	}
}

// addNetns creates a named network namespace for the test, which is
// skipped where namespaces cannot be made (a container without
// CAP_SYS_ADMIN, a kernel without CONFIG_NET_NS).
func addNetns(t *testing.T, ipBin, name string) {
	t.Helper()
	if out, err := exec.Command(ipBin, "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("network namespaces unavailable: ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command(ipBin, "netns", "del", name).Run() })
}

// inNetns runs f on an OS thread switched into the network namespace ns,
// so the sockets f opens live there.
func inNetns(t *testing.T, ns netns.NsHandle, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime retires it with the
			// goroutine instead of reusing it in the wrong namespace.
			t.Errorf("back to the test's network namespace: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	f()
}
