package tdvf

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"testing"
)

// image describes a synthetic TDVF firmware for tests: a size, sections, and
// knobs to break the table and descriptor.
type image struct {
	size     int
	sections []Section
	// knobs
	signature   string // default "TDVF"
	version     uint32 // default 1
	count       int    // NumberOfSectionEntries, default len(sections)
	length      int    // descriptor Length, default 16+32*count
	metaAt      int    // where the descriptor goes, default just below the table
	metaBack    int    // value of the offset entry, default size-metaAt
	noFooter    bool
	noOffsetEnt bool
	extraEntry  bool // a foreign GUIDed entry between the footer and ours
	tableLen    int  // the footer's total length, default the real one
}

// build lays the image out the way OVMF's ResetVector does: payload bytes
// (a pattern) at the sections' DataOffsets, the descriptor, then the GUIDed
// table ending 48 bytes before the end, then 32 bytes of "reset vector".
func (im image) build(t testing.TB) []byte {
	t.Helper()
	fw := make([]byte, im.size)
	for i := range fw {
		fw[i] = byte(i*7 + i>>8) // deterministic, page-varying pattern
	}
	if im.signature == "" {
		im.signature = signature
	}
	if im.version == 0 {
		im.version = versionV1
	}
	if im.count == 0 {
		im.count = len(im.sections)
	}
	if im.length == 0 {
		im.length = descriptorLen + sectionLen*im.count
	}
	// GUIDed table, built backwards from the footer.
	footer := im.size - footerGUIDFromEnd
	var table []byte // entries in image order (lowest first)
	if !im.noOffsetEnt {
		if im.metaAt == 0 {
			im.metaAt = footer - 0x200 - descriptorLen - sectionLen*len(im.sections)
		}
		if im.metaBack == 0 {
			im.metaBack = im.size - im.metaAt
		}
		e := binary.LittleEndian.AppendUint32(nil, uint32(im.metaBack))
		e = binary.LittleEndian.AppendUint16(e, uint16(len(e)+entryTrailerLen))
		e = append(e, tdxMetadataOffGUID[:]...)
		table = append(table, e...)
	}
	if im.extraEntry {
		other := mustGUID("dc886566-984a-4798-a75e-5585a7bf67cc") // the SEV entry's GUID
		e := []byte{1, 2, 3, 4, 5, 6, 7, 8}
		e = binary.LittleEndian.AppendUint16(e, uint16(len(e)+entryTrailerLen))
		e = append(e, other[:]...)
		table = append(table, e...)
	}
	copy(fw[footer-2-len(table):], table)
	total := len(table) + entryTrailerLen
	if im.tableLen != 0 {
		total = im.tableLen
	}
	binary.LittleEndian.PutUint16(fw[footer-2:], uint16(total))
	if !im.noFooter {
		copy(fw[footer:], tableFooterGUID[:])
	}
	if !im.noOffsetEnt {
		// Built apart and copied, so that a descriptor placed near the end
		// is cut off rather than overflowing.
		d := make([]byte, descriptorLen+sectionLen*len(im.sections))
		copy(d[0:4], im.signature)
		binary.LittleEndian.PutUint32(d[4:], uint32(im.length))
		binary.LittleEndian.PutUint32(d[8:], im.version)
		binary.LittleEndian.PutUint32(d[12:], uint32(im.count))
		for i, s := range im.sections {
			b := d[descriptorLen+sectionLen*i:]
			binary.LittleEndian.PutUint32(b[0:], s.DataOffset)
			binary.LittleEndian.PutUint32(b[4:], s.RawDataSize)
			binary.LittleEndian.PutUint64(b[8:], s.MemoryAddress)
			binary.LittleEndian.PutUint64(b[16:], s.MemoryDataSize)
			binary.LittleEndian.PutUint32(b[24:], uint32(s.Type))
			binary.LittleEndian.PutUint32(b[28:], s.Attributes)
		}
		copy(fw[im.metaAt:], d)
	}
	return fw
}

// smallImage is a 64 KiB image shaped like OVMF's: a CFV at the start, the
// BFV (with MR.EXTEND, holding the metadata near its end) after it, and
// memory-only sections at low addresses.
func smallImage() image {
	return image{
		size: 0x10000,
		sections: []Section{
			{DataOffset: 0x4000, RawDataSize: 0xc000, MemoryAddress: 0xffff4000, MemoryDataSize: 0xc000, Type: BFV, Attributes: AttrMRExtend},
			{DataOffset: 0, RawDataSize: 0x4000, MemoryAddress: 0xffff0000, MemoryDataSize: 0x4000, Type: CFV},
			{MemoryAddress: 0x811000, MemoryDataSize: 0x2000, Type: TempMem},
			{MemoryAddress: 0x809000, MemoryDataSize: 0x2000, Type: TDHOB},
			{MemoryAddress: 0x800000, MemoryDataSize: 0x3000, Type: TempMem},
		},
	}
}

// referenceMRTD recomputes MRTD without the package's walker: it writes the
// whole byte stream the TDX module would hash into one buffer, then hashes it
// once. It reads only the sections it is given (not Parse's result).
func referenceMRTD(fw []byte, sections []Section, twoPass bool) [48]byte {
	var stream bytes.Buffer
	pageAdd := func(gpa uint64) {
		rec := make([]byte, 128)
		copy(rec, "MEM.PAGE.ADD\x00\x00\x00\x00")
		binary.LittleEndian.PutUint64(rec[16:24], gpa)
		stream.Write(rec)
	}
	extendPage := func(gpa uint64, page []byte) {
		for i := 0; i < 16; i++ {
			rec := make([]byte, 128+256)
			copy(rec, "MR.EXTEND")
			binary.LittleEndian.PutUint64(rec[16:24], gpa+uint64(i)*256)
			copy(rec[128:], page[i*256:(i+1)*256])
			stream.Write(rec)
		}
	}
	for _, s := range sections {
		n := int(s.MemoryDataSize / 4096)
		gpa := func(i int) uint64 { return s.MemoryAddress + uint64(i)*4096 }
		page := func(i int) []byte { o := int(s.DataOffset) + i*4096; return fw[o : o+4096] }
		if twoPass {
			for i := 0; i < n; i++ {
				pageAdd(gpa(i))
			}
			if s.Attributes&1 != 0 {
				for i := 0; i < n; i++ {
					extendPage(gpa(i), page(i))
				}
			}
			continue
		}
		for i := 0; i < n; i++ {
			pageAdd(gpa(i))
			if s.Attributes&1 != 0 {
				extendPage(gpa(i), page(i))
			}
		}
	}
	return sha512.Sum384(stream.Bytes())
}
