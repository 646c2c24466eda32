package squashfs

import (
	"encoding/binary"
	"fmt"
)

// Metadata (inode, directory, fragment and id tables) is stored as a chain
// of blocks of at most 8 KiB uncompressed, each preceded by a 16-bit header:
// the stored length, with bit 15 set when the block is stored uncompressed.
// A reference to something in a table is (offset of its block from the
// table start) << 16 | (offset inside the uncompressed block).

// metaWriter builds one table in memory. Blocks are cut at exactly 8 KiB,
// like mksquashfs, so a reference never points at offset 8192.
type metaWriter struct {
	c   codec
	out []byte // finished blocks, headers included
	cur []byte // the block being filled
}

// ref is the reference of the next byte to be written.
func (m *metaWriter) ref() uint64 { return uint64(len(m.out))<<16 | uint64(len(m.cur)) }

func (m *metaWriter) write(p []byte) error {
	for len(p) > 0 {
		n := min(metaSize-len(m.cur), len(p))
		m.cur = append(m.cur, p[:n]...)
		p = p[n:]
		if len(m.cur) == metaSize {
			if err := m.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *metaWriter) flush() error {
	if len(m.cur) == 0 {
		return nil
	}
	z, err := m.c.compress(m.cur)
	if err != nil {
		return err
	}
	hdr := uint16(len(z))
	if len(z) >= len(m.cur) {
		z, hdr = m.cur, uint16(len(m.cur))|metaStored
	}
	m.out = binary.LittleEndian.AppendUint16(m.out, hdr)
	m.out = append(m.out, z...)
	m.cur = m.cur[:0]
	return nil
}

// bytes flushes the last block and returns the table.
func (m *metaWriter) bytes() ([]byte, error) {
	if err := m.flush(); err != nil {
		return nil, err
	}
	return m.out, nil
}

// metaBlock is one decompressed metadata block and where the next begins.
type metaBlock struct {
	data []byte
	next uint64
}

// metaBlock reads the metadata block at absolute offset pos. It must end
// before limit, the start of whatever follows its table.
func (r *reader) metaBlock(pos, limit uint64) (metaBlock, error) {
	if b, ok := r.metaCache[pos]; ok {
		return b, nil
	}
	if pos > limit || limit-pos < 2 {
		return metaBlock{}, fmt.Errorf("%w: metadata block at %d, table ends at %d", ErrFormat, pos, limit)
	}
	var h [2]byte
	if err := r.readAt(h[:], pos); err != nil {
		return metaBlock{}, err
	}
	hdr := binary.LittleEndian.Uint16(h[:])
	size := uint64(hdr &^ metaStored)
	if size == 0 || size > metaSize || size > limit-pos-2 {
		return metaBlock{}, fmt.Errorf("%w: metadata block at %d: stored size %d, want 1..%d within its table (ends at %d)", ErrFormat, pos, size, metaSize, limit)
	}
	raw := make([]byte, size)
	if err := r.readAt(raw, pos+2); err != nil {
		return metaBlock{}, err
	}
	data := raw
	if hdr&metaStored == 0 {
		var err error
		if data, err = r.codec.decompress(raw, metaSize); err != nil {
			return metaBlock{}, fmt.Errorf("metadata block at %d: %w", pos, err)
		}
		if len(data) == 0 {
			return metaBlock{}, fmt.Errorf("%w: metadata block at %d is empty", ErrFormat, pos)
		}
	}
	b := metaBlock{data: data, next: pos + 2 + size}
	r.metaCache[pos] = b
	return b, nil
}

// cursor reads a byte stream that runs through consecutive metadata blocks
// of one table.
type cursor struct {
	r     *reader
	limit uint64
	blk   metaBlock
	off   int
}

// cursorAt opens table (which starts at start and ends at limit) at ref.
func (r *reader) cursorAt(start, limit, ref uint64, what string) (*cursor, error) {
	block, off := ref>>16, int(ref&0xffff)
	if block > limit-start {
		return nil, fmt.Errorf("%w: %s reference %#x points past its table", ErrFormat, what, ref)
	}
	b, err := r.metaBlock(start+block, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if off >= len(b.data) {
		return nil, fmt.Errorf("%w: %s reference %#x: offset %d in a %d-byte block", ErrFormat, what, ref, off, len(b.data))
	}
	return &cursor{r: r, limit: limit, blk: b, off: off}, nil
}

// read returns the next n bytes.
func (c *cursor) read(n int) ([]byte, error) {
	if n <= len(c.blk.data)-c.off {
		p := c.blk.data[c.off : c.off+n]
		c.off += n
		return p, nil
	}
	var p []byte
	for n > 0 {
		if c.off == len(c.blk.data) {
			b, err := c.r.metaBlock(c.blk.next, c.limit)
			if err != nil {
				return nil, err
			}
			c.blk, c.off = b, 0
		}
		k := min(n, len(c.blk.data)-c.off)
		p = append(p, c.blk.data[c.off:c.off+k]...)
		c.off += k
		n -= k
	}
	return p, nil
}

func (c *cursor) u32() (uint32, error) {
	b, err := c.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}
