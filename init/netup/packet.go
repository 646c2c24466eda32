package netup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// conn carries DHCP messages between the client (port 68) and any server
// (port 67) on one interface.
type conn interface {
	// send broadcasts one DHCP message from 0.0.0.0:68 to
	// 255.255.255.255:67 (RFC 2131 §4.1).
	send(msg []byte) error
	// recv returns the next DHCP message sent to port 68. It returns an
	// error wrapping os.ErrDeadlineExceeded at the deadline, and ctx.Err()
	// once ctx is done.
	recv(ctx context.Context, deadline time.Time) ([]byte, error)
	close() error
}

// packetConn is a conn over an AF_PACKET socket of type SOCK_DGRAM
// (packet(7)): the kernel adds and strips the ethernet header, the client
// frames IPv4 and UDP itself (udp4.go).
type packetConn struct {
	f   *os.File // non-blocking, so read deadlines work through the runtime poller
	ifc *net.Interface
	buf []byte
}

// htons puts a 16-bit protocol number in network byte order, as the
// sockaddr_ll and socket(2) arguments of packet(7) take it.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openPacket opens a packet socket for IPv4 on ifc, in the calling thread's
// network namespace.
func openPacket(ifc *net.Interface) (*packetConn, error) {
	// Protocol 0 receives nothing until bind names the protocol and the
	// interface, so no packet from another interface slips in between.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("netup: dhcp on %s: packet socket: %w", ifc.Name, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifc.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netup: dhcp on %s: bind packet socket to index %d: %w", ifc.Name, ifc.Index, err)
	}
	return &packetConn{f: os.NewFile(uintptr(fd), "packet:"+ifc.Name), ifc: ifc, buf: make([]byte, 1<<16)}, nil
}

func (c *packetConn) send(msg []byte) error {
	pkt, err := datagram{
		src: [4]byte{}, dst: [4]byte{255, 255, 255, 255},
		sport: dhcpv4.ClientPort, dport: dhcpv4.ServerPort, payload: msg,
	}.encode()
	if err != nil {
		return err
	}
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: c.ifc.Index, Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // ethernet broadcast
	rc, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), pkt, 0, to)
		return serr != unix.EAGAIN
	}); err != nil {
		return fmt.Errorf("netup: dhcp on %s: send: %w", c.ifc.Name, err)
	}
	if serr != nil {
		return fmt.Errorf("netup: dhcp on %s: send: %w", c.ifc.Name, serr)
	}
	return nil
}

func (c *packetConn) recv(ctx context.Context, deadline time.Time) ([]byte, error) {
	// Cancelling ctx moves the deadline to now, which wakes the read.
	// The deadline is set after the hook is registered and ctx checked
	// after both, so a cancellation is never overwritten unseen.
	stop := context.AfterFunc(ctx, func() { _ = c.f.SetReadDeadline(time.Now()) })
	defer stop()
	if err := c.f.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	rc, err := c.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		if err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), c.buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("netup: dhcp on %s: receive: %w", c.ifc.Name, err)
		}
		if rerr != nil {
			return nil, fmt.Errorf("netup: dhcp on %s: receive: %w", c.ifc.Name, rerr)
		}
		// A packet socket also sees the packets this host sends, and
		// others' unicast when the NIC is promiscuous.
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && (ll.Pkttype == unix.PACKET_OUTGOING || ll.Pkttype == unix.PACKET_OTHERHOST) {
			continue
		}
		d, err := decodeDatagram(c.buf[:n])
		if err != nil || d.sport != dhcpv4.ServerPort || d.dport != dhcpv4.ClientPort {
			continue
		}
		return append([]byte(nil), d.payload...), nil
	}
}

func (c *packetConn) close() error { return c.f.Close() }

var _ conn = (*packetConn)(nil)

// isTimeout: the wait for a reply ran out.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
