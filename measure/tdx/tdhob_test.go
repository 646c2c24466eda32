package tdx

import (
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/internal/testinputs"
	"github.com/cocoon-appliance/cocoon/measure/tdvf"
)

// The TDVF layout of Debian's OVMF 2025.02: TD_HOB at 0x809000 (8 KiB)
// among the TempMem sections. The values below are only a fixture for the
// layout logic; the real sections come from measure/tdvf.
var fixtureAccepted = []Range{{0x800000, 0x809000}, {0x809000, 0x80b000}, {0x80b000, 0x810000}}

func TestRAMRanges(t *testing.T) {
	for _, tc := range []struct {
		mib  uint64
		want []Range
	}{
		{2048, []Range{{0, 2048 << 20}}},
		{2815, []Range{{0, 2815 << 20}}},
		{2816, []Range{{0, 0x80000000}, {fourGiB, fourGiB + (2816-2048)<<20}}},
		{16384, []Range{{0, 0x80000000}, {fourGiB, fourGiB + (16384-2048)<<20}}},
	} {
		got := ramRanges(tc.mib << 20)
		if len(got) != len(tc.want) {
			t.Fatalf("%d MiB: %v, want %v", tc.mib, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%d MiB: %v, want %v", tc.mib, got, tc.want)
			}
		}
	}
}

func TestTDHOBLayout(t *testing.T) {
	hob, err := TDHOB(0x809000, 4096<<20, fixtureAccepted)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	// RAM [0,2G) split around the three accepted sections, plus [4G,6G):
	// [0,8M) unaccepted, three accepted, [0x810000,2G) unaccepted, high RAM.
	const n = 6
	if len(hob) != handoffLen+n*resourceLen {
		t.Fatalf("HOB is %d bytes, want %d", len(hob), handoffLen+n*resourceLen)
	}
	if le.Uint16(hob[0:]) != 1 || le.Uint16(hob[2:]) != 56 || le.Uint32(hob[8:]) != 9 {
		t.Fatalf("PHIT header % x", hob[:16])
	}
	if got, want := le.Uint64(hob[48:]), uint64(0x809000+len(hob)+8); got != want {
		t.Fatalf("EfiEndOfHobList = %#x, want %#x", got, want)
	}
	type res struct {
		typ           uint32
		start, length uint64
	}
	want := []res{
		{7, 0, 0x800000},
		{0, 0x800000, 0x9000}, {0, 0x809000, 0x2000}, {0, 0x80b000, 0x5000},
		{7, 0x810000, 0x80000000 - 0x810000},
		{7, fourGiB, 2048 << 20},
	}
	for i, w := range want {
		r := hob[handoffLen+i*resourceLen:]
		got := res{le.Uint32(r[24:]), le.Uint64(r[32:]), le.Uint64(r[40:])}
		if le.Uint16(r[0:]) != 3 || le.Uint16(r[2:]) != 48 || le.Uint32(r[28:]) != 7 || got != w {
			t.Errorf("resource %d = %+v (hdr % x), want %+v", i, got, r[:4], w)
		}
	}
}

func TestTDHOBBadSection(t *testing.T) {
	if _, err := TDHOB(0x809000, 4<<20, fixtureAccepted); !errors.Is(err, ErrLayout) {
		t.Fatalf("section beyond RAM: %v", err)
	}
}

// TestTDHOBKnownAnswers: SHA-384 of the TD HOB for the pinned OVMF.fd's
// sections at four memory sizes (below, at and above q35's 2816 MiB split).
// The values were computed by an independent Python transliteration of
// dstack-mr's measure_td_hob (Dstack-TEE/dstack, dstack-mr/src/tdvf.rs; the
// Rust original is empirically matched to TDX hardware by its authors) over
// the same sections, and agree with TDHOB; the script is not part of the
// repository (its code would be dstack's).
func TestTDHOBKnownAnswers(t *testing.T) {
	fw := testinputs.Firmware(t)
	md, err := tdvf.Parse(fw)
	if err != nil {
		t.Fatal(err)
	}
	hobSec, err := md.TDHOB()
	if err != nil {
		t.Fatal(err)
	}
	var acc []Range
	for _, s := range md.AcceptedRanges() {
		acc = append(acc, Range{s.MemoryAddress, s.End()})
	}
	for _, tc := range []struct {
		mib  uint64
		want string
	}{
		{2048, "0e35f1b315ba6c912cf791e5c79dd9d3a2b8704516aa27d4e5aa78fb09ede04aef2bbd02ac7a8734c48562b9c26ba35d"},
		{2816, "3d4bd514230f69783c7318328fb67e634a5e765235761ca199ff128ef1431b7d0140b08a659f8234e26ccf804bf22538"},
		{4096, "02a008e63d55a77823c04a5513a5810d4e592dc41bf2596267c09eae5d4b4e3b329ae614973fb192297d8833d37a08fd"},
		{16384, "794385a0fd4ad1933f2f10bc019228fe275b82a90d9cd73a0561ba3b3cc7ecfae40b1771fd78dc19a34a094bd4a5286b"},
	} {
		hob, err := TDHOB(hobSec.MemoryAddress, tc.mib<<20, acc)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha512.Sum384(hob); hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("%d MiB: TD HOB sha384 %x, want %s", tc.mib, got, tc.want)
		}
	}
}
