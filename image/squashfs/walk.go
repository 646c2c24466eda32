package squashfs

import (
	"fmt"
	"strings"

	"github.com/cocoon-appliance/cocoon/image/fstree"
)

// walk lists directory d (at path p, inode reference ref) and everything
// below it. Each directory may be reached once, so a crafted image cannot
// loop.
func (r *reader) walk(p string, d *inode, ref uint64) error {
	if r.dirsSeen[ref] {
		return fmt.Errorf("%w: directory inode %#x reached twice (at %q)", ErrFormat, ref, p)
	}
	r.dirsSeen[ref] = true
	if d.dirSize < dirSizeExtra {
		return fmt.Errorf("%w: directory %q: file_size %d, want at least %d", ErrFormat, p, d.dirSize, dirSizeExtra)
	}
	left := int64(d.dirSize - dirSizeExtra)
	if left == 0 {
		return nil
	}
	c, err := r.cursorAt(r.sb.dirTable, r.sb.bytesUsed, uint64(d.dirBlock)<<16|uint64(d.dirOff), "directory "+p)
	if err != nil {
		return err
	}
	prev := ""
	for left > 0 {
		// struct squashfs_dir_header: count-1, start_block, inode_number
		if left < 12 {
			return fmt.Errorf("%w: directory %q: %d bytes left, want a 12-byte header", ErrFormat, p, left)
		}
		h, err := c.read(12)
		if err != nil {
			return fmt.Errorf("directory %q: %w", p, err)
		}
		left -= 12
		count, block := uint64(le.Uint32(h))+1, uint64(le.Uint32(h[4:]))
		if count > maxDirCount {
			return fmt.Errorf("%w: directory %q: header counts %d entries, at most %d", ErrFormat, p, count, maxDirCount)
		}
		for range count {
			// struct squashfs_dir_entry: offset, inode_number delta, type, size-1, name
			if left < 8 {
				return fmt.Errorf("%w: directory %q: %d bytes left, want an 8-byte entry", ErrFormat, p, left)
			}
			e, err := c.read(8)
			if err != nil {
				return fmt.Errorf("directory %q: %w", p, err)
			}
			off, typ, nlen := le.Uint16(e), le.Uint16(e[4:]), int64(le.Uint16(e[6:]))+1
			left -= 8
			if nlen > maxName || nlen > left {
				return fmt.Errorf("%w: directory %q: name of %d bytes, %d left, at most %d allowed", ErrFormat, p, nlen, left, maxName)
			}
			nb, err := c.read(int(nlen))
			if err != nil {
				return fmt.Errorf("directory %q: %w", p, err)
			}
			left -= nlen
			name := string(nb)
			if name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
				return fmt.Errorf("%w: directory %q: entry name %q", ErrFormat, p, name)
			}
			if name <= prev {
				return fmt.Errorf("%w: directory %q: entry %q after %q, want names strictly ascending", ErrFormat, p, name, prev)
			}
			prev = name
			if err := r.entry(p, name, typ, block<<16|uint64(off)); err != nil {
				return err
			}
		}
	}
	return nil
}

// entry reads the inode a directory entry points at and records it.
func (r *reader) entry(dir, name string, typ uint16, ref uint64) error {
	p := name
	if dir != "" {
		p = dir + "/" + name
	}
	if len(p) >= pathMax {
		return fmt.Errorf("%w: path %.40q... is %d bytes, at most %d", ErrTooLarge, p, len(p), pathMax-1)
	}
	in, err := r.inode(ref)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if in.typ != typ {
		return fmt.Errorf("%w: %s: directory entry says type %d, inode says %d", ErrFormat, p, typ, in.typ)
	}
	e := fstree.Entry{Path: p, Perm: in.perm}
	switch in.typ {
	case typeDir:
		e.Kind = fstree.Dir
		r.entries = append(r.entries, e)
		return r.walk(p, in, ref)
	case typeFile:
		e.Kind = fstree.File
		if e.Data, err = r.fileData(ref, in); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	case typeSymlink:
		e.Kind, e.Target = fstree.Symlink, in.target
	case typeChar, typeBlock:
		// new_decode_dev
		e.Kind, e.Major, e.Minor = fstree.CharDev, (in.rdev&0xfff00)>>8, in.rdev&0xff|(in.rdev>>12)&0xfff00
		if in.typ == typeBlock {
			e.Kind = fstree.BlockDev
		}
	}
	r.entries = append(r.entries, e)
	return nil
}

