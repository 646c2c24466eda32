package netup

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestUpNetns runs Up with real netlink in a fresh network namespace that
// holds lo and one end (eth0) of a veth pair; the other end stays in the
// test's namespace. The netlink handle is bound to the namespace
// (netlink.NewHandleAt), so no OS thread has to switch namespaces.
// Deleting the namespace removes both veth ends.
func TestUpNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("ip (iproute2) not installed")
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ns := fmt.Sprintf("cocoon-netup-%d", os.Getpid())
	peer := fmt.Sprintf("cnu%d", os.Getpid()%100000) // <= 15 bytes
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command(ipBin, "netns", "del", ns).Run() })
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
