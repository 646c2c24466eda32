package tdvf

import (
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/internal/testinputs"
)

// emptyVarStoreCFVDigest is the RTMR0 EV_EFI_PLATFORM_FIRMWARE_BLOB2 digest
// of OVMF's CFV as it appears in event logs captured from live TDs (BlobBase
// 0xffc00000, BlobLength 0x84000), and as Dstack hard-codes it
// (cfv_image_hash in Dstack-TEE/dstack dstack-mr/src/tdvf.rs). It is the
// SHA-384 of the empty 0x84000-byte variable store of a 4 MiB OVMF build, so
// it does not depend on the OVMF code: an external known answer for CFV.
const emptyVarStoreCFVDigest = "344bc51c980ba621aaa00da3ed7436f7d6e549197dfe699515dfa2c6583d95e6412af21c097d473155875ffd561d6790"

func TestCFVReal(t *testing.T) {
	fw := testinputs.Firmware(t)
	md, err := Parse(fw)
	if err != nil {
		t.Fatal(err)
	}
	cfv, err := md.CFV(fw)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum384(cfv)
	t.Logf("CFV: %#x bytes, SHA-384 %x", len(cfv), sum)
	if len(cfv) != 0x84000 {
		t.Errorf("CFV is %#x bytes, want 0x84000", len(cfv))
	}
	// A PI firmware volume header: "_FVH" at offset 40.
	if string(cfv[40:44]) != "_FVH" {
		t.Errorf("CFV does not start with a firmware volume header: % x", cfv[:48])
	}
	if got := hex.EncodeToString(sum[:]); got != emptyVarStoreCFVDigest {
		t.Errorf("SHA-384(CFV) = %s, want %s (captured from live TDs)", got, emptyVarStoreCFVDigest)
	}

	hob, err := md.TDHOB()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TD HOB at %#x, %#x bytes", hob.MemoryAddress, hob.MemoryDataSize)
	for _, s := range md.AcceptedRanges() {
		t.Logf("accepted by QEMU: %#x-%#x (%v)", s.MemoryAddress, s.End(), s.Type)
	}
}

func TestCFVSynthetic(t *testing.T) {
	im := smallImage()
	fw := im.build(t)
	md, err := Parse(fw)
	if err != nil {
		t.Fatal(err)
	}
	cfv, err := md.CFV(fw)
	if err != nil {
		t.Fatal(err)
	}
	if string(cfv) != string(fw[:0x4000]) || cap(cfv) != 0x4000 {
		t.Errorf("CFV = %d bytes (cap %d), want image[0:0x4000]", len(cfv), cap(cfv))
	}
	hob, err := md.TDHOB()
	if err != nil || hob.MemoryAddress != 0x809000 || hob.MemoryDataSize != 0x2000 {
		t.Errorf("TDHOB = %v, %v", hob, err)
	}
	var acc []uint64
	for _, s := range md.AcceptedRanges() {
		acc = append(acc, s.MemoryAddress)
	}
	if len(acc) != 3 || acc[0] != 0x811000 || acc[1] != 0x809000 || acc[2] != 0x800000 {
		t.Errorf("AcceptedRanges at %#x", acc)
	}

	// Errors: no CFV, two CFVs, CFV not filled from the image.
	two := &Metadata{Sections: append(append([]Section(nil), md.Sections...), md.Sections[1])}
	none := &Metadata{Sections: md.Sections[:1]}
	short := &Metadata{Sections: append([]Section(nil), md.Sections...)}
	short.Sections[1].MemoryDataSize = 0x5000
	for name, m := range map[string]*Metadata{"two": two, "none": none, "short": short} {
		if _, err := m.CFV(fw); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: CFV error = %v, want ErrUnsupported", name, err)
		}
	}
	if _, err := none.TDHOB(); !errors.Is(err, ErrUnsupported) {
		t.Errorf("TDHOB without a TD_HOB: %v", err)
	}
}
