package deb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// xzScanHeaders checks the dictionary size of every block header when the
// stream's index cannot be used (a cut-off or damaged file), before
// ulikunitz/xz decodes it sequentially and allocates each block's
// dictionary. Blocks written by single-threaded xz do not state their
// compressed size, so the scan finds each block's end by walking the LZMA2
// chunk headers, which carry their sizes (no decoding needed).
//
// It returns an error only for a dictionary over the limit. Any other
// problem ends the scan silently: the decoder, reading the same bytes, will
// report it with its own position and wording.
func xzScanHeaders(r *io.SectionReader, lim limits) error {
	s := &xzScanner{br: bufio.NewReaderSize(io.NewSectionReader(r, 0, r.Size()), 1<<16)}
	for {
		err := s.stream(lim)
		if errors.Is(err, ErrCompression) {
			return err
		}
		if err != nil {
			return nil
		}
	}
}

type xzScanner struct {
	br *bufio.Reader
}

var errScanDone = errors.New("xz scan: done")

// stream scans one stream, its index and footer, and the stream padding
// after it (spec 2).
func (s *xzScanner) stream(lim limits) error {
	head := make([]byte, xzHeaderLen)
	if _, err := io.ReadFull(s.br, head); err != nil {
		return errScanDone
	}
	if err := checkStreamHeader(head, head[6:8]); err != nil {
		return err
	}
	for {
		first, err := s.br.Peek(1)
		if err != nil {
			return err
		}
		if first[0] == 0 {
			break // index indicator
		}
		h := make([]byte, (int(first[0])+1)*4)
		if _, err := io.ReadFull(s.br, h); err != nil {
			return err
		}
		info, err := parseBlockHeader(h, lim)
		if err != nil {
			return err
		}
		comp := info.comp
		if comp < 0 {
			if !info.lzma2 {
				return errors.New("xz scan: filter chain other than LZMA2")
			}
			if comp, err = s.lzma2Len(); err != nil {
				return err
			}
		} else if err := s.discard(comp); err != nil {
			return err
		}
		if err := s.discard(padded(comp) - comp + checkSize(head[7])); err != nil {
			return err
		}
	}
	if err := s.skipIndex(); err != nil {
		return err
	}
	if _, err := s.br.Discard(xzHeaderLen); err != nil { // footer
		return err
	}
	for { // stream padding
		w, err := s.br.Peek(4)
		if err != nil || !bytes.Equal(w, []byte{0, 0, 0, 0}) {
			return nil
		}
		_, _ = s.br.Discard(4)
	}
}

// discard skips n bytes, failing at the end of the data.
func (s *xzScanner) discard(n int64) error {
	for n > 0 {
		k, err := s.br.Discard(int(min(n, 1<<30)))
		if err != nil {
			return err
		}
		n -= int64(k)
	}
	return nil
}

// lzma2Len skips an LZMA2 chunk sequence up to and including its end marker
// and returns its length. Chunk headers (xz-file-format appendix, liblzma
// lzma2_decoder.c): 0x00 ends the data; 0x01 and 0x02 start an uncompressed
// chunk of a 16-bit size+1; 0x80-0xFF start an LZMA chunk with 21-bit
// unpacked size+1, 16-bit packed size+1, and a properties byte if >= 0xC0.
func (s *xzScanner) lzma2Len() (int64, error) {
	var n int64
	for {
		c, err := s.br.ReadByte()
		if err != nil {
			return 0, err
		}
		n++
		var hdr []byte
		switch {
		case c == 0x00:
			return n, nil
		case c == 0x01 || c == 0x02:
			hdr = make([]byte, 2)
		case c >= 0xC0:
			hdr = make([]byte, 5)
		case c >= 0x80:
			hdr = make([]byte, 4)
		default:
			return 0, fmt.Errorf("xz scan: LZMA2 control byte %02x", c)
		}
		if _, err := io.ReadFull(s.br, hdr); err != nil {
			return 0, err
		}
		n += int64(len(hdr))
		data := int(hdr[0])<<8 | int(hdr[1]) + 1 // uncompressed chunk
		if c >= 0x80 {
			data = int(hdr[2])<<8 | int(hdr[3]) + 1 // packed size
		}
		if _, err := s.br.Discard(data); err != nil {
			return 0, err
		}
		n += int64(data)
	}
}

// skipIndex skips an index (spec 4) without storing its records.
func (s *xzScanner) skipIndex() error {
	var n int64 = 1
	if _, err := s.br.ReadByte(); err != nil { // indicator
		return err
	}
	count, k, err := readUvarint(s.br)
	if err != nil {
		return err
	}
	n += k
	for range 2 * count { // ends at the end of the data if count lies
		_, k, err := readUvarint(s.br)
		if err != nil {
			return err
		}
		n += k
	}
	_, err = s.br.Discard(int(padded(n)-n) + 4) // padding, CRC32
	return err
}

// readUvarint is uvarint reading from a stream; it also returns the length.
func readUvarint(br *bufio.Reader) (v, n int64, err error) {
	var b [9]byte
	for n < 9 {
		if b[n], err = br.ReadByte(); err != nil {
			return 0, 0, err
		}
		n++
		if b[n-1]&0x80 == 0 {
			p := 0
			v, err = uvarint(b[:n], &p)
			return v, n, err
		}
	}
	return 0, 0, errors.New("xz: integer longer than nine bytes")
}
