package netup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Client defaults.
const (
	// DefaultTimeout is the wait for a reply to a first transmission
	// (RFC 2131 §4.1: "4 seconds" on a 10 Mb/s ethernet, randomized).
	DefaultTimeout = 4 * time.Second
	// DefaultAttempts is how often a message is sent before the client
	// gives up: with DefaultTimeout, waits of about 4+8+16+32 s, a minute.
	DefaultAttempts = 4
	// maxWait caps the doubled wait (RFC 2131 §4.1: "up to a maximum of 64
	// seconds").
	maxWait = 64 * time.Second
)

// Client is a DHCPv4 client (RFC 2131) over a raw packet socket: it sends
// DHCPDISCOVER, takes the first usable DHCPOFFER, sends DHCPREQUEST for it
// and returns the DHCPACK as a Lease. Messages are built and parsed with
// github.com/insomniacslk/dhcp/dhcpv4; the socket and the IPv4/UDP framing
// are ours (packet.go, udp4.go).
//
// Each message is retransmitted after a wait that doubles from Timeout up
// to 64 s, randomized by ±Timeout/4 (RFC 2131 §4.1: ±1 s around 4 s). A
// DHCPNAK restarts from DHCPDISCOVER with a new transaction ID (RFC 2131
// §3.1 step 5), at most Attempts times.
//
// Not done: the random 1 to 10 s delay before the first DHCPDISCOVER
// (RFC 2131 §4.4.1), which spreads clients booting together on one
// segment — a guest is alone on its virtual NIC; probing the address with
// ARP before using it (RFC 2131 §3.1 step 5, RFC 5227); renewal (see
// Lease).
type Client struct {
	Timeout  time.Duration // 0: DefaultTimeout
	Attempts int           // 0: DefaultAttempts
	// Rand supplies transaction IDs and the randomization of waits;
	// nil: crypto/rand.
	Rand io.Reader

	// open is the transport; nil: openPacket. Tests replace it.
	open func(*net.Interface) (conn, error)
}

var _ DHCP = (*Client)(nil)

// Request implements DHCP. It opens the packet socket in the calling
// thread's network namespace.
func (c *Client) Request(ctx context.Context, ifc *net.Interface) (*Lease, error) {
	if len(ifc.HardwareAddr) != 6 {
		return nil, fmt.Errorf("netup: dhcp on %s: hardware address %q, want a 6-byte ethernet address", ifc.Name, ifc.HardwareAddr)
	}
	open := c.open
	if open == nil {
		open = func(ifc *net.Interface) (conn, error) { return openPacket(ifc) }
	}
	cn, err := open(ifc)
	if err != nil {
		return nil, err
	}
	defer cn.close()

	x := &exchange{c: c, ifc: ifc, cn: cn}
	var nak string
	for range c.attempts() {
		ack, err := x.run(ctx)
		if err != nil {
			return nil, err
		}
		if ack.MessageType() == dhcpv4.MessageTypeNak {
			nak = fmt.Sprintf("DHCPNAK from %v: %q", ack.ServerIdentifier(), ack.Message())
			continue
		}
		return leaseFromAck(ifc.Name, ack), nil
	}
	return nil, fmt.Errorf("%w on %s: every DHCPREQUEST refused, last %s", ErrNoLease, ifc.Name, nak)
}

func (c *Client) attempts() int {
	if c.Attempts > 0 {
		return c.Attempts
	}
	return DefaultAttempts
}

func (c *Client) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

// wait is how long the client waits for a reply to transmission i (0 for
// the first): Timeout doubled i times, at most 64 s, plus a uniform
// random offset in [-Timeout/4, +Timeout/4] (RFC 2131 §4.1).
func (c *Client) wait(i int) (time.Duration, error) {
	t := c.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	w := t
	for range i {
		if w >= maxWait {
			break
		}
		w *= 2
	}
	w = min(w, maxWait)
	var r [2]byte
	if _, err := io.ReadFull(c.rand(), r[:]); err != nil {
		return 0, fmt.Errorf("netup: dhcp: random: %w", err)
	}
	// r/0xffff in [0, 1] maps the offset onto [-t/4, +t/4].
	jitter := time.Duration(float64(t/2)*float64(binary.BigEndian.Uint16(r[:]))/0xffff) - t/4
	return w + jitter, nil
}

// exchange is one DISCOVER/OFFER/REQUEST/ACK conversation.
type exchange struct {
	c   *Client
	ifc *net.Interface
	cn  conn
}

// run returns the server's DHCPACK or DHCPNAK to a DHCPREQUEST for the
// first usable DHCPOFFER.
func (x *exchange) run(ctx context.Context) (*dhcpv4.DHCPv4, error) {
	var xid dhcpv4.TransactionID
	if _, err := io.ReadFull(x.c.rand(), xid[:]); err != nil {
		return nil, fmt.Errorf("netup: dhcp: random: %w", err)
	}
	// The parameter request list (option 55) asks for mask, router, DNS
	// and lease time; servers send only what is asked for (RFC 2131 §4.3.1).
	want := dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
		dhcpv4.OptionDomainNameServer, dhcpv4.OptionIPAddressLeaseTime)
	discover, err := dhcpv4.NewDiscovery(x.ifc.HardwareAddr, dhcpv4.WithTransactionID(xid), want)
	if err != nil {
		return nil, fmt.Errorf("netup: dhcp on %s: DHCPDISCOVER: %w", x.ifc.Name, err)
	}
	offer, err := x.transact(ctx, discover, x.isOffer)
	if err != nil {
		return nil, err
	}
	// RFC 2131 §4.3.2, SELECTING: broadcast, ciaddr zero, the offered
	// address in option 50, the chosen server in option 54.
	request, err := dhcpv4.NewRequestFromOffer(offer, want, dhcpv4.WithClientIP(net.IPv4zero))
	if err != nil {
		return nil, fmt.Errorf("netup: dhcp on %s: DHCPREQUEST: %w", x.ifc.Name, err)
	}
	return x.transact(ctx, request, func(m *dhcpv4.DHCPv4) string { return x.isAnswer(offer, m) })
}

