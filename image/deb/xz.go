package deb

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/ulikunitz/xz"
)

// This file reads the xz container (The .xz File Format 1.2.1, tukaani.org)
// far enough to do two things ulikunitz/xz cannot: refuse LZMA2 dictionaries
// above limits.xzDict before the decoder allocates them, and find the blocks
// that multi-threaded xz (as used for Debian's kernel package) writes, so
// they can be decoded in parallel. All decoding and integrity checking is
// still done by ulikunitz/xz.

const (
	xzHeaderLen = 12 // stream header and stream footer, spec 2.1.1 and 2.1.2
	lzma2ID     = 0x21
	// xzMinDict (lzma.MinDictCap) is passed as the decoder's DictCap so it
	// allocates the dictionary the block header asks for, not 8 MiB at least.
	xzMinDict = 4096
)

var (
	xzHeaderMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
	xzFooterMagic = []byte{'Y', 'Z'}
)

// xzBlock is one block as the stream's index describes it (spec 4.3).
type xzBlock struct {
	stream       []byte // the 12-byte header of the stream holding the block
	offset       int64  // of the block header, within the .xz data
	unpadded     int64  // block header + compressed data + check
	uncompressed int64
}

// newXZReader decodes the .xz data in sr. With an intact index and several
// blocks it decodes up to lim.xzWorkers blocks at once; otherwise (one block,
// or an index that cannot be read because the data is cut short) it decodes
// sequentially, so errors still point at the first broken byte.
func newXZReader(sr *io.SectionReader, lim limits) (io.ReadCloser, error) {
	blocks, indexErr := xzIndex(sr, sr.Size())
	if indexErr == nil {
		for _, b := range blocks {
			if err := xzBlockHeader(sr, b.offset, lim); err != nil {
				return nil, err
			}
		}
		if len(blocks) > 1 && lim.xzWorkers > 1 {
			return newParallelXZ(sr, blocks, lim.xzWorkers), nil
		}
	} else if err := xzScanHeaders(sr, lim); err != nil {
		return nil, err
	}
	zr, err := xz.ReaderConfig{DictCap: xzMinDict}.NewReader(bufio.NewReaderSize(sr, 1<<16))
	if err != nil {
		return nil, err
	}
	if indexErr != nil {
		// ulikunitz/xz returns a clean io.EOF when the data stops at a block
		// boundary, before index and footer. Without a usable index at the
		// end, that EOF means the stream was cut.
		return io.NopCloser(&eofAs{zr, fmt.Errorf("%w: %w", ErrTruncated, indexErr)}), nil
	}
	return io.NopCloser(zr), nil
}

// eofAs reports err where r reports io.EOF.
type eofAs struct {
	r   io.Reader
	err error
}

func (e *eofAs) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		err = e.err
	}
	return n, err
}

// xzIndex walks the streams of an .xz file from its end, as xz --list does:
// stream footer, index, then the stream header that the index sizes point
// back to (spec 2.1, 4). It returns the blocks of all streams in file order.
// Every allocation is bounded by the bytes actually present.
func xzIndex(r io.ReaderAt, size int64) ([]xzBlock, error) {
	var streams [][]xzBlock // last stream first
	for pos := size; pos > 0; {
		// Stream padding: groups of four zero bytes (spec 2.2).
		if pos%4 != 0 {
			return nil, fmt.Errorf("xz: stream ends at offset %d, want a multiple of 4", pos)
		}
		var word [4]byte
		if err := readAt(r, word[:], pos-4); err != nil {
			return nil, err
		}
		if word == [4]byte{} {
			pos -= 4
			continue
		}
		sb, start, err := xzStream(r, pos)
		if err != nil {
			return nil, err
		}
		streams = append(streams, sb)
		pos = start
	}
	if len(streams) == 0 {
		return nil, errors.New("xz: no stream found")
	}
	var blocks []xzBlock
	for i := len(streams) - 1; i >= 0; i-- {
		blocks = append(blocks, streams[i]...)
	}
	return blocks, nil
}