// fileData assembles a file from its blocks and fragment. Every block must
// decompress to exactly its share of the file; a stored size of 0 is a
// sparse block of zeros.
func (r *reader) fileData(ref uint64, in *inode) ([]byte, error) {
	if d, ok := r.files[ref]; ok {
		return d, nil
	}
	if in.size > r.budget {
		return nil, fmt.Errorf("%w: file of %d bytes, %d bytes of content left to this image's limit", ErrTooLarge, in.size, r.budget)
	}
	r.budget -= in.size
	bs := uint64(r.sb.blockSize)
	data := make([]byte, 0, min(in.size, 1<<20)) // grows with what the blocks really hold
	pos := in.start
	for i, s := range in.blocks {
		want := min(bs, in.size-uint64(i)*bs)
		stored := uint64(s & blockSizeMask)
		if s&^(blockStored|blockSizeMask) != 0 || stored > bs {
			return nil, fmt.Errorf("%w: block %d: size word %#x", ErrFormat, i, s)
		}
		if stored == 0 {
			data = append(data, make([]byte, want)...)
			continue
		}
		if pos > r.sb.bytesUsed || stored > r.sb.bytesUsed-pos {
			return nil, fmt.Errorf("%w: block %d: %d bytes at %d, image ends at %d", ErrFormat, i, stored, pos, r.sb.bytesUsed)
		}
		raw := make([]byte, stored)
		if err := r.readAt(raw, pos); err != nil {
			return nil, err
		}
		pos += stored
		blk := raw
		if s&blockStored == 0 {
			var err error
			if blk, err = r.codec.decompress(raw, int(want)); err != nil {
				return nil, fmt.Errorf("block %d at %d: %w", i, pos-stored, err)
			}
		}
		if uint64(len(blk)) != want {
			return nil, fmt.Errorf("%w: block %d at %d holds %d bytes, want %d", ErrFormat, i, pos-stored, len(blk), want)
		}
		data = append(data, blk...)
	}
	if in.frag != invalidFrag {
		tail := in.size - uint64(len(in.blocks))*bs
		fb, err := r.fragment(in.frag)
		if err != nil {
			return nil, err
		}
		if uint64(in.fragOff) > uint64(len(fb)) || tail > uint64(len(fb))-uint64(in.fragOff) {
			return nil, fmt.Errorf("%w: tail of %d bytes at offset %d in a %d-byte fragment", ErrFormat, tail, in.fragOff, len(fb))
		}
		data = append(data, fb[in.fragOff:uint64(in.fragOff)+tail]...)
	}
	if uint64(len(data)) != in.size {
		return nil, fmt.Errorf("%w: %d bytes of data, file size is %d", ErrFormat, len(data), in.size)
	}
	r.files[ref] = data
	return data, nil
}

// fragment returns fragment block i, decompressed.
func (r *reader) fragment(i uint32) ([]byte, error) {
	if b, ok := r.fragCache[i]; ok {
		return b, nil
	}
	if uint64(i) >= uint64(len(r.frags)) {
		return nil, fmt.Errorf("%w: fragment %d, image has %d", ErrFormat, i, len(r.frags))
	}
	f := r.frags[i]
	stored := uint64(f.size & blockSizeMask)
	if f.size&^(blockStored|blockSizeMask) != 0 || stored == 0 || stored > uint64(r.sb.blockSize) ||
		f.start > r.sb.bytesUsed || stored > r.sb.bytesUsed-f.start {
		return nil, fmt.Errorf("%w: fragment %d: %#x bytes at %d, image ends at %d", ErrFormat, i, f.size, f.start, r.sb.bytesUsed)
	}
	raw := make([]byte, stored)
	if err := r.readAt(raw, f.start); err != nil {
		return nil, err
	}
	b := raw
	if f.size&blockStored == 0 {
		var err error
		if b, err = r.codec.decompress(raw, int(r.sb.blockSize)); err != nil {
			return nil, fmt.Errorf("fragment %d: %w", i, err)
		}
	}
	r.fragCache[i] = b
	return b, nil
}
