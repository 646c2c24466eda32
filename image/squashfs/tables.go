package squashfs

import (
	"math"

	"github.com/cocoon-appliance/cocoon/image/fstree"
)

// writeDir writes, in post-order, the inodes of d's children, d's listing
// in the directory table and then d's own inode. parent is the inode number
// of d's parent; for the root it is the inode count + 1, as mksquashfs does.
func (b *builder) writeDir(d *node, parent uint32) error {
	subdirs := uint32(0)
	for _, c := range d.children {
		if c.Kind == fstree.Dir {
			subdirs++
			if err := b.writeDir(c, d.ino); err != nil {
				return err
			}
			continue
		}
		c.ref = b.inodes.ref()
		if err := b.inodes.write(b.inode(c)); err != nil {
			return err
		}
	}
	listing := dirListing(d.children)
	at := b.dirs.ref()
	if err := b.dirs.write(listing); err != nil {
		return err
	}

	// struct squashfs_dir_inode, or squashfs_ldir_inode when the listing
	// does not fit its 16-bit size. No directory index is written: it only
	// speeds up lookups in large directories.
	size := uint64(len(listing)) + dirSizeExtra
	nlink := 2 + subdirs
	var p []byte
	if size <= math.MaxUint16 {
		p = b.header(typeDir, d)
		p = le.AppendUint32(p, uint32(at>>16))
		p = le.AppendUint32(p, nlink)
		p = le.AppendUint16(p, uint16(size))
		p = le.AppendUint16(p, uint16(at))
		p = le.AppendUint32(p, parent)
	} else {
		p = b.header(typeLDir, d)
		p = le.AppendUint32(p, nlink)
		p = le.AppendUint32(p, uint32(size))
		p = le.AppendUint32(p, uint32(at>>16))
		p = le.AppendUint32(p, parent)
		p = le.AppendUint16(p, 0) // index count
		p = le.AppendUint16(p, uint16(at))
		p = le.AppendUint32(p, invalidXattr)
	}
	d.ref = b.inodes.ref()
	return b.inodes.write(p)
}

// header is struct squashfs_base_inode. The id table holds only 0, so the
// uid and gid indexes are 0. mksquashfs stores only the permission bits of
// the mode (SQUASHFS_MODE); the type comes from the inode type.
func (b *builder) header(typ uint16, n *node) []byte {
	p := make([]byte, 0, 64)
	p = le.AppendUint16(p, typ)
	p = le.AppendUint16(p, uint16(n.Perm&0o7777))
	p = le.AppendUint16(p, 0)
	p = le.AppendUint16(p, 0)
	p = le.AppendUint32(p, b.epoch)
	return le.AppendUint32(p, n.ino)
}

// inode encodes a non-directory inode.
func (b *builder) inode(n *node) []byte {
	var p []byte
	switch n.Kind {
	case fstree.File:
		size := uint64(len(n.Data))
		if n.start <= math.MaxUint32 && size <= math.MaxUint32 {
			// struct squashfs_reg_inode
			p = b.header(typeFile, n)
			p = le.AppendUint32(p, uint32(n.start))
			p = le.AppendUint32(p, n.frag)
			p = le.AppendUint32(p, n.fragOff)
			p = le.AppendUint32(p, uint32(size))
		} else {
			// struct squashfs_lreg_inode
			p = b.header(typeLFile, n)
			p = le.AppendUint64(p, n.start)
			p = le.AppendUint64(p, size)
			p = le.AppendUint64(p, 0) // sparse bytes
			p = le.AppendUint32(p, 1) // nlink
			p = le.AppendUint32(p, n.frag)
			p = le.AppendUint32(p, n.fragOff)
			p = le.AppendUint32(p, invalidXattr)
		}
		for _, s := range n.blocks {
			p = le.AppendUint32(p, s)
		}
	case fstree.Symlink:
		// struct squashfs_symlink_inode
		p = b.header(typeSymlink, n)
		p = le.AppendUint32(p, 1)
		p = le.AppendUint32(p, uint32(len(n.Target)))
		p = append(p, n.Target...)
	case fstree.CharDev, fstree.BlockDev:
		// struct squashfs_dev_inode; rdev as the kernel's new_encode_dev.
		typ := uint16(typeChar)
		if n.Kind == fstree.BlockDev {
			typ = typeBlock
		}
		p = b.header(typ, n)
		p = le.AppendUint32(p, 1)
		p = le.AppendUint32(p, n.Minor&0xff|n.Major<<8|(n.Minor&^0xff)<<12)
	}
	return p
}

