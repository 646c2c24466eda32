package netup

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var (
	testHW     = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56} // QEMU's default MAC
	slirpIP    = net.IPv4(10, 0, 2, 15).To4()
	slirpSrvID = net.IPv4(10, 0, 2, 2).To4()
)

// script answers the n-th message the client sent (from 0) with packets.
type script func(n int, m *dhcpv4.DHCPv4) [][]byte

// fakeConn is a conn without a clock: recv returns the packets the script
// queued in answer to what was sent, then a timeout at once.
type fakeConn struct {
	t       *testing.T
	script  script
	sent    []*dhcpv4.DHCPv4
	queue   [][]byte
	sendErr error
	closed  bool
}

func (c *fakeConn) send(b []byte) error {
	if c.sendErr != nil {
		return c.sendErr
	}
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		c.t.Fatalf("client sent an unreadable message: %v", err)
	}
	c.queue = append(c.queue, c.script(len(c.sent), m)...)
	c.sent = append(c.sent, m)
	return nil
}

func (c *fakeConn) recv(ctx context.Context, _ time.Time) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(c.queue) == 0 {
		return nil, os.ErrDeadlineExceeded
	}
	p := c.queue[0]
	c.queue = c.queue[1:]
	return p, nil
}

func (c *fakeConn) close() error { c.closed = true; return nil }

// counter is a deterministic Rand: bytes 0, 1, 2, ...
type counter struct{ n byte }

func (c *counter) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = c.n
		c.n++
	}
	return len(b), nil
}

// answer is a server's reply of type t to m as QEMU's slirp makes it, with
// mods applied last.
func answer(t testing.TB, m *dhcpv4.DHCPv4, typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) []byte {
	t.Helper()
	r, err := dhcpv4.NewReplyFromRequest(m, append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(slirpIP),
		dhcpv4.WithServerIP(slirpSrvID),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(net.IPv4(10, 0, 2, 2)),
		dhcpv4.WithDNS(net.IPv4(10, 0, 2, 3)),
		dhcpv4.WithLeaseTime(86400),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(slirpSrvID)),
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r.ToBytes()
}

// slirp answers every DISCOVER with an OFFER and every REQUEST with an ACK.
func slirp(t *testing.T) script {
	return func(_ int, m *dhcpv4.DHCPv4) [][]byte {
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			return [][]byte{answer(t, m, dhcpv4.MessageTypeOffer)}
		case dhcpv4.MessageTypeRequest:
			return [][]byte{answer(t, m, dhcpv4.MessageTypeAck)}
		}
		return nil
	}
}

// except answers message n with what, and the rest as s does.
func except(s script, n int, what func(m *dhcpv4.DHCPv4) [][]byte) script {
	return func(i int, m *dhcpv4.DHCPv4) [][]byte {
		if i == n {
			return what(m)
		}
		return s(i, m)
	}
}

