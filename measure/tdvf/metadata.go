package tdvf

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors. Every error Parse returns wraps exactly one of them.
var (
	// ErrNoMetadata: the image is not a TDVF image (no OVMF GUIDed table
	// footer, or no TDX metadata offset entry in the table).
	ErrNoMetadata = errors.New("tdvf: no TDVF metadata")
	// ErrMalformed: the image claims TDVF metadata but it is inconsistent.
	ErrMalformed = errors.New("tdvf: malformed TDVF metadata")
	// ErrUnsupported: the metadata is well formed, but asks for something the
	// modelled VMM (QEMU) does not do, or does in a way we do not predict.
	ErrUnsupported = errors.New("tdvf: unsupported TDVF metadata")
)

// GUIDs of the OVMF reset-vector GUIDed table (OvmfPkg/ResetVector/
// Ia16/ResetVectorVtf0.asm) as QEMU looks them up (hw/i386/pc_sysfw_ovmf.c,
// hw/i386/tdvf.c). Stored in EFI byte order.
var (
	tableFooterGUID    = mustGUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	tdxMetadataOffGUID = mustGUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
)

const (
	// footerGUIDFromEnd: the footer GUID starts 48 bytes before the end of
	// the image ("48 bytes before the end of the flash file", QEMU
	// pc_system_parse_ovmf_flash); the last 32 bytes are the reset vector.
	footerGUIDFromEnd = 48
	guidLen           = 16
	entryTrailerLen   = 2 + guidLen // uint16 length + GUID after each entry's data

	signature      = "TDVF"
	descriptorLen  = 16 // Signature, Length, Version, NumberOfSectionEntries
	sectionLen     = 32
	versionV1      = 1
	pageSize       = 0x1000
	maxGPA         = 1 << 52 // TDX GPAW is at most 52 bits
	knownAttrsMask = AttrMRExtend | AttrPageAug
)

// SectionType is a TDVF metadata section type (TDVF Design Guide, table
// "TDVF_SECTION.Type"; td-shim's metadata.rs for the values above 3).
type SectionType uint32

// Section types.
const (
	BFV          SectionType = 0 // boot firmware volume: the code, measured into MRTD
	CFV          SectionType = 1 // configuration firmware volume: the UEFI variable store
	TDHOB        SectionType = 2 // TD hand-off block written by the VMM
	TempMem      SectionType = 3 // temporary memory (stack, heap, mailbox, page tables)
	PermMem      SectionType = 4 // permanent memory (td-shim)
	Payload      SectionType = 5 // kernel image (td-shim)
	PayloadParam SectionType = 6 // kernel parameters (td-shim)
)

var typeNames = [...]string{"BFV", "CFV", "TD_HOB", "TempMem", "PermMem", "Payload", "PayloadParam"}

func (t SectionType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("SectionType(%d)", uint32(t))
}

func (t SectionType) known() bool { return int(t) < len(typeNames) }

// hasData reports whether sections of this type carry bytes from the image.
// TD_HOB, TempMem and PermMem are memory the VMM provides; RawDataSize must
// be 0 (TDVF Design Guide; QEMU tdvf_parse_and_check_section_entry).
func (t SectionType) hasData() bool { return t == BFV || t == CFV || t == Payload || t == PayloadParam }

// Section attribute bits (TDVF Design Guide, "TDVF_SECTION.Attributes").
const (
	AttrMRExtend uint32 = 1 << 0 // the VMM measures the pages with TDH.MR.EXTEND
	AttrPageAug  uint32 = 1 << 1 // the VMM may add the pages after launch with TDH.MEM.PAGE.AUG
)

// Section is one TDVF_SECTION entry, fields as in the TDVF Design Guide.
type Section struct {
	DataOffset     uint32 // offset of the section's bytes in the image
	RawDataSize    uint32 // number of bytes in the image (0 for memory-only sections)
	MemoryAddress  uint64 // guest physical address, page aligned
	MemoryDataSize uint64 // size in guest memory, page aligned, >= RawDataSize
	Type           SectionType
	Attributes     uint32
}

