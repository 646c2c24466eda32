package tdvf

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/internal/testinputs"
)

func TestGUIDRoundTrip(t *testing.T) {
	for _, s := range []string{"96b582de-1fb2-45f7-baea-a366c55a082d", "e47a6535-984a-4798-865e-4685a7bf8ec2"} {
		g := mustGUID(s)
		if got := formatGUID(g[:]); got != s {
			t.Errorf("formatGUID(mustGUID(%s)) = %s", s, got)
		}
	}
	// EFI byte order: the first field is little endian.
	if g := mustGUID("96b582de-1fb2-45f7-baea-a366c55a082d"); g[0] != 0xde || g[3] != 0x96 || g[8] != 0xba {
		t.Errorf("mustGUID byte order: % x", g)
	}
}

// TestParseReal checks the pinned Debian OVMF.fd: the sections must be the
// ones OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm lays out, at the places
// the flash mapping implies.
func TestParseReal(t *testing.T) {
	fw := testinputs.Firmware(t)
	md, err := Parse(fw)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TDVF metadata v%d at %#x (end-%#x), %d sections:", md.Version, md.Offset, len(fw)-md.Offset, len(md.Sections))
	count := map[SectionType]int{}
	for i, s := range md.Sections {
		t.Logf("  [%d] %v", i, s)
		count[s.Type]++
		if s.PageAug() {
			t.Errorf("section %d (%v) has PAGE.AUG; OVMF sets none", i, s.Type)
		}
		if wantExtend := s.Type == BFV; s.MRExtend() != wantExtend {
			t.Errorf("section %d (%v): MR.EXTEND = %v, want %v", i, s.Type, s.MRExtend(), wantExtend)
		}
		if s.RawDataSize != 0 {
			// -bios maps the image so that it ends at 4 GiB.
			if want := uint64(1<<32) - uint64(len(fw)) + uint64(s.DataOffset); s.MemoryAddress != want {
				t.Errorf("section %d (%v) at GPA %#x, want %#x (image offset %#x mapped below 4 GiB)",
					i, s.Type, s.MemoryAddress, want, s.DataOffset)
			}
			if uint64(s.RawDataSize) != s.MemoryDataSize {
				t.Errorf("section %d (%v): RawDataSize %#x != MemoryDataSize %#x", i, s.Type, s.RawDataSize, s.MemoryDataSize)
			}
		}
	}
	for typ, want := range map[SectionType]int{BFV: 1, CFV: 1, TDHOB: 1} {
		if count[typ] != want {
			t.Errorf("%d %v sections, want %d", count[typ], typ, want)
		}
	}
	if count[TempMem] == 0 {
		t.Error("no TempMem section")
	}
	if n := count[BFV] + count[CFV] + count[TDHOB] + count[TempMem]; n != len(md.Sections) {
		t.Errorf("%d sections of other types", len(md.Sections)-n)
	}
	bfv, _ := md.only(BFV)
	if end := uint64(bfv.DataOffset) + uint64(bfv.RawDataSize); end != uint64(len(fw)) {
		t.Errorf("BFV ends at image offset %#x, want the end of the image %#x (it holds the reset vector)", end, len(fw))
	}
	if md.Offset < int(bfv.DataOffset) {
		t.Errorf("metadata at %#x lies outside the BFV (from %#x): it would not be measured", md.Offset, bfv.DataOffset)
	}
}

