package netup

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The DHCP client talks over a packet socket, below the kernel's IP stack,
// because until the lease is applied the interface has no address to send
// from or to receive on (RFC 2131 §4.1: the client sends from 0.0.0.0 and
// may receive replies addressed to the address it is being offered). So it
// frames its own IPv4 (RFC 791) and UDP (RFC 768) headers.

const (
	ipv4HeaderLen = 20 // without options; what the client sends
	udpHeaderLen  = 8
	protoUDP      = 17
)

// errDatagram: a received packet is not an IPv4 UDP datagram the client can
// read; the client skips it.
var errDatagram = errors.New("not a whole IPv4/UDP datagram")

// datagram is one UDP datagram over IPv4.
type datagram struct {
	src, dst     [4]byte
	sport, dport uint16
	payload      []byte
}

// encode returns the IPv4 packet carrying d: a 20-byte header, TTL 64, no
// fragmentation, both checksums set.
func (d datagram) encode() ([]byte, error) {
	total := ipv4HeaderLen + udpHeaderLen + len(d.payload)
	if total > 0xffff {
		return nil, fmt.Errorf("netup: %d-byte UDP payload does not fit an IPv4 packet", len(d.payload))
	}
	b := make([]byte, total)
	ip := b[:ipv4HeaderLen]
	ip[0] = 4<<4 | ipv4HeaderLen/4 // version, IHL in 32-bit words
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	ip[8] = 64 // TTL
	ip[9] = protoUDP
	copy(ip[12:16], d.src[:])
	copy(ip[16:20], d.dst[:])
	binary.BigEndian.PutUint16(ip[10:], ^checksum(0, ip))

	u := b[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(u[0:], d.sport)
	binary.BigEndian.PutUint16(u[2:], d.dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[udpHeaderLen:], d.payload)
	sum := ^checksum(pseudoHeaderSum(d.src, d.dst, len(u)), u)
	if sum == 0 {
		sum = 0xffff // RFC 768: a computed 0 is sent as all ones; 0 means "none"
	}
	binary.BigEndian.PutUint16(u[6:], sum)
	return b, nil
}

// decodeDatagram reads an IPv4 packet as a packet socket of type SOCK_DGRAM
// returns it (no link-layer header). It refuses anything but an
// unfragmented UDP datagram within the bytes given, and a header whose
// checksum is wrong.
//
// The UDP checksum is not checked: a datagram from the same host or a
// virtual NIC (veth, virtio-net with offload) reaches the packet socket
// before the checksum is filled in (CHECKSUM_PARTIAL), which is why ISC
// dhclient reports "bad udp checksums" on such links. The DHCP layer
// checks the transaction ID and the client's hardware address instead.
func decodeDatagram(b []byte) (datagram, error) {
	var d datagram
	if len(b) < ipv4HeaderLen {
		return d, fmt.Errorf("%w: %d bytes, shorter than an IPv4 header", errDatagram, len(b))
	}
	if v := b[0] >> 4; v != 4 {
		return d, fmt.Errorf("%w: IP version %d, want 4", errDatagram, v)
	}
	hl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if hl < ipv4HeaderLen || total < hl+udpHeaderLen || total > len(b) {
		return d, fmt.Errorf("%w: header length %d, total length %d, %d bytes read", errDatagram, hl, total, len(b))
	}
	if checksum(0, b[:hl]) != 0xffff {
		return d, fmt.Errorf("%w: bad IPv4 header checksum", errDatagram)
	}
	// More fragments, or an offset: the client would have to reassemble;
	// DHCP replies fit one packet (RFC 2131 §2: 576 bytes at least).
	if frag := binary.BigEndian.Uint16(b[6:]); frag&0x3fff != 0 {
		return d, fmt.Errorf("%w: a fragment", errDatagram)
	}
	if b[9] != protoUDP {
		return d, fmt.Errorf("%w: protocol %d, want UDP (17)", errDatagram, b[9])
	}
	copy(d.src[:], b[12:16])
	copy(d.dst[:], b[16:20])
	u := b[hl:total]
	ulen := int(binary.BigEndian.Uint16(u[4:]))
	if ulen < udpHeaderLen || ulen > len(u) {
		return d, fmt.Errorf("%w: UDP length %d in a %d-byte IP payload", errDatagram, ulen, len(u))
	}
	d.sport = binary.BigEndian.Uint16(u[0:])
	d.dport = binary.BigEndian.Uint16(u[2:])
	d.payload = u[udpHeaderLen:ulen]
	return d, nil
}

// pseudoHeaderSum is the sum over the IPv4 pseudo header the UDP checksum
// covers (RFC 768).
func pseudoHeaderSum(src, dst [4]byte, udpLen int) uint32 {
	var ph [12]byte
	copy(ph[0:4], src[:])
	copy(ph[4:8], dst[:])
	ph[9] = protoUDP
	binary.BigEndian.PutUint16(ph[10:], uint16(udpLen))
	return uint32(checksum(0, ph[:]))
}

// checksum is the ones' complement sum of b in 16-bit words, added to
// initial (RFC 1071); an odd last byte is padded with zero. A header with
// its checksum field set sums to 0xffff.
func checksum(initial uint32, b []byte) uint16 {
	sum := initial
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