// MRExtend reports whether the section's pages are extended into MRTD.
func (s Section) MRExtend() bool { return s.Attributes&AttrMRExtend != 0 }

// PageAug reports whether the section may be added after launch (unmeasured).
func (s Section) PageAug() bool { return s.Attributes&AttrPageAug != 0 }

// End is the first guest physical address after the section.
func (s Section) End() uint64 { return s.MemoryAddress + s.MemoryDataSize }

func (s Section) String() string {
	var attrs []string
	if s.MRExtend() {
		attrs = append(attrs, "MR.EXTEND")
	}
	if s.PageAug() {
		attrs = append(attrs, "PAGE.AUG")
	}
	if rest := s.Attributes &^ knownAttrsMask; rest != 0 {
		attrs = append(attrs, fmt.Sprintf("%#x", rest))
	}
	a := "-"
	if len(attrs) > 0 {
		a = strings.Join(attrs, "|")
	}
	return fmt.Sprintf("%-7s gpa=%#08x size=%#08x file=%#08x+%#08x attr=%s",
		s.Type, s.MemoryAddress, s.MemoryDataSize, s.DataOffset, s.RawDataSize, a)
}

// Metadata is the parsed TDVF metadata of a firmware image.
type Metadata struct {
	Version uint32
	// Offset is where the "TDVF" descriptor starts in the image.
	Offset   int
	Sections []Section
}

// Parse finds and validates the TDVF metadata of an OVMF/TDVF image.
//
// The location follows QEMU (hw/i386/pc_sysfw_ovmf.c, hw/i386/tdvf.c): the
// OVMF GUIDed table ends with a uint16 total length and the footer GUID, 48
// bytes before the end of the image; entries are walked backwards from there,
// each being data, a uint16 length of the whole entry, and a GUID. The data
// of the TDX metadata offset entry is a uint32: the distance from the end of
// the image back to the TDVF descriptor.
func Parse(fw []byte) (*Metadata, error) {
	off, err := locate(fw)
	if err != nil {
		return nil, err
	}
	return parseAt(fw, off)
}

// locate returns the image offset of the TDVF descriptor.
func locate(fw []byte) (int, error) {
	n := len(fw)
	if n < footerGUIDFromEnd+2 {
		return 0, fmt.Errorf("%w: image is %d bytes, want at least %d for the OVMF table footer",
			ErrNoMetadata, n, footerGUIDFromEnd+2)
	}
	if uint64(n) > 1<<32-1 {
		// QEMU keeps the flash size in 32 bits (tdvf_get_metadata).
		return 0, fmt.Errorf("%w: image is %d bytes, want at most 4 GiB - 1", ErrMalformed, n)
	}
	footer := n - footerGUIDFromEnd
	if got := fw[footer : footer+guidLen]; string(got) != string(tableFooterGUID[:]) {
		return 0, fmt.Errorf("%w: no OVMF table footer GUID at end-%d: found %s, want %s",
			ErrNoMetadata, footerGUIDFromEnd, formatGUID(got), formatGUID(tableFooterGUID[:]))
	}
	// The footer's length counts the footer itself (length + GUID).
	total := int(binary.LittleEndian.Uint16(fw[footer-2:]))
	tableLen := total - entryTrailerLen
	tableEnd := footer - 2
	if tableLen < 0 || tableLen > tableEnd {
		return 0, fmt.Errorf("%w: OVMF table length %d, want between %d and %d",
			ErrMalformed, total, entryTrailerLen, tableEnd+entryTrailerLen)
	}
	for end, left := tableEnd, tableLen; left >= entryTrailerLen; {
		guid := fw[end-guidLen : end]
		elen := int(binary.LittleEndian.Uint16(fw[end-entryTrailerLen:]))
		if elen < entryTrailerLen || elen > left {
			return 0, fmt.Errorf("%w: OVMF table entry %s at %#x has length %d, want between %d and %d",
				ErrMalformed, formatGUID(guid), end-entryTrailerLen, elen, entryTrailerLen, left)
		}
		start := end - elen
		if string(guid) == string(tdxMetadataOffGUID[:]) {
			data := fw[start : end-entryTrailerLen]
			if len(data) < 4 {
				return 0, fmt.Errorf("%w: TDX metadata offset entry holds %d bytes, want 4",
					ErrMalformed, len(data))
			}
			// QEMU reads the uint32 at the start of the entry's data.
			back := binary.LittleEndian.Uint32(data)
			if back < descriptorLen || uint64(back) > uint64(n) {
				return 0, fmt.Errorf("%w: TDX metadata offset %#x from the end, want between %#x and the image size %#x",
					ErrMalformed, back, descriptorLen, n)
			}
			return n - int(back), nil
		}
		end, left = start, left-elen
	}
	return 0, fmt.Errorf("%w: OVMF table has no TDX metadata offset entry (GUID %s)",
		ErrNoMetadata, formatGUID(tdxMetadataOffGUID[:]))
}

