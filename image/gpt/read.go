package gpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"unicode/utf16"

	"github.com/google/uuid"
)

// ErrBadGPT: the image has no valid protective MBR, GPT header or entry
// array (bad signature or CRC, inconsistent fields, short image).
var ErrBadGPT = errors.New("gpt: bad partition table")

// Disk is a parsed GPT.
type Disk struct {
	GUID                          uuid.UUID
	FirstUsableLBA, LastUsableLBA uint64
	// BackupLBA is where the backup header lies (the last sector when written).
	BackupLBA uint64
	// Partitions are the used entries in entry-array order.
	Partitions []Entry
}

// Entry is one used partition entry (UEFI 2.10 Table 5.7).
type Entry struct {
	// Number is the 1-based index in the entry array (the "N" of /dev/sdaN).
	Number            int
	Name              string
	Type, UUID        uuid.UUID
	FirstLBA, LastLBA uint64 // inclusive
	Attributes        uint64
}

// Offset is the partition's first byte on the disk.
func (e Entry) Offset() int64 { return int64(e.FirstLBA) * SectorSize }

// Size is the partition's size in bytes.
func (e Entry) Size() int64 { return int64(e.LastLBA-e.FirstLBA+1) * SectorSize }

// maxArrayBytes bounds the entry array a header may ask us to read; real
// tables use 16 KiB, and hostile input must not make us allocate gigabytes.
const maxArrayBytes = 1 << 20

// header is the GPT header (UEFI 2.10 Table 5.5).
type header struct {
	myLBA, alternateLBA           uint64
	firstUsableLBA, lastUsableLBA uint64
	diskGUID                      uuid.UUID
	entryLBA                      uint64
	entryCount, entrySize         uint32
	entryCRC                      uint32
}

// Read parses and checks the GPT of a disk with 512-byte sectors: the
// protective MBR, the primary header and entry array, and the backup header
// and entry array the primary points to, each with its CRC32 (UEFI 2.10
// section 5.3.2 "GPT Header" lists what a reader validates). The backup must
// agree with the primary. A defect of the table is ErrBadGPT; an I/O error
// of r is returned wrapped as it is.
func Read(r io.ReaderAt) (Disk, error) {
	mbr, err := readSectors(r, 0, 1)
	if err != nil {
		return Disk{}, wrap("protective MBR", err)
	}
	if err := checkProtectiveMBR(mbr); err != nil {
		return Disk{}, wrap("protective MBR", err)
	}
	primary, entries, err := readHeader(r, 1)
	if err != nil {
		return Disk{}, wrap("primary GPT", err)
	}
	if primary.entryLBA+arrayLBAs(primary) > primary.firstUsableLBA {
		return Disk{}, wrap("primary GPT", bad("entry array at LBA %d (%d sectors) overlaps the first usable LBA %d", primary.entryLBA, arrayLBAs(primary), primary.firstUsableLBA))
	}
	if primary.alternateLBA <= primary.lastUsableLBA {
		return Disk{}, wrap("primary GPT", bad("backup header LBA %d is not after the last usable LBA %d", primary.alternateLBA, primary.lastUsableLBA))
	}
	backup, _, err := readHeader(r, primary.alternateLBA)
	if err == nil {
		err = checkBackup(primary, backup)
	}
	if err != nil {
		return Disk{}, wrap(fmt.Sprintf("backup GPT at LBA %d", primary.alternateLBA), err)
	}
	d, err := parseEntries(primary, entries)
	if err != nil {
		return Disk{}, wrap("partition entries", err)
	}
	return d, nil
}