// xzStream reads the stream that ends at offset end and returns its blocks
// and the offset of its header.
func xzStream(r io.ReaderAt, end int64) ([]xzBlock, int64, error) {
	if end < 2*xzHeaderLen {
		return nil, 0, fmt.Errorf("xz: %d bytes before offset %d, want at least %d for header and footer", end, end, 2*xzHeaderLen)
	}
	foot := make([]byte, xzHeaderLen)
	if err := readAt(r, foot, end-xzHeaderLen); err != nil {
		return nil, 0, err
	}
	if !bytes.Equal(foot[10:], xzFooterMagic) {
		return nil, 0, fmt.Errorf("xz: footer magic %x at offset %d, want %x", foot[10:], end-2, xzFooterMagic)
	}
	if got, want := crc32.ChecksumIEEE(foot[4:10]), binary.LittleEndian.Uint32(foot[:4]); got != want {
		return nil, 0, fmt.Errorf("xz: footer CRC32 %08x, want %08x", got, want)
	}
	flags := foot[8:10]
	indexLen := (int64(binary.LittleEndian.Uint32(foot[4:8])) + 1) * 4
	indexStart := end - xzHeaderLen - indexLen
	if indexStart < xzHeaderLen {
		return nil, 0, fmt.Errorf("xz: index of %d bytes does not fit before offset %d", indexLen, end-xzHeaderLen)
	}
	index := make([]byte, indexLen) // bounded: indexLen < end <= input size
	if err := readAt(r, index, indexStart); err != nil {
		return nil, 0, err
	}
	recs, err := parseXZIndex(index)
	if err != nil {
		return nil, 0, err
	}
	var total int64
	for _, rec := range recs {
		if rec[0] > indexStart {
			return nil, 0, fmt.Errorf("xz: index lists a block of %d bytes before offset %d", rec[0], indexStart)
		}
		total += padded(rec[0])
		if total > indexStart-xzHeaderLen {
			return nil, 0, fmt.Errorf("xz: index lists more block bytes than the %d before it", indexStart-xzHeaderLen)
		}
	}
	start := indexStart - total - xzHeaderLen
	head := make([]byte, xzHeaderLen)
	if err := readAt(r, head, start); err != nil {
		return nil, 0, err
	}
	if err := checkStreamHeader(head, flags); err != nil {
		return nil, 0, fmt.Errorf("xz: stream at offset %d: %w", start, err)
	}
	blocks := make([]xzBlock, len(recs))
	off := start + xzHeaderLen
	for i, rec := range recs {
		blocks[i] = xzBlock{stream: head, offset: off, unpadded: rec[0], uncompressed: rec[1]}
		off += padded(rec[0])
	}
	return blocks, start, nil
}

// checkStreamHeader verifies magic, flags CRC32, and that the flags equal
// the footer's (spec 2.1.1, 2.1.2.3).
func checkStreamHeader(head, footFlags []byte) error {
	if !bytes.Equal(head[:6], xzHeaderMagic) {
		return fmt.Errorf("header magic %x, want %x", head[:6], xzHeaderMagic)
	}
	if got, want := crc32.ChecksumIEEE(head[6:8]), binary.LittleEndian.Uint32(head[8:12]); got != want {
		return fmt.Errorf("header CRC32 %08x, want %08x", got, want)
	}
	if !bytes.Equal(head[6:8], footFlags) {
		return fmt.Errorf("header flags %x, footer flags %x", head[6:8], footFlags)
	}
	if head[6] != 0 || head[7]&0xF0 != 0 {
		return fmt.Errorf("reserved stream flag bits set in %x", head[6:8])
	}
	return nil
}

// parseXZIndex decodes an index (spec 4): indicator 0x00, record count,
// (unpadded, uncompressed) pairs, zero padding to 4 bytes, CRC32.
func parseXZIndex(b []byte) ([][2]int64, error) {
	if len(b) < 8 || b[0] != 0 {
		return nil, fmt.Errorf("xz: index starts %x, want indicator 00", b[:min(len(b), 1)])
	}
	body := b[:len(b)-4]
	if got, want := crc32.ChecksumIEEE(body), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return nil, fmt.Errorf("xz: index CRC32 %08x, want %08x", got, want)
	}
	p := 1
	count, err := uvarint(body, &p)
	if err != nil {
		return nil, err
	}
	// Each record takes at least two bytes: no allocation beyond the input.
	if count > int64(len(body)-p)/2 {
		return nil, fmt.Errorf("xz: index claims %d records in %d bytes", count, len(body)-p)
	}
	recs := make([][2]int64, count)
	for i := range recs {
		for j := range recs[i] {
			if recs[i][j], err = uvarint(body, &p); err != nil {
				return nil, err
			}
		}
		if recs[i][0] < 5 {
			return nil, fmt.Errorf("xz: index record %d has unpadded size %d, want >= 5", i, recs[i][0])
		}
	}
	if len(body)-p > 3 || !allZero(body[p:]) {
		return nil, fmt.Errorf("xz: index has %d trailing bytes %x, want up to 3 zero bytes", len(body)-p, body[p:])
	}
	return recs, nil
}

