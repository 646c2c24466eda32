package authenticode

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // hashes an embedded signature may name
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

var (
	// ErrNotPE: the bytes carry no PE signature where the DOS header (or
	// offset 0) points.
	ErrNotPE = errors.New("authenticode: not a PE/COFF image")
	// ErrMalformed: a PE/COFF image whose headers, sections or certificate
	// table are inconsistent with each other or with the file size.
	ErrMalformed = errors.New("authenticode: malformed PE/COFF image")
	// ErrUnsigned: the image has no attribute certificate table.
	ErrUnsigned = errors.New("authenticode: image is not signed")
)

// PE/COFF offsets (Microsoft PE Format, "Optional Header Standard Fields",
// "Optional Header Windows-Specific Fields", "Optional Header Data
// Directories").
const (
	magicPE32     = 0x10b
	magicPE32Plus = 0x20b

	optCheckSum      = 64 // same in PE32 and PE32+
	optSizeOfHeaders = 60
	sectionHeaderLen = 40
	dataDirLen       = 8
	dirSecurity      = 4 // IMAGE_DIRECTORY_ENTRY_SECURITY, the Certificate Table
	maxDataDirs      = 16
)

// span is one section's raw data in the file.
type span struct {
	name      string
	off, size uint64
}

func (s span) end() uint64 { return s.off + s.size }

// layout is what the Authenticode hash needs from the headers.
type layout struct {
	size       uint64 // file size
	checksum   uint64 // offset of the optional header's CheckSum
	certDir    uint64 // offset of the Certificate Table entry, when present
	hasCertDir bool   // NumberOfRvaAndSizes > IMAGE_DIRECTORY_ENTRY_SECURITY
	headers    uint64 // SizeOfHeaders
	sections   []span // SizeOfRawData > 0, sorted by PointerToRawData
	certOff    uint64 // Certificate Table: file offset and size
	certSize   uint64
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
}

func le16(b []byte, off uint64) uint64 { return uint64(binary.LittleEndian.Uint16(b[off:])) }
func le32(b []byte, off uint64) uint64 { return uint64(binary.LittleEndian.Uint32(b[off:])) }