func TestClient(t *testing.T) {
	srv9 := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 2, 9)))
	nak := func(m *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) []byte {
		return answer(t, m, dhcpv4.MessageTypeNak, append([]dhcpv4.Modifier{dhcpv4.WithYourIP(net.IPv4zero),
			dhcpv4.WithGeneric(dhcpv4.OptionMessage, []byte("address taken"))}, mods...)...)
	}
	for _, tc := range []struct {
		name     string
		attempts int
		script   script
		sent     string // message types the client sent, in order
		err      error
		errHas   string
		server   string // on success: the lease's server
	}{
		{name: "slirp", script: slirp(t), sent: "DISCOVER REQUEST", server: "10.0.2.2"},
		{name: "first DISCOVER lost", script: except(slirp(t), 0, func(*dhcpv4.DHCPv4) [][]byte { return nil }),
			sent: "DISCOVER DISCOVER REQUEST", server: "10.0.2.2"},
		{name: "DHCPREQUEST lost", script: except(slirp(t), 1, func(*dhcpv4.DHCPv4) [][]byte { return nil }),
			sent: "DISCOVER REQUEST REQUEST", server: "10.0.2.2"},
		{name: "others' replies and junk skipped",
			script: except(slirp(t), 0, func(m *dhcpv4.DHCPv4) [][]byte {
				otherXID := answer(t, m, dhcpv4.MessageTypeOffer, dhcpv4.WithTransactionID(dhcpv4.TransactionID{9, 9, 9, 9}))
				otherMAC := answer(t, m, dhcpv4.MessageTypeOffer, dhcpv4.WithHwAddr(net.HardwareAddr{2, 0, 0, 0, 0, 1}))
				echo := m.ToBytes() // a BOOTREQUEST, e.g. another client's
				return [][]byte{[]byte("not DHCP"), otherXID, otherMAC, echo, answer(t, m, dhcpv4.MessageTypeOffer)}
			}),
			sent: "DISCOVER REQUEST", server: "10.0.2.2"},
		{name: "ACK while selecting skipped",
			script: except(slirp(t), 0, func(m *dhcpv4.DHCPv4) [][]byte {
				return [][]byte{answer(t, m, dhcpv4.MessageTypeAck), answer(t, m, dhcpv4.MessageTypeOffer)}
			}),
			sent: "DISCOVER REQUEST", server: "10.0.2.2"},
		{name: "first of two offers taken",
			script: except(slirp(t), 0, func(m *dhcpv4.DHCPv4) [][]byte {
				return [][]byte{answer(t, m, dhcpv4.MessageTypeOffer), answer(t, m, dhcpv4.MessageTypeOffer, srv9, dhcpv4.WithYourIP(net.IPv4(10, 0, 2, 99)))}
			}),
			sent: "DISCOVER REQUEST", server: "10.0.2.2"},
		{name: "another server's ACK and NAK skipped",
			script: except(slirp(t), 1, func(m *dhcpv4.DHCPv4) [][]byte {
				return [][]byte{answer(t, m, dhcpv4.MessageTypeAck, srv9), nak(m, srv9), answer(t, m, dhcpv4.MessageTypeAck)}
			}),
			sent: "DISCOVER REQUEST", server: "10.0.2.2"},
		{name: "NAK restarts", script: except(slirp(t), 1, func(m *dhcpv4.DHCPv4) [][]byte { return [][]byte{nak(m)} }),
			sent: "DISCOVER REQUEST DISCOVER REQUEST", server: "10.0.2.2"},

		{name: "no server", script: func(int, *dhcpv4.DHCPv4) [][]byte { return nil },
			sent: "DISCOVER DISCOVER DISCOVER DISCOVER", err: ErrNoLease, errHas: "no DHCP lease on eth0: no reply to 4 DHCPDISCOVERs in "},
		{name: "no ACK", attempts: 2, script: func(_ int, m *dhcpv4.DHCPv4) [][]byte {
			if m.MessageType() == dhcpv4.MessageTypeDiscover {
				return slirp(t)(0, m)
			}
			return nil
		}, sent: "DISCOVER REQUEST REQUEST", err: ErrNoLease, errHas: "on eth0: no reply to 2 DHCPREQUESTs"},
		{name: "every REQUEST refused", attempts: 2, script: func(_ int, m *dhcpv4.DHCPv4) [][]byte {
			if m.MessageType() == dhcpv4.MessageTypeRequest {
				return [][]byte{nak(m)}
			}
			return slirp(t)(0, m)
		}, sent: "DISCOVER REQUEST DISCOVER REQUEST", err: ErrNoLease, errHas: `on eth0: every DHCPREQUEST refused, last DHCPNAK from 10.0.2.2: "address taken"`},
		{name: "offer without server identifier", attempts: 1, script: func(_ int, m *dhcpv4.DHCPv4) [][]byte {
			return [][]byte{answer(t, m, dhcpv4.MessageTypeOffer, dhcpv4.WithoutOption(dhcpv4.OptionServerIdentifier))}
		}, sent: "DISCOVER", err: ErrNoLease, errHas: "last reply ignored: DHCPOFFER without a server identifier (option 54)"},
		{name: "offer of no address", attempts: 1, script: func(_ int, m *dhcpv4.DHCPv4) [][]byte {
			return [][]byte{answer(t, m, dhcpv4.MessageTypeOffer, dhcpv4.WithYourIP(net.IPv4zero))}
		}, sent: "DISCOVER", err: ErrNoLease, errHas: "last reply ignored: DHCPOFFER of address 0.0.0.0"},
		{name: "unreadable reply", attempts: 1, script: except(slirp(t), 0, func(m *dhcpv4.DHCPv4) [][]byte {
			b := answer(t, m, dhcpv4.MessageTypeOffer)
			b[236] ^= 0xff // the magic cookie (RFC 2131 §3)
			return [][]byte{b}
		}), sent: "DISCOVER", err: ErrNoLease, errHas: "last reply ignored: unreadable reply: malformed DHCP packet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := &fakeConn{t: t, script: tc.script}
			c := &Client{Attempts: tc.attempts, Rand: &counter{}, open: func(ifc *net.Interface) (conn, error) { return fc, nil }}
			lease, err := c.Request(context.Background(), &net.Interface{Index: 2, Name: "eth0", HardwareAddr: testHW})
			var sent []string
			for _, m := range fc.sent {
				sent = append(sent, m.MessageType().String())
			}
			if got := strings.Join(sent, " "); got != tc.sent {
				t.Errorf("sent %s, want %s", got, tc.sent)
			}
			if !fc.closed {
				t.Error("socket not closed")
			}
			checkMessages(t, fc.sent)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := &Lease{Interface: "eth0", Address: slirpIP, Mask: net.CIDRMask(24, 32), Router: net.IPv4(10, 0, 2, 2).To4(),
				DNS: []net.IP{net.IPv4(10, 0, 2, 3).To4()}, Server: net.ParseIP(tc.server).To4(), Duration: 24 * time.Hour}
			if lease.Interface != want.Interface || !lease.Address.Equal(want.Address) || lease.Mask.String() != want.Mask.String() ||
				!lease.Router.Equal(want.Router) || len(lease.DNS) != 1 || !lease.DNS[0].Equal(want.DNS[0]) ||
				!lease.Server.Equal(want.Server) || lease.Duration != want.Duration {
				t.Errorf("lease %+v, want %+v", lease, want)
			}
		})
	}
}