// parseEntries decodes the used entries and checks that each lies within the
// usable LBAs and that none overlap (UEFI 2.10 section 5.3.3).
func parseEntries(h header, entries []byte) (Disk, error) {
	d := Disk{GUID: h.diskGUID, FirstUsableLBA: h.firstUsableLBA, LastUsableLBA: h.lastUsableLBA, BackupLBA: h.alternateLBA}
	for i := range int(h.entryCount) {
		b := entries[i*int(h.entrySize):][:entrySize]
		if bytes.Equal(b[:16], make([]byte, 16)) {
			continue // unused entry
		}
		e := Entry{
			Number:     i + 1,
			Type:       guidFromDisk(b[0:16]),
			UUID:       guidFromDisk(b[16:32]),
			FirstLBA:   binary.LittleEndian.Uint64(b[32:]),
			LastLBA:    binary.LittleEndian.Uint64(b[40:]),
			Attributes: binary.LittleEndian.Uint64(b[48:]),
			Name:       decodeName(b[56:128]),
		}
		if e.FirstLBA > e.LastLBA || e.FirstLBA < d.FirstUsableLBA || e.LastLBA > d.LastUsableLBA {
			return Disk{}, bad("partition %d spans LBA %d-%d, want within the usable LBAs %d-%d",
				e.Number, e.FirstLBA, e.LastLBA, d.FirstUsableLBA, d.LastUsableLBA)
		}
		d.Partitions = append(d.Partitions, e)
	}
	byStart := slices.SortedFunc(slices.Values(d.Partitions), func(a, b Entry) int { return cmpUint(a.FirstLBA, b.FirstLBA) })
	for i := 1; i < len(byStart); i++ {
		if a, b := byStart[i-1], byStart[i]; b.FirstLBA <= a.LastLBA {
			return Disk{}, bad("partitions %d (LBA %d-%d) and %d (LBA %d-%d) overlap",
				a.Number, a.FirstLBA, a.LastLBA, b.Number, b.FirstLBA, b.LastLBA)
		}
	}
	return d, nil
}

// formatError is a defect of the table itself, as opposed to an I/O error.
type formatError string

func (e formatError) Error() string { return string(e) }

func bad(format string, args ...any) error { return formatError(fmt.Sprintf(format, args...)) }

// wrap makes defects ErrBadGPT and keeps I/O errors as they are.
func wrap(where string, err error) error {
	var fe formatError
	if errors.As(err, &fe) {
		return fmt.Errorf("%w: %s: %s", ErrBadGPT, where, fe)
	}
	return fmt.Errorf("gpt: reading %s: %w", where, err)
}

// checkProtectiveMBR wants the 0xAA55 signature and a type 0xEE record
// starting at LBA 1 (UEFI 2.10 section 5.2.3).
func checkProtectiveMBR(b []byte) error {
	if b[510] != 0x55 || b[511] != 0xAA {
		return bad("MBR signature %02x%02x, want 55aa", b[510], b[511])
	}
	for i := range 4 {
		rec := b[446+16*i:][:16]
		if rec[4] == 0xEE && binary.LittleEndian.Uint32(rec[8:]) == 1 {
			return nil
		}
	}
	return bad("no protective MBR record (type 0xEE starting at LBA 1)")
}