// xzBlockHeader reads the block header at off and checks it (see
// parseBlockHeader).
func xzBlockHeader(r io.ReaderAt, off int64, lim limits) error {
	var first [1]byte
	if err := readAt(r, first[:], off); err != nil {
		return err
	}
	h := make([]byte, (int(first[0])+1)*4)
	if err := readAt(r, h, off); err != nil {
		return err
	}
	if _, err := parseBlockHeader(h, lim); err != nil {
		return fmt.Errorf("block header at offset %d: %w", off, err)
	}
	return nil
}

// blockInfo is what the scanner needs from a block header.
type blockInfo struct {
	comp  int64 // compressed size, -1 if the header does not say
	lzma2 bool  // the filter chain is LZMA2 alone
}

// parseBlockHeader decodes a block header (spec 3.1), h being exactly the
// header size its first byte gives. It refuses an LZMA2 dictionary larger
// than lim.xzDict, because the decoder allocates the whole dictionary up
// front.
func parseBlockHeader(h []byte, lim limits) (blockInfo, error) {
	if h[0] == 0 {
		return blockInfo{}, errors.New("xz: index indicator where a block header should be")
	}
	if got, want := crc32.ChecksumIEEE(h[:len(h)-4]), binary.LittleEndian.Uint32(h[len(h)-4:]); got != want {
		return blockInfo{}, fmt.Errorf("xz: block header CRC32 %08x, want %08x", got, want)
	}
	flags, p := h[1], 2
	body := h[:len(h)-4]
	if flags&0x3C != 0 {
		return blockInfo{}, fmt.Errorf("xz: reserved block flag bits set in %02x", flags)
	}
	info := blockInfo{comp: -1}
	for _, bit := range []byte{0x40, 0x80} { // compressed, uncompressed size
		if flags&bit != 0 {
			v, err := uvarint(body, &p)
			if err != nil {
				return blockInfo{}, err
			}
			if bit == 0x40 {
				info.comp = v
			}
		}
	}
	nfilters := int(flags&3) + 1
	for range nfilters {
		id, err := uvarint(body, &p)
		if err != nil {
			return blockInfo{}, err
		}
		n, err := uvarint(body, &p)
		if err != nil {
			return blockInfo{}, err
		}
		if n > int64(len(body)-p) {
			return blockInfo{}, fmt.Errorf("xz: filter properties of %d bytes overrun the block header", n)
		}
		props := body[p : p+int(n)]
		p += int(n)
		if id == lzma2ID && len(props) == 1 {
			if d := lzma2Dict(props[0]); d > lim.xzDict {
				return blockInfo{}, fmt.Errorf("xz: LZMA2 dictionary of %d bytes, this reader allows %d: %w", d, lim.xzDict, ErrCompression)
			}
			info.lzma2 = nfilters == 1
		}
	}
	return info, nil
}

// lzma2Dict decodes the LZMA2 dictionary size property (spec 5.3.1).
func lzma2Dict(p byte) int64 {
	if p > 40 {
		return 1 << 62 // invalid; the decoder rejects it, we must not allocate it
	}
	if p == 40 {
		return 1<<32 - 1
	}
	return int64(2|p&1) << (p/2 + 11)
}

// checkSize is the size of the block check for stream flags byte 2 (spec 3.4).
func checkSize(f byte) int64 {
	if f&0x0F == 0 {
		return 0
	}
	return 4 << ((f&0x0F - 1) / 3)
}

// padded rounds an unpadded block size up to the 4-byte block alignment.
func padded(n int64) int64 { return (n + 3) &^ 3 }

// uvarint decodes the xz multibyte integer at b[*p] (spec 1.2): up to nine
// bytes, seven bits each, least significant first, no trailing zero byte.
func uvarint(b []byte, p *int) (int64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		if *p >= len(b) {
			return 0, errors.New("xz: integer runs past its field")
		}
		c := b[*p]
		*p++
		v |= uint64(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				return 0, errors.New("xz: integer has a trailing zero byte")
			}
			return int64(v), nil
		}
	}
	return 0, errors.New("xz: integer longer than nine bytes")
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// NewXZReader decodes the .xz data r holds (size bytes) with the memory
// bounds and parallel block decoding Walk uses for data.tar.xz; image/kmod
// reads compressed kernel modules with it. Read errors other than io.EOF
// wrap ErrTruncated, ErrCorrupt or ErrCompression.
func NewXZReader(r io.ReaderAt, size int64) (io.ReadCloser, error) {
	xr, err := newXZReader(io.NewSectionReader(r, 0, size), defaultLimits)
	if err != nil {
		return nil, streamErr(err)
	}
	return classified{xr}, nil
}

// classified tags errors like tagged does but keeps io.EOF, for callers
// outside this package that expect plain io.Reader behaviour.
type classified struct{ io.ReadCloser }

func (c classified) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = streamErr(err)
	}
	return n, err
}