// checkMessages checks what RFC 2131 asks of the client's messages.
func checkMessages(t *testing.T, sent []*dhcpv4.DHCPv4) {
	t.Helper()
	var discover, request *dhcpv4.DHCPv4
	for _, m := range sent {
		if m.OpCode != dhcpv4.OpcodeBootRequest || m.ClientHWAddr.String() != testHW.String() || !m.ClientIPAddr.Equal(net.IPv4zero) {
			t.Errorf("%s: op %v chaddr %v ciaddr %v, want BOOTREQUEST from %v with ciaddr 0 (§4.3.2 table 5)",
				m.MessageType(), m.OpCode, m.ClientHWAddr, m.ClientIPAddr, testHW)
		}
		for _, o := range []dhcpv4.OptionCode{dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer, dhcpv4.OptionIPAddressLeaseTime} {
			if !m.IsOptionRequested(o) {
				t.Errorf("%s does not request %v", m.MessageType(), o)
			}
		}
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			// A retransmission keeps the xid, a restart after a NAK
			// draws a new one.
			if discover != nil && (request == nil) != (m.TransactionID == discover.TransactionID) {
				t.Errorf("DISCOVER xid %v after DISCOVER %v and REQUEST %v", m.TransactionID, discover.TransactionID, request)
			}
			discover, request = m, nil
		case dhcpv4.MessageTypeRequest:
			// SELECTING: the DISCOVER's xid, the offered address (option
			// 50) and the chosen server (option 54).
			if discover == nil || m.TransactionID != discover.TransactionID {
				t.Errorf("REQUEST xid %v, want the DISCOVER's", m.TransactionID)
			}
			if !m.RequestedIPAddress().Equal(slirpIP) || !m.ServerIdentifier().Equal(slirpSrvID) {
				t.Errorf("REQUEST for %v from %v, want %v from %v", m.RequestedIPAddress(), m.ServerIdentifier(), slirpIP, slirpSrvID)
			}
			request = m
		default:
			t.Errorf("client sent a %s", m.MessageType())
		}
	}
}