// readHeader reads and checks the header at lba and its entry array.
func readHeader(r io.ReaderAt, lba uint64) (header, []byte, error) {
	var h header
	b, err := readSectors(r, lba, 1)
	if err != nil {
		return h, nil, err
	}
	le := binary.LittleEndian
	if !bytes.Equal(b[0:8], []byte("EFI PART")) {
		return h, nil, bad("header at LBA %d has signature %q, want \"EFI PART\"", lba, b[0:8])
	}
	if rev := le.Uint32(b[8:]); rev != 0x00010000 {
		return h, nil, bad("header revision %#08x, want 0x00010000", rev)
	}
	size := le.Uint32(b[12:])
	if size < 92 || size > SectorSize {
		return h, nil, bad("header size %d, want 92 to %d", size, SectorSize)
	}
	hdr := bytes.Clone(b[:size])
	stored := le.Uint32(hdr[16:])
	clear(hdr[16:20])
	if got := crc32.ChecksumIEEE(hdr); got != stored {
		return h, nil, bad("header CRC32 is %08x, computed %08x", stored, got)
	}
	h = header{
		myLBA:          le.Uint64(b[24:]),
		alternateLBA:   le.Uint64(b[32:]),
		firstUsableLBA: le.Uint64(b[40:]),
		lastUsableLBA:  le.Uint64(b[48:]),
		diskGUID:       guidFromDisk(b[56:72]),
		entryLBA:       le.Uint64(b[72:]),
		entryCount:     le.Uint32(b[80:]),
		entrySize:      le.Uint32(b[84:]),
		entryCRC:       le.Uint32(b[88:]),
	}
	switch {
	case h.myLBA != lba:
		return h, nil, bad("header at LBA %d says it is at LBA %d", lba, h.myLBA)
	case h.firstUsableLBA > h.lastUsableLBA:
		return h, nil, bad("first usable LBA %d is after the last usable LBA %d", h.firstUsableLBA, h.lastUsableLBA)
	case h.entrySize < entrySize || h.entrySize&(h.entrySize-1) != 0:
		return h, nil, bad("entry size %d, want 128 times a power of two", h.entrySize)
	case h.entryCount == 0 || uint64(h.entryCount)*uint64(h.entrySize) > maxArrayBytes:
		return h, nil, bad("%d entries of %d bytes, want 1 to %d bytes", h.entryCount, h.entrySize, maxArrayBytes)
	case h.entryLBA < 2:
		return h, nil, bad("entry array at LBA %d overlaps the MBR or header", h.entryLBA)
	case h.entryLBA <= h.lastUsableLBA && h.entryLBA+arrayLBAs(h) > h.firstUsableLBA:
		return h, nil, bad("entry array at LBA %d overlaps the usable LBAs %d-%d", h.entryLBA, h.firstUsableLBA, h.lastUsableLBA)
	}
	entries, err := readSectors(r, h.entryLBA, arrayLBAs(h))
	if err != nil {
		return h, nil, err
	}
	arr := entries[:uint64(h.entryCount)*uint64(h.entrySize)]
	if got := crc32.ChecksumIEEE(arr); got != h.entryCRC {
		return h, nil, bad("entry array CRC32 is %08x, computed %08x", h.entryCRC, got)
	}
	return h, arr, nil
}

// checkBackup wants the backup header to mirror the primary (UEFI 2.10
// section 5.3.2: the two differ only in MyLBA, AlternateLBA, PartitionEntryLBA
// and the header CRC).
func checkBackup(p, b header) error {
	switch {
	case b.alternateLBA != p.myLBA:
		return bad("backup header points to LBA %d as its alternate, want %d", b.alternateLBA, p.myLBA)
	case b.diskGUID != p.diskGUID:
		return bad("backup disk GUID %s, primary %s", b.diskGUID, p.diskGUID)
	case b.firstUsableLBA != p.firstUsableLBA || b.lastUsableLBA != p.lastUsableLBA:
		return bad("backup usable LBAs %d-%d, primary %d-%d", b.firstUsableLBA, b.lastUsableLBA, p.firstUsableLBA, p.lastUsableLBA)
	case b.entryCount != p.entryCount || b.entrySize != p.entrySize || b.entryCRC != p.entryCRC:
		return bad("backup entry array (%d x %d bytes, CRC32 %08x) differs from the primary (%d x %d, %08x)",
			b.entryCount, b.entrySize, b.entryCRC, p.entryCount, p.entrySize, p.entryCRC)
	case b.entryLBA <= b.lastUsableLBA:
		return bad("backup entry array at LBA %d is not after the last usable LBA %d", b.entryLBA, b.lastUsableLBA)
	}
	return nil
}

func arrayLBAs(h header) uint64 {
	return (uint64(h.entryCount)*uint64(h.entrySize) + SectorSize - 1) / SectorSize
}

// readSectors reads n sectors from lba; a short image is a format error.
func readSectors(r io.ReaderAt, lba, n uint64) ([]byte, error) {
	if lba > math.MaxInt64/SectorSize-n {
		return nil, bad("LBA %d is beyond any disk", lba)
	}
	b := make([]byte, n*SectorSize)
	got, err := r.ReadAt(b, int64(lba*SectorSize))
	if got == len(b) {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return nil, bad("image ends before the end of LBA %d", lba+n-1)
	}
	return nil, fmt.Errorf("gpt: reading LBA %d: %w", lba, err)
}

// decodeName decodes the UTF-16LE PartitionName up to the first NUL.
func decodeName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
