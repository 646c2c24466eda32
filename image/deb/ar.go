package deb

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// The ar layout as dpkg-deb writes it (deb(5), "FORMAT"): the common ar
// format with an 8-byte global magic, then per member a 60-byte header of
// fixed-width space-padded ASCII fields followed by the data, padded with
// one '\n' to an even offset. No GNU symbol table or long-name table: deb(5)
// limits names to 15 characters plus an optional trailing '/'.
const (
	arMagic      = "!<arch>\n"
	arHeaderSize = 60
	arNameLen    = 16 // name field: bytes [0,16)
	arSizeOff    = 48 // size field: bytes [48,58), decimal
	arSizeLen    = 10
	arEndMarker  = "`\n" // bytes [58,60)
)

// Member is one ar archive member.
type Member struct {
	Name   string // trailing '/' and padding removed
	Offset int64  // offset of the member's data within the file
	Size   int64  // length of the member's data, without padding
}

// Members lists the members of an ar archive of the given size. Every member
// it returns lies within [0, size): a header or member that would extend past
// the end gives ErrTruncated, which is how a cut-off download shows up. Any
// other malformation (bad magic, bad name, size or end marker) gives ErrNotDeb.
//
// The number of members is bounded by size/60, so hostile input cannot make
// Members allocate more than a small multiple of the file size.
func Members(r io.ReaderAt, size int64) ([]Member, error) {
	if size < 0 {
		return nil, fmt.Errorf("ar: negative file size %d: %w", size, ErrNotDeb)
	}
	magic := make([]byte, min(size, int64(len(arMagic))))
	if err := readAt(r, magic, 0); err != nil {
		return nil, fmt.Errorf("ar: reading magic: %w", err)
	}
	if !bytes.HasPrefix([]byte(arMagic), magic) {
		return nil, fmt.Errorf("ar: magic is %q, want %q: %w", magic, arMagic, ErrNotDeb)
	}
	if len(magic) < len(arMagic) {
		// A prefix of the magic is a cut-off archive, not a foreign file.
		return nil, fmt.Errorf("ar: file is %d bytes, want at least %d for the magic: %w", size, len(arMagic), ErrTruncated)
	}

	var members []Member
	var hdr [arHeaderSize]byte
	for off := int64(len(arMagic)); off < size; {
		if size-off < arHeaderSize {
			return nil, fmt.Errorf("ar: header at offset %d needs %d bytes, file has %d left: %w", off, arHeaderSize, size-off, ErrTruncated)
		}
		if err := readAt(r, hdr[:], off); err != nil {
			return nil, fmt.Errorf("ar: reading header at offset %d: %w", off, err)
		}
		m, err := parseHeader(&hdr, off)
		if err != nil {
			return nil, err
		}
		if m.Size > size-m.Offset {
			return nil, fmt.Errorf("ar: member %q at offset %d has %d bytes, file has %d left: %w", m.Name, m.Offset, m.Size, size-m.Offset, ErrTruncated)
		}
		next := m.Offset + m.Size
		if m.Size%2 == 1 {
			// The pad byte belongs to the archive; without it the file was cut.
			if next == size {
				return nil, fmt.Errorf("ar: member %q has odd size %d and the padding byte is missing: %w", m.Name, m.Size, ErrTruncated)
			}
			next++
		}
		members = append(members, m)
		off = next
	}
	return members, nil
}

// parseHeader decodes one 60-byte member header found at offset off.
func parseHeader(hdr *[arHeaderSize]byte, off int64) (Member, error) {
	if end := string(hdr[arHeaderSize-2:]); end != arEndMarker {
		return Member{}, fmt.Errorf("ar: header at offset %d ends with %q, want %q: %w", off, end, arEndMarker, ErrNotDeb)
	}
	name, err := parseName(hdr[:arNameLen])
	if err != nil {
		return Member{}, fmt.Errorf("ar: header at offset %d: %w", off, err)
	}
	size, err := parseSize(hdr[arSizeOff : arSizeOff+arSizeLen])
	if err != nil {
		return Member{}, fmt.Errorf("ar: member %q at offset %d: %w", name, off, err)
	}
	return Member{Name: name, Offset: off + arHeaderSize, Size: size}, nil
}

// parseName accepts the names dpkg-deb writes and reads: space padded, with
// an optional trailing '/' (GNU ar style), made of characters that are safe
// in a file name. That rules out the GNU "/" and "//" special members and BSD
// "#1/" long names, which deb(5) does not allow.
func parseName(field []byte) (string, error) {
	name := string(bytes.TrimRight(field, " "))
	if len(name) > 0 && name[len(name)-1] == '/' {
		name = name[:len(name)-1]
	}
	if name == "" {
		return "", fmt.Errorf("member name %q is empty: %w", field, ErrNotDeb)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+') {
			return "", fmt.Errorf("member name %q has character %q, want [A-Za-z0-9._+-]: %w", field, c, ErrNotDeb)
		}
	}
	return name, nil
}

// parseSize reads the decimal size field: digits, then space padding. A sign,
// inner space or empty field is rejected rather than guessed at.
func parseSize(field []byte) (int64, error) {
	digits := bytes.TrimRight(field, " ")
	ok := len(digits) > 0
	for _, c := range digits {
		ok = ok && '0' <= c && c <= '9'
	}
	if !ok {
		return 0, fmt.Errorf("size field %q is not a decimal number: %w", field, ErrNotDeb)
	}
	// Ten digits always fit in an int64.
	return strconv.ParseInt(string(digits), 10, 64)
}

// readAt fills p from offset off. io.ReaderAt may report io.EOF along with a
// full read at the end of the input; that is success. A short read means the
// reader holds less than the size it was given with: a truncated file.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		return fmt.Errorf("read %d of %d bytes at offset %d: %w", n, len(p), off, ErrTruncated)
	}
	return err
}