func parseAt(fw []byte, off int) (*Metadata, error) {
	d := fw[off:]
	if len(d) < descriptorLen {
		return nil, fmt.Errorf("%w: descriptor at %#x needs %d bytes, image has %d left",
			ErrMalformed, off, descriptorLen, len(d))
	}
	if got := string(d[:4]); got != signature {
		return nil, fmt.Errorf("%w: descriptor at %#x has signature %q, want %q", ErrMalformed, off, got, signature)
	}
	length := binary.LittleEndian.Uint32(d[4:])
	version := binary.LittleEndian.Uint32(d[8:])
	count := binary.LittleEndian.Uint32(d[12:])
	if version != versionV1 {
		return nil, fmt.Errorf("%w: descriptor version %d, want %d", ErrMalformed, version, versionV1)
	}
	if count == 0 {
		return nil, fmt.Errorf("%w: descriptor has 0 sections, want at least 1", ErrMalformed)
	}
	if want := uint64(descriptorLen) + uint64(count)*sectionLen; uint64(length) != want {
		return nil, fmt.Errorf("%w: descriptor length %d, want %d for %d sections",
			ErrMalformed, length, want, count)
	}
	if uint64(length) > uint64(len(d)) {
		return nil, fmt.Errorf("%w: %d sections at %#x need %d bytes, image has %d left",
			ErrMalformed, count, off, length, len(d))
	}
	md := &Metadata{Version: version, Offset: off, Sections: make([]Section, count)}
	for i := range md.Sections {
		b := d[descriptorLen+i*sectionLen:]
		s := Section{
			DataOffset:     binary.LittleEndian.Uint32(b[0:]),
			RawDataSize:    binary.LittleEndian.Uint32(b[4:]),
			MemoryAddress:  binary.LittleEndian.Uint64(b[8:]),
			MemoryDataSize: binary.LittleEndian.Uint64(b[16:]),
			Type:           SectionType(binary.LittleEndian.Uint32(b[24:])),
			Attributes:     binary.LittleEndian.Uint32(b[28:]),
		}
		if err := s.check(len(fw)); err != nil {
			return nil, fmt.Errorf("%w: section %d (%s): %s", ErrMalformed, i, s.Type, err)
		}
		md.Sections[i] = s
	}
	if err := md.checkSet(); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, err)
	}
	return md, nil
}