// transact sends msg until a reply passes accept (which returns why a
// reply does not fit, "" when it does), Attempts times.
func (x *exchange) transact(ctx context.Context, msg *dhcpv4.DHCPv4, accept func(*dhcpv4.DHCPv4) string) (*dhcpv4.DHCPv4, error) {
	b := msg.ToBytes()
	what := "DHCP" + msg.MessageType().String()
	var waited time.Duration
	ignored := ""
	for i := range x.c.attempts() {
		if err := x.cn.send(b); err != nil {
			return nil, err
		}
		w, err := x.c.wait(i)
		if err != nil {
			return nil, err
		}
		waited += w
		deadline := time.Now().Add(w)
		for {
			pkt, err := x.cn.recv(ctx, deadline)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w on %s: waiting for a reply to %s: %w", ErrNoLease, x.ifc.Name, what, ctx.Err())
			}
			if isTimeout(err) {
				break
			}
			if err != nil {
				return nil, err
			}
			m, err := dhcpv4.FromBytes(pkt)
			if err != nil {
				ignored = fmt.Sprintf("unreadable reply: %v", err)
				continue
			}
			if !x.ours(msg, m) {
				continue // another client's conversation: not worth reporting
			}
			if why := accept(m); why != "" {
				ignored = why
				continue
			}
			return m, nil
		}
	}
	err := fmt.Errorf("%w on %s: no reply to %d %ss in %v", ErrNoLease, x.ifc.Name, x.c.attempts(), what, waited.Round(time.Millisecond))
	if ignored != "" {
		err = fmt.Errorf("%w; last reply ignored: %s", err, ignored)
	}
	return nil, err
}

// ours: m is a reply to msg, a BOOTREPLY with msg's transaction ID and our
// hardware address (RFC 2131 §4.4.1: the client matches the xid; the
// hardware address too, as another client may draw the same xid).
func (x *exchange) ours(msg, m *dhcpv4.DHCPv4) bool {
	return m.OpCode == dhcpv4.OpcodeBootReply && m.TransactionID == msg.TransactionID &&
		bytes.Equal(m.ClientHWAddr, x.ifc.HardwareAddr)
}

// isOffer says why m is not a usable DHCPOFFER.
func (x *exchange) isOffer(m *dhcpv4.DHCPv4) string {
	if t := m.MessageType(); t != dhcpv4.MessageTypeOffer {
		return fmt.Sprintf("DHCP%s while waiting for DHCPOFFER", t)
	}
	if ip := m.YourIPAddr.To4(); ip == nil || ip.IsUnspecified() {
		return fmt.Sprintf("DHCPOFFER of address %v", m.YourIPAddr)
	}
	// The DHCPREQUEST names the chosen server by this option; without it
	// the request would read as INIT-REBOOT (RFC 2131 §4.3.2). Servers
	// MUST send it (§4.3.1, table 3).
	if m.ServerIdentifier() == nil {
		return "DHCPOFFER without a server identifier (option 54)"
	}
	return ""
}

// isAnswer says why m is not the chosen server's DHCPACK or DHCPNAK.
func (x *exchange) isAnswer(offer, m *dhcpv4.DHCPv4) string {
	t := m.MessageType()
	if t != dhcpv4.MessageTypeAck && t != dhcpv4.MessageTypeNak {
		return fmt.Sprintf("DHCP%s while waiting for DHCPACK", t)
	}
	// Other servers see the broadcast DHCPREQUEST too; only the chosen
	// one answers it (RFC 2131 §3.1 step 3). A server omitting the option
	// is taken at its word.
	if id := m.ServerIdentifier(); id != nil && !id.Equal(offer.ServerIdentifier()) {
		return fmt.Sprintf("DHCP%s from server %v, not the chosen %v", t, id, offer.ServerIdentifier())
	}
	if t == dhcpv4.MessageTypeAck {
		if ip := m.YourIPAddr.To4(); ip == nil || ip.IsUnspecified() {
			return fmt.Sprintf("DHCPACK of address %v", m.YourIPAddr)
		}
	}
	return ""
}

func leaseFromAck(ifname string, ack *dhcpv4.DHCPv4) *Lease {
	l := &Lease{
		Interface: ifname,
		Address:   ack.YourIPAddr.To4(),
		Mask:      ack.SubnetMask(),
		DNS:       ack.DNS(),
		Server:    ack.ServerIdentifier(),
		Duration:  ack.IPAddressLeaseTime(0),
	}
	if r := ack.Router(); len(r) > 0 {
		l.Router = r[0]
	}
	return l
}
