package tdvf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/internal/testinputs"
)

// maxFuzzPages bounds the work per fuzz input: a section may legitimately
// describe gigabytes of guest memory, which MRTD would walk page by page.
const maxFuzzPages = 1 << 12

// FuzzParse checks that Parse never panics, that it returns one of its
// sentinel errors, that what it accepts satisfies its documented invariants,
// and that MRTD agrees with the reference loop whenever it accepts the
// metadata.
func FuzzParse(f *testing.F) {
	f.Add([]byte{})
	small := smallImage()
	f.Add(small.build(f))
	extra := smallImage()
	extra.extraEntry = true
	f.Add(extra.build(f))
	tiny := image{size: 0x3000, sections: []Section{
		{DataOffset: 0x1000, RawDataSize: 0x2000, MemoryAddress: 0xffffe000, MemoryDataSize: 0x2000, Type: BFV, Attributes: AttrMRExtend},
		{DataOffset: 0, RawDataSize: 0x1000, MemoryAddress: 0xffffd000, MemoryDataSize: 0x1000, Type: CFV},
		{MemoryAddress: 0x1000, MemoryDataSize: 0x1000, Type: TDHOB},
	}}
	f.Add(tiny.build(f))
	// testdata/fuzz/FuzzParse holds the tail of the real OVMF.fd (see
	// TestWriteFuzzSeeds).
	f.Fuzz(func(t *testing.T, fw []byte) {
		md, err := Parse(fw)
		if err != nil {
			if !errors.Is(err, ErrNoMetadata) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v wraps neither ErrNoMetadata nor ErrMalformed", err)
			}
			return
		}
		var pages uint64
		for i, s := range md.Sections {
			if s.MemoryAddress%pageSize != 0 || s.MemoryDataSize%pageSize != 0 || s.MemoryDataSize == 0 {
				t.Fatalf("section %d accepted unaligned: %v", i, s)
			}
			if uint64(s.DataOffset)+uint64(s.RawDataSize) > uint64(len(fw)) {
				t.Fatalf("section %d accepted beyond the image: %v", i, s)
			}
			pages += s.MemoryDataSize / pageSize
		}
		if pages > maxFuzzPages {
			return
		}
		for _, o := range orderings {
			m, err := MRTD(fw, md, o)
			if err != nil {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("MRTD of parsed metadata: %v", err)
				}
				return
			}
			if want := referenceMRTD(fw, md.Sections, o == TwoPass); m != want {
				t.Fatalf("%v: MRTD %x, reference %x", o, m, want)
			}
		}
	})
}

// TestWriteFuzzSeeds writes the committed seeds: the last 4 KiB of the real
// OVMF.fd (GUIDed table, TDVF descriptor and sections; the section offsets
// then point outside the input, which exercises the bounds checks), and the
// same with its sections moved inside it. Run with COCOON_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("COCOON_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set COCOON_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzParse")
	}
	fw := testinputs.Firmware(t)
	tail := append([]byte(nil), fw[len(fw)-0x1000:]...)
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ovmf-tail-4k", tail)

	md, err := Parse(fw)
	if err != nil {
		t.Fatal(err)
	}
	moved := append([]byte(nil), tail...)
	sec := md.Offset - (len(fw) - len(tail)) + descriptorLen
	for i, s := range md.Sections {
		switch s.Type {
		case BFV: // the whole tail, mapped just below 4 GiB
			s.DataOffset, s.RawDataSize, s.MemoryAddress, s.MemoryDataSize = 0, 0x1000, 0xfffff000, 0x1000
		case CFV: // the same bytes, one page lower
			s.DataOffset, s.RawDataSize, s.MemoryAddress, s.MemoryDataSize = 0, 0x1000, 0xffffe000, 0x1000
		}
		b := moved[sec+i*sectionLen:]
		binary.LittleEndian.PutUint32(b[0:], s.DataOffset)
		binary.LittleEndian.PutUint32(b[4:], s.RawDataSize)
		binary.LittleEndian.PutUint64(b[8:], s.MemoryAddress)
		binary.LittleEndian.PutUint64(b[16:], s.MemoryDataSize)
	}
	if _, err := Parse(moved); err != nil {
		t.Fatalf("relocated tail: %v", err)
	}
	write("ovmf-tail-4k-relocated", moved)
}