// parse reads and checks the headers. Every offset it returns lies inside
// image.
func parse(image []byte) (*layout, error) {
	n := uint64(len(image))
	l := &layout{size: n}

	// DOS header: e_lfanew at 0x3c. EDK2 also accepts a PE header at offset
	// 0 without the DOS stub (PeCoffLoaderGetImageInfo), so does parse.
	var pe uint64
	if n >= 2 && image[0] == 'M' && image[1] == 'Z' {
		if n < 0x40 {
			return nil, malformed("DOS header is %d bytes, want 64", n)
		}
		pe = le32(image, 0x3c)
	}
	if pe+4 > n || !bytes.Equal(image[pe:pe+4], []byte("PE\x00\x00")) {
		return nil, fmt.Errorf("%w: no \"PE\\0\\0\" signature at offset %#x (file is %d bytes)", ErrNotPE, pe, n)
	}
	coff := pe + 4
	opt := coff + 20
	if opt+2 > n {
		return nil, malformed("COFF header ends at %#x, beyond file end %#x", opt, n)
	}
	numSections := le16(image, coff+2)
	optSize := le16(image, coff+16)

	var ddBase, numDirsOff uint64
	switch magic := le16(image, opt); magic {
	case magicPE32:
		ddBase, numDirsOff = opt+96, opt+92
	case magicPE32Plus:
		ddBase, numDirsOff = opt+112, opt+108
	default:
		return nil, malformed("optional header magic %#x, want %#x (PE32) or %#x (PE32+)", magic, magicPE32, magicPE32Plus)
	}
	optEnd := opt + optSize
	if optEnd < ddBase {
		return nil, malformed("SizeOfOptionalHeader %d, want at least %d for magic %#x", optSize, ddBase-opt, le16(image, opt))
	}
	if optEnd > n {
		return nil, malformed("optional header ends at %#x, beyond file end %#x", optEnd, n)
	}
	numDirs := le32(image, numDirsOff)
	if numDirs > maxDataDirs || ddBase+numDirs*dataDirLen > optEnd {
		return nil, malformed("NumberOfRvaAndSizes %d does not fit SizeOfOptionalHeader %d", numDirs, optSize)
	}
	l.checksum = opt + optCheckSum
	l.headers = le32(image, opt+optSizeOfHeaders)

	sectionTable := optEnd
	sectionTableEnd := sectionTable + numSections*sectionHeaderLen
	if sectionTableEnd > l.headers {
		return nil, malformed("section table ends at %#x, beyond SizeOfHeaders %#x", sectionTableEnd, l.headers)
	}
	if l.headers > n {
		return nil, malformed("SizeOfHeaders %#x beyond file end %#x", l.headers, n)
	}

	if numDirs > dirSecurity {
		l.hasCertDir = true
		l.certDir = ddBase + dirSecurity*dataDirLen
		l.certOff = le32(image, l.certDir)
		l.certSize = le32(image, l.certDir+4)
	}

	for i := uint64(0); i < numSections; i++ {
		h := sectionTable + i*sectionHeaderLen
		s := span{
			name: string(bytes.TrimRight(image[h:h+8], "\x00")),
			size: le32(image, h+16),
			off:  le32(image, h+20),
		}
		if s.size == 0 {
			continue // EDK2 and the Microsoft text skip these
		}
		if s.end() > n {
			return nil, malformed("section %q raw data [%#x, %#x) beyond file end %#x", s.name, s.off, s.end(), n)
		}
		l.sections = append(l.sections, s)
	}
	// EDK2 sorts with an insertion sort on PointerToRawData that keeps the
	// table order of equal keys: a stable sort.
	sort.SliceStable(l.sections, func(i, j int) bool { return l.sections[i].off < l.sections[j].off })
	prevEnd, prevName := l.headers, "headers"
	for _, s := range l.sections {
		if s.off < prevEnd {
			return nil, malformed("section %q starts at %#x, inside %s ending at %#x", s.name, s.off, prevName, prevEnd)
		}
		prevEnd, prevName = s.end(), fmt.Sprintf("section %q", s.name)
	}

	if l.certSize != 0 {
		if l.certOff < prevEnd {
			return nil, malformed("certificate table at %#x overlaps %s ending at %#x", l.certOff, prevName, prevEnd)
		}
		if l.certOff+l.certSize != n {
			return nil, malformed("certificate table [%#x, %#x) does not end the file (%#x bytes)", l.certOff, l.certOff+l.certSize, n)
		}
	}
	return l, nil
}

// ranges returns the [start, end) file ranges the Authenticode hash covers,
// in order (see the package documentation for the steps).
func (l *layout) ranges() ([][2]uint64, error) {
	var r [][2]uint64
	add := func(a, b uint64) {
		if b > a {
			r = append(r, [2]uint64{a, b})
		}
	}
	add(0, l.checksum)
	if l.hasCertDir {
		add(l.checksum+4, l.certDir)
		add(l.certDir+dataDirLen, l.headers)
	} else {
		add(l.checksum+4, l.headers)
	}
	sum := l.headers
	for _, s := range l.sections {
		add(s.off, s.end())
		sum += s.size
	}
	if l.size > sum {
		switch {
		case l.size > l.certSize+sum:
			add(sum, l.size-l.certSize)
		case l.size < l.certSize+sum:
			// EDK2 returns EFI_UNSUPPORTED here and measures nothing.
			return nil, malformed("certificate table size %#x exceeds the %#x bytes after the sections", l.certSize, l.size-sum)
		}
	}
	return r, nil
}

// Digest returns the Authenticode digest of a PE32 or PE32+ image with hash
// h: what UEFI firmware extends for the image (SHA-256 for a TPM's sha256
// bank, SHA-384 for TDX RTMRs).
func Digest(image []byte, h crypto.Hash) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("authenticode: hash %v is not available", h)
	}
	l, err := parse(image)
	if err != nil {
		return nil, err
	}
	r, err := l.ranges()
	if err != nil {
		return nil, err
	}
	w := h.New()
	for _, x := range r {
		w.Write(image[x[0]:x[1]])
	}
	return w.Sum(nil), nil
}