// check validates one section on its own. The rules are the TDVF Design
// Guide's, plus what QEMU (tdvf_parse_and_check_section_entry) and KVM
// (KVM_TDX_INIT_MEM_REGION wants page-aligned source, GPA and a non-zero page
// count) enforce.
func (s Section) check(imageLen int) error {
	switch {
	case !s.Type.known():
		return fmt.Errorf("unknown type %d, want 0..%d", uint32(s.Type), len(typeNames)-1)
	case s.Attributes&^knownAttrsMask != 0:
		return fmt.Errorf("attributes %#x have unknown bits %#x", s.Attributes, s.Attributes&^knownAttrsMask)
	case s.MRExtend() && s.PageAug():
		return errors.New("both MR.EXTEND and PAGE.AUG set: a page added after launch cannot be extended into MRTD")
	case s.MemoryAddress%pageSize != 0:
		return fmt.Errorf("MemoryAddress %#x is not 4 KiB aligned", s.MemoryAddress)
	case s.MemoryDataSize == 0 || s.MemoryDataSize%pageSize != 0:
		return fmt.Errorf("MemoryDataSize %#x, want a non-zero multiple of 4 KiB", s.MemoryDataSize)
	case s.MemoryDataSize > maxGPA || s.MemoryAddress > maxGPA-s.MemoryDataSize:
		return fmt.Errorf("memory %#x+%#x ends beyond the 52-bit guest physical address space",
			s.MemoryAddress, s.MemoryDataSize)
	case uint64(s.RawDataSize) > s.MemoryDataSize:
		return fmt.Errorf("RawDataSize %#x exceeds MemoryDataSize %#x", s.RawDataSize, s.MemoryDataSize)
	case (s.Type == BFV || s.Type == CFV) && s.RawDataSize == 0:
		return errors.New("RawDataSize is 0, want the section's bytes in the image")
	case !s.Type.hasData() && s.RawDataSize != 0:
		return fmt.Errorf("RawDataSize %#x, want 0 for a memory-only section", s.RawDataSize)
	case s.RawDataSize != 0 && s.DataOffset%pageSize != 0:
		return fmt.Errorf("DataOffset %#x is not 4 KiB aligned", s.DataOffset)
	case uint64(s.DataOffset)+uint64(s.RawDataSize) > uint64(imageLen):
		return fmt.Errorf("data %#x+%#x ends beyond the image (%#x bytes)", s.DataOffset, s.RawDataSize, imageLen)
	}
	return nil
}

// checkSet validates the sections together: at least one BFV, at most one
// TD_HOB, and no two sections sharing guest memory.
func (md *Metadata) checkSet() error {
	var bfv, hob int
	for _, s := range md.Sections {
		switch s.Type {
		case BFV:
			bfv++
		case TDHOB:
			hob++
		}
	}
	if bfv == 0 {
		return errors.New("no BFV section, want at least 1")
	}
	if hob > 1 {
		return fmt.Errorf("%d TD_HOB sections, want at most 1", hob)
	}
	idx := make([]int, len(md.Sections))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmpU64(md.Sections[a].MemoryAddress, md.Sections[b].MemoryAddress)
	})
	for k := 1; k < len(idx); k++ {
		p, q := md.Sections[idx[k-1]], md.Sections[idx[k]]
		if q.MemoryAddress < p.End() {
			return fmt.Errorf("section %d (%s, %#x-%#x) overlaps section %d (%s, %#x-%#x) in guest memory",
				idx[k-1], p.Type, p.MemoryAddress, p.End(), idx[k], q.Type, q.MemoryAddress, q.End())
		}
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// mustGUID encodes a GUID string in EFI byte order: the first three fields
// little endian, the last two as written.
func mustGUID(s string) [16]byte {
	var g [16]byte
	p := strings.Split(s, "-")
	if len(p) != 5 {
		panic("tdvf: bad GUID " + s)
	}
	b, err := hex.DecodeString(strings.Join(p, ""))
	if err != nil || len(b) != 16 {
		panic("tdvf: bad GUID " + s)
	}
	copy(g[:], b)
	slices.Reverse(g[0:4])
	slices.Reverse(g[4:6])
	slices.Reverse(g[6:8])
	return g
}

// formatGUID is mustGUID's inverse, for messages.
func formatGUID(b []byte) string {
	if len(b) != 16 {
		return hex.EncodeToString(b)
	}
	var g [16]byte
	copy(g[:], b)
	slices.Reverse(g[0:4])
	slices.Reverse(g[4:6])
	slices.Reverse(g[6:8])
	h := hex.EncodeToString(g[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