func TestParseSynthetic(t *testing.T) {
	for _, tc := range []struct {
		name string
		im   image
	}{
		{"plain", smallImage()},
		{"foreign entry before ours", func() image { im := smallImage(); im.extraEntry = true; return im }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fw := tc.im.build(t)
			md, err := Parse(fw)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(md.Sections, tc.im.sections) {
				t.Errorf("sections:\n got %v\nwant %v", md.Sections, tc.im.sections)
			}
			if md.Version != 1 || string(fw[md.Offset:md.Offset+4]) != "TDVF" {
				t.Errorf("version %d, offset %#x", md.Version, md.Offset)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	mod := func(f func(*image)) []byte {
		im := smallImage()
		f(&im)
		return im.build(t)
	}
	sec := func(i int, f func(*Section)) []byte {
		return mod(func(im *image) {
			im.sections = append([]Section(nil), im.sections...)
			f(&im.sections[i])
		})
	}
	good := smallImage().build(t)
	for _, tc := range []struct {
		name string
		fw   []byte
		want error
		msg  string // part of the message
	}{
		{"empty", nil, ErrNoMetadata, "want at least"},
		{"truncated to 32 bytes", good[len(good)-32:], ErrNoMetadata, "want at least"},
		{"truncated at the front", good[0x8000:], ErrMalformed, "ends beyond the image"},
		{"truncated at the end", good[:len(good)-1], ErrNoMetadata, "footer GUID"},
		{"no footer", mod(func(im *image) { im.noFooter = true }), ErrNoMetadata, "footer GUID"},
		{"no offset entry", mod(func(im *image) { im.noOffsetEnt = true; im.extraEntry = true }), ErrNoMetadata, "no TDX metadata offset entry"},
		{"table length too short", mod(func(im *image) { im.tableLen = 3 }), ErrMalformed, "OVMF table length 3"},
		{"table length too long", mod(func(im *image) { im.tableLen = 0xffff }), ErrMalformed, "OVMF table length"},
		{"entry longer than table", mod(func(im *image) { im.tableLen = 18 + 20 }), ErrMalformed, "has length 22"},
		{"table shorter than an entry", mod(func(im *image) { im.tableLen = 18 + 10 }), ErrNoMetadata, "no TDX metadata offset entry"},
		{"offset beyond image", mod(func(im *image) { im.metaBack = 0x20000 }), ErrMalformed, "TDX metadata offset 0x20000"},
		{"offset too small", mod(func(im *image) { im.metaBack = 8 }), ErrMalformed, "TDX metadata offset 0x8"},
		{"bad signature", mod(func(im *image) { im.signature = "OVMF" }), ErrMalformed, `signature "OVMF", want "TDVF"`},
		{"version 2", mod(func(im *image) { im.version = 2 }), ErrMalformed, "version 2, want 1"},
		{"zero sections", mod(func(im *image) { im.sections = nil; im.length = 16 }), ErrMalformed, "0 sections"},
		{"length mismatch", mod(func(im *image) { im.length = 16 + 32*4 }), ErrMalformed, "length 144, want 176"},
		{"sections beyond image", mod(func(im *image) {
			im.sections, im.count, im.length = im.sections[:1], 5, 176
			im.metaAt = im.size - footerGUIDFromEnd - 2 - 22 - 48 // room for one section only
		}), ErrMalformed, "need 176 bytes, image has 120 left"},
		{"huge count", mod(func(im *image) { im.count = 1 << 26; im.length = 16 + 32<<26 }), ErrMalformed, "need 2147483664 bytes"},
		{"count overflowing length", mod(func(im *image) { im.count = 1 << 27 }), ErrMalformed, "want 4294967312"},
		{"unknown type", sec(2, func(s *Section) { s.Type = 7 }), ErrMalformed, "unknown type 7"},
		{"unknown attribute", sec(2, func(s *Section) { s.Attributes = 4 }), ErrMalformed, "unknown bits 0x4"},
		{"extend and aug", sec(0, func(s *Section) { s.Attributes = AttrMRExtend | AttrPageAug }), ErrMalformed, "both MR.EXTEND and PAGE.AUG"},
		{"unaligned address", sec(2, func(s *Section) { s.MemoryAddress += 0x800 }), ErrMalformed, "not 4 KiB aligned"},
		{"unaligned size", sec(2, func(s *Section) { s.MemoryDataSize = 0x1800 }), ErrMalformed, "multiple of 4 KiB"},
		{"zero size", sec(2, func(s *Section) { s.MemoryDataSize = 0 }), ErrMalformed, "non-zero"},
		{"address overflow", sec(2, func(s *Section) { s.MemoryAddress = 1<<64 - 0x1000 }), ErrMalformed, "52-bit"},
		{"raw larger than memory", sec(1, func(s *Section) { s.MemoryDataSize = 0x2000 }), ErrMalformed, "exceeds MemoryDataSize"},
		{"BFV without data", sec(0, func(s *Section) { s.RawDataSize = 0 }), ErrMalformed, "RawDataSize is 0"},
		{"TempMem with data", sec(2, func(s *Section) { s.RawDataSize = 0x1000 }), ErrMalformed, "memory-only"},
		{"unaligned data offset", sec(1, func(s *Section) { s.DataOffset = 0x10 }), ErrMalformed, "DataOffset 0x10"},
		{"section beyond file", sec(0, func(s *Section) { s.DataOffset = 0x8000 }), ErrMalformed, "ends beyond the image"},
		{"section offset overflow", sec(0, func(s *Section) { s.DataOffset = 0xfffff000 }), ErrMalformed, "ends beyond the image"},
		{"overlapping ranges", sec(2, func(s *Section) { s.MemoryAddress = 0x80a000 }), ErrMalformed, "overlaps"},
		{"same range", sec(4, func(s *Section) { s.MemoryAddress, s.MemoryDataSize = 0x809000, 0x2000 }), ErrMalformed, "overlaps"},
		{"no BFV", sec(0, func(s *Section) { s.Type = CFV; s.Attributes = 0 }), ErrMalformed, "no BFV"},
		{"two TD_HOBs", sec(2, func(s *Section) { s.Type = TDHOB }), ErrMalformed, "2 TD_HOB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md, err := Parse(tc.fw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, %v; want %v", md, err, tc.want)
			}
			if other := map[error]error{ErrMalformed: ErrNoMetadata, ErrNoMetadata: ErrMalformed}[tc.want]; errors.Is(err, other) {
				t.Errorf("error %v is also %v", err, other)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}
