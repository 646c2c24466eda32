package netup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// RFC 1071 §3 works the sum of 00 01 f2 03 f4 f5 f6 f7 by hand: ddf2.
func TestChecksumRFC1071(t *testing.T) {
	if got := checksum(0, []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != 0xddf2 {
		t.Errorf("checksum = %#04x, want 0xddf2", got)
	}
	if got := checksum(0, []byte{0x00, 0x01, 0xf2}); got != 0xf201 {
		t.Errorf("odd length: checksum = %#04x, want 0xf201 (last byte padded)", got)
	}
}

func TestDatagramRoundTrip(t *testing.T) {
	for _, payload := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0xab}, 300)} {
		d := datagram{src: [4]byte{0, 0, 0, 0}, dst: [4]byte{255, 255, 255, 255}, sport: 68, dport: 67, payload: payload}
		b, err := d.encode()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 28+len(payload) || b[0] != 0x45 || b[8] != 64 || b[9] != 17 {
			t.Errorf("header % x", b[:28])
		}
		// Both checksums verify (RFC 791, RFC 768): the sum over the
		// header, and over pseudo header and datagram, is all ones.
		if checksum(0, b[:20]) != 0xffff {
			t.Errorf("IPv4 header checksum does not verify: % x", b[:20])
		}
		if checksum(pseudoHeaderSum(d.src, d.dst, len(b)-20), b[20:]) != 0xffff {
			t.Errorf("UDP checksum does not verify")
		}
		got, err := decodeDatagram(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.src != d.src || got.dst != d.dst || got.sport != 68 || got.dport != 67 || !bytes.Equal(got.payload, payload) {
			t.Errorf("decoded %+v, want %+v", got, d)
		}
	}
	if _, err := (datagram{payload: make([]byte, 0xffff)}).encode(); err == nil {
		t.Error("an oversized payload was framed")
	}
}

func TestDecodeDatagramRefuses(t *testing.T) {
	good := func() []byte {
		b, err := datagram{src: [4]byte{10, 0, 2, 2}, dst: [4]byte{255, 255, 255, 255}, sport: 67, dport: 68, payload: []byte("dhcp")}.encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// reseal fixes the IPv4 header checksum after an edit.
	reseal := func(b []byte) []byte {
		hl := int(b[0]&0x0f) * 4
		b[10], b[11] = 0, 0
		binary.BigEndian.PutUint16(b[10:], ^checksum(0, b[:hl]))
		return b
	}
	for _, tc := range []struct {
		name   string
		edit   func(b []byte) []byte
		errHas string
	}{
		{"short", func(b []byte) []byte { return b[:19] }, "shorter than an IPv4 header"},
		{"IPv6", func(b []byte) []byte { b[0] = 0x65; return reseal(b) }, "IP version 6"},
		{"header length 16", func(b []byte) []byte { b[0] = 0x44; return b }, "header length 16"},
		{"header longer than packet", func(b []byte) []byte { b[0] = 0x4f; return b }, "header length 60"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, "total length 32, 31 bytes"},
		{"bad header checksum", func(b []byte) []byte { b[8] = 1; return b }, "bad IPv4 header checksum"},
		{"first fragment", func(b []byte) []byte { b[6] = 0x20; return reseal(b) }, "a fragment"},
		{"later fragment", func(b []byte) []byte { b[7] = 1; return reseal(b) }, "a fragment"},
		{"TCP", func(b []byte) []byte { b[9] = 6; return reseal(b) }, "protocol 6"},
		{"UDP length past the packet", func(b []byte) []byte { b[25] = 13; return b }, "UDP length 13 in a 12-byte"},
		{"UDP length below its header", func(b []byte) []byte { b[25] = 7; return b }, "UDP length 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeDatagram(tc.edit(good()))
			if !errors.Is(err, errDatagram) || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("err = %v, want %v containing %q", err, errDatagram, tc.errHas)
			}
		})
	}
	// With the DF bit (which is not fragmentation) and IP options, and
	// ethernet padding after the datagram, it is read.
	b := good()
	b[6] = 0x40
	b = append(b, 0, 0, 0, 0) // padding beyond the total length
	d, err := decodeDatagram(reseal(b))
	if err != nil || string(d.payload) != "dhcp" {
		t.Errorf("DF and padding: %+v, %v", d, err)
	}
	opt := good()
	opt = append(opt[:20:20], append([]byte{1, 1, 1, 0}, opt[20:]...)...) // NOP NOP NOP EOL
	opt[0] = 0x46
	binary.BigEndian.PutUint16(opt[2:], uint16(len(opt)))
	if d, err := decodeDatagram(reseal(opt)); err != nil || string(d.payload) != "dhcp" || d.sport != 67 {
		t.Errorf("IP options: %+v, %v", d, err)
	}
}

// FuzzDecodeDatagram: whatever arrives on the packet socket, decoding does
// not panic, and what it accepts encodes back to a datagram it reads the
// same.
func FuzzDecodeDatagram(f *testing.F) {
	b, err := datagram{src: [4]byte{10, 0, 2, 2}, dst: [4]byte{255, 255, 255, 255}, sport: 67, dport: 68, payload: []byte("dhcp")}.encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDatagram(b)
		if err != nil {
			return
		}
		b2, err := d.encode()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := decodeDatagram(b2)
		if err != nil || d2.src != d.src || d2.dst != d.dst || d2.sport != d.sport || d2.dport != d.dport || !bytes.Equal(d2.payload, d.payload) {
			t.Fatalf("re-encoded %+v read as %+v, %v", d, d2, err)
		}
	})
}