func TestClientFailures(t *testing.T) {
	ifc := &net.Interface{Index: 2, Name: "eth0", HardwareAddr: testHW}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errSend := errors.New("ENETDOWN")
	errOpen := errors.New("EPERM")
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		ifc    *net.Interface
		rand   io.Reader
		conn   *fakeConn
		open   error
		err    []error
		errHas string
	}{
		{name: "cancelled", ctx: ctx, err: []error{ErrNoLease, context.Canceled}, errHas: "on eth0: waiting for a reply to DHCPDISCOVER"},
		{name: "send fails", conn: &fakeConn{sendErr: errSend}, err: []error{errSend}},
		{name: "open fails", open: errOpen, err: []error{errOpen}},
		{name: "no randomness", rand: strings.NewReader(""), errHas: "random"},
		{name: "no hardware address", ifc: &net.Interface{Index: 2, Name: "eth0"}, errHas: "on eth0: hardware address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ctx == nil {
				tc.ctx = context.Background()
			}
			if tc.ifc == nil {
				tc.ifc = ifc
			}
			if tc.rand == nil {
				tc.rand = &counter{}
			}
			if tc.conn == nil {
				tc.conn = &fakeConn{script: slirp(t)}
			}
			tc.conn.t = t
			c := &Client{Rand: tc.rand, open: func(*net.Interface) (conn, error) {
				if tc.open != nil {
					return nil, tc.open
				}
				return tc.conn, nil
			}}
			_, err := c.Request(tc.ctx, tc.ifc)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err = %v, want one containing %q", err, tc.errHas)
			}
			for _, e := range tc.err {
				if !errors.Is(err, e) {
					t.Errorf("err = %v, want %v", err, e)
				}
			}
		})
	}
}

// fixed is a Rand that always reads b.
type fixed byte

func (f fixed) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(f)
	}
	return len(b), nil
}

func TestClientWait(t *testing.T) {
	for _, tc := range []struct {
		timeout time.Duration
		rand    byte
		i       int
		want    time.Duration
	}{
		{0, 0x00, 0, 3 * time.Second}, // DefaultTimeout 4 s, -1 s (RFC 2131 §4.1)
		{0, 0xff, 0, 5 * time.Second}, // +1 s
		{0, 0x00, 1, 7 * time.Second},
		{0, 0xff, 3, 33 * time.Second},
		{0, 0x00, 4, 63 * time.Second}, // 64 s cap
		{0, 0xff, 9, 65 * time.Second},
		{100 * time.Millisecond, 0x00, 0, 75 * time.Millisecond},
		{100 * time.Millisecond, 0xff, 2, 425 * time.Millisecond},
		{time.Minute, 0x00, 3, 64*time.Second - 15*time.Second},
	} {
		c := &Client{Timeout: tc.timeout, Rand: fixed(tc.rand)}
		if got, err := c.wait(tc.i); err != nil || got != tc.want {
			t.Errorf("Timeout %v, random %#x: wait(%d) = %v, %v; want %v", tc.timeout, tc.rand, tc.i, got, err, tc.want)
		}
	}
}

// FuzzClientReply gives the client arbitrary bytes as every reply: it must
// not panic (it runs in PID 1) and must not take a lease from junk.
func FuzzClientReply(f *testing.F) {
	// Seeds: an OFFER and an ACK with the xid the counter Rand produces.
	m, err := dhcpv4.NewDiscovery(testHW, dhcpv4.WithTransactionID(dhcpv4.TransactionID{0, 1, 2, 3}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(answer(f, m, dhcpv4.MessageTypeOffer))
	f.Add(answer(f, m, dhcpv4.MessageTypeAck))
	f.Add(answer(f, m, dhcpv4.MessageTypeNak))
	f.Fuzz(func(t *testing.T, b []byte) {
		fc := &fakeConn{t: t, script: func(int, *dhcpv4.DHCPv4) [][]byte { return [][]byte{b} }}
		c := &Client{Attempts: 1, Rand: &counter{}, open: func(*net.Interface) (conn, error) { return fc, nil }}
		lease, err := c.Request(context.Background(), &net.Interface{Index: 2, Name: "eth0", HardwareAddr: testHW})
		if err == nil {
			// The same bytes passed as OFFER and as ACK: still checked.
			_, _ = leasePlan(lease)
		} else if !errors.Is(err, ErrNoLease) {
			t.Fatalf("err = %v, want %v", err, ErrNoLease)
		}
	})
}