// basicType is the type a directory entry records for n.
func basicType(n *node) uint16 {
	return map[fstree.Kind]uint16{fstree.File: typeFile, fstree.Dir: typeDir, fstree.Symlink: typeSymlink,
		fstree.CharDev: typeChar, fstree.BlockDev: typeBlock}[n.Kind]
}

// dirListing encodes a directory's entries (sorted by name) as runs under
// struct squashfs_dir_header. A new header starts when the run reaches 256
// entries, when the child's inode is in another metadata block (the header
// holds the block) or when its inode number is beyond a signed 16-bit
// offset from the header's; the kernel's readdir and lookup rely on all
// three.
func dirListing(children []*node) []byte {
	var (
		out   []byte
		at    int // offset of the current header
		count uint32
		base  uint32
		block uint64
	)
	for _, c := range children {
		diff := int64(c.ino) - int64(base)
		if count == 0 || count == maxDirCount || c.ref>>16 != block || diff < math.MinInt16 || diff > math.MaxInt16 {
			at, count, base, block, diff = len(out), 0, c.ino, c.ref>>16, 0
			out = le.AppendUint32(out, 0)
			out = le.AppendUint32(out, uint32(block))
			out = le.AppendUint32(out, base)
		}
		// struct squashfs_dir_entry
		out = le.AppendUint16(out, uint16(c.ref))
		out = le.AppendUint16(out, uint16(int16(diff)))
		out = le.AppendUint16(out, basicType(c))
		out = le.AppendUint16(out, uint16(len(c.name)-1))
		out = append(out, c.name...)
		count++
		le.PutUint32(out[at:], count-1)
	}
	return out
}

// writeTables writes the inode and directory tables, the fragment and id
// tables with their indexes, and returns the superblock. The order, each
// index directly followed by the next table, is what squashfs_fill_super
// checks (the id index must end at bytes_used, the fragment index before the
// id table).
func (b *builder) writeTables(root *node, count uint32) (*superblock, error) {
	sb := &superblock{
		inodes: count, blockSize: b.bs, fragments: b.nfrags, compression: b.c.id(),
		blockLog: log2(b.bs), flags: flagNoXattrs, ids: 1, major: 4, minor: 0,
		rootInode: root.ref, xattrTable: invalidTable, exportTable: invalidTable,
	}
	inodes, err := b.inodes.bytes()
	if err != nil {
		return nil, err
	}
	dirs, err := b.dirs.bytes()
	if err != nil {
		return nil, err
	}
	sb.inodeTable = b.pos
	if err := b.write(inodes); err != nil {
		return nil, err
	}
	sb.dirTable = b.pos
	if err := b.write(dirs); err != nil {
		return nil, err
	}
	if sb.fragTable, err = b.writeIndexed(b.frags); err != nil {
		return nil, err
	}
	if sb.idTable, err = b.writeIndexed(le.AppendUint32(nil, 0)); err != nil {
		return nil, err
	}
	sb.bytesUsed = b.pos
	return sb, nil
}

// writeIndexed writes data as metadata blocks followed by the index of
// their absolute positions, and returns the index's position (which is what
// the superblock points at for the fragment and id tables).
func (b *builder) writeIndexed(data []byte) (uint64, error) {
	m := metaWriter{c: b.c}
	var starts []uint64
	for len(data) > 0 {
		n := min(metaSize, len(data))
		starts = append(starts, b.pos+m.ref()>>16)
		if err := m.write(data[:n]); err != nil {
			return 0, err
		}
		data = data[n:]
	}
	blocks, err := m.bytes()
	if err != nil {
		return 0, err
	}
	if err := b.write(blocks); err != nil {
		return 0, err
	}
	at := b.pos
	var index []byte
	for _, s := range starts {
		index = le.AppendUint64(index, s)
	}
	return at, b.write(index)
}
