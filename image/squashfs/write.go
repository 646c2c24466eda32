package squashfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"

	"github.com/cocoon-appliance/cocoon/image/fstree"
)

// Write creates a squashfs image at out from t. The root directory has mode
// 0755; every inode is owned by 0:0 and has mtime o.Epoch.
//
// The layout is mksquashfs's: superblock, data and fragment blocks (in
// t.Entries() order), inode table, directory table, fragment table, id
// table, zero padding to 4 KiB. There is no export (NFS) table and no xattr
// table. Inodes are numbered 1..N in post-order (children before their
// directory, the root last), which lets each directory's listing be written
// as soon as its children's inodes are. Nothing depends on map order, the
// clock or the host: the same tree and options always give the same bytes.
func Write(out string, t *fstree.Tree, o Options) error {
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	err = writeImage(f, t, o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(err, os.Remove(out))
	}
	return nil
}

// file is what writeImage needs of its output: sequential writes for the
// body, one positioned write for the superblock at the end.
type file interface {
	io.Writer
	io.WriterAt
}

// node is an entry, or the root, with what the tables need to know of it.
type node struct {
	fstree.Entry
	name     string
	children []*node // sorted by name: the order of t.Entries()
	ino      uint32
	ref      uint64 // inode reference, once its inode is written

	// data placement of a regular file
	start   uint64
	blocks  []uint32 // stored sizes, blockStored set when uncompressed
	frag    uint32
	fragOff uint32
}

type builder struct {
	out   *bufio.Writer
	pos   uint64 // bytes written so far
	bs    uint32
	c     codec
	epoch uint32

	fragBuf []byte
	frags   []byte // fragment table entries
	nfrags  uint32

	inodes, dirs metaWriter
}

func writeImage(f file, t *fstree.Tree, o Options) error {
	if o.Epoch < 0 || o.Epoch > math.MaxUint32 {
		return fmt.Errorf("%w: epoch %d, want 0..%d (squashfs times are 32 bits)", ErrOptions, o.Epoch, uint32(math.MaxUint32))
	}
	bs := o.BlockSize
	if bs == 0 {
		bs = defaultBlock
	}
	if err := checkBlockSize(bs); err != nil {
		return fmt.Errorf("%w: %w", ErrOptions, err)
	}
	c, err := newCodec(o.Compression)
	if err != nil {
		return err
	}
	return writeWith(f, t, o.Epoch, bs, c)
}

// writeWith is writeImage with validated options and a chosen codec; the
// fuzz test passes one that never compresses, to get seeds whose structure
// the fuzzer can mutate directly.
func writeWith(f file, t *fstree.Tree, epoch int64, bs uint32, c codec) error {
	root, files, err := buildTree(t)
	if err != nil {
		return err
	}
	b := &builder{out: bufio.NewWriterSize(f, 1<<20), bs: bs, c: c, epoch: uint32(epoch),
		inodes: metaWriter{c: c}, dirs: metaWriter{c: c}}

	if err := b.write(make([]byte, superblockSize)); err != nil {
		return err
	}
	for _, n := range files {
		if err := b.writeData(n); err != nil {
			return err
		}
	}
	if err := b.flushFragment(); err != nil {
		return err
	}
	count := number(root, 0)
	if err := b.writeDir(root, count+1); err != nil {
		return err
	}
	sb, err := b.writeTables(root, count)
	if err != nil {
		return err
	}
	sb.mkfsTime = b.epoch
	if pad := (padding - b.pos%padding) % padding; pad > 0 {
		if err := b.write(make([]byte, pad)); err != nil {
			return err
		}
	}
	if err := b.out.Flush(); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	if _, err := f.WriteAt(sb.marshal(), 0); err != nil {
		return fmt.Errorf("squashfs: writing superblock: %w", err)
	}
	return nil
}

// buildTree links the entries under a root node and returns the regular
// files in t.Entries() order, the order their data is written in.
func buildTree(t *fstree.Tree) (*node, []*node, error) {
	root := &node{Entry: fstree.Entry{Kind: fstree.Dir, Perm: 0o755}}
	dirs := map[string]*node{".": root}
	var files []*node
	for _, e := range t.Entries() {
		n := &node{Entry: e, name: path.Base(e.Path)}
		if len(n.name) > maxName {
			return nil, nil, fmt.Errorf("%w: %s: name is %d bytes, squashfs allows %d", ErrTooLarge, e.Path, len(n.name), maxName)
		}
		if len(e.Path) >= pathMax {
			return nil, nil, fmt.Errorf("%w: %.40s...: path is %d bytes, PATH_MAX allows %d", ErrTooLarge, e.Path, len(e.Path), pathMax-1)
		}
		if e.Perm&^0o7777 != 0 {
			return nil, nil, fmt.Errorf("%w: %s: perm %#o has non-permission bits", ErrUnsupported, e.Path, uint32(e.Perm))
		}
		switch e.Kind {
		case fstree.File:
			files = append(files, n)
		case fstree.Dir:
			dirs[e.Path] = n
		case fstree.Symlink:
			if len(e.Target) >= pathMax {
				return nil, nil, fmt.Errorf("%w: %s: link target is %d bytes, the kernel allows %d", ErrTooLarge, e.Path, len(e.Target), pathMax-1)
			}
		case fstree.CharDev, fstree.BlockDev:
			// new_encode_dev: 12-bit major, 20-bit minor.
			if e.Major >= 1<<12 || e.Minor >= 1<<20 {
				return nil, nil, fmt.Errorf("%w: %s: device %d:%d, squashfs holds majors < 4096 and minors < 1048576", ErrTooLarge, e.Path, e.Major, e.Minor)
			}
		default:
			return nil, nil, fmt.Errorf("%w: %s: kind %s", ErrUnsupported, e.Path, e.Kind)
		}
		parent := dirs[path.Dir(e.Path)]
		parent.children = append(parent.children, n)
	}
	return root, files, nil
}

// number assigns inode numbers in post-order from next+1 and returns the
// last one given, which is the root's and the inode count.
func number(n *node, next uint32) uint32 {
	for _, c := range n.children {
		if c.Kind == fstree.Dir {
			next = number(c, next)
		} else {
			next++
			c.ino = next
		}
	}
	next++
	n.ino = next
	return next
}

func (b *builder) write(p []byte) error {
	n, err := b.out.Write(p)
	b.pos += uint64(n)
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	return nil
}

// writeData writes a file's full blocks, each compressed on its own and
// stored raw when compression does not shrink it, and queues the tail (the
// last size % block_size bytes) into the current fragment block.
func (b *builder) writeData(n *node) error {
	data := n.Data
	n.frag = invalidFrag
	if len(data) >= int(b.bs) {
		n.start = b.pos
	}
	for len(data) >= int(b.bs) {
		blk := data[:b.bs]
		data = data[b.bs:]
		z, err := b.c.compress(blk)
		if err != nil {
			return fmt.Errorf("squashfs: compressing %s: %w", n.Path, err)
		}
		size := uint32(len(z))
		if len(z) >= len(blk) {
			z, size = blk, uint32(len(blk))|blockStored
		}
		if err := b.write(z); err != nil {
			return err
		}
		n.blocks = append(n.blocks, size)
	}
	if len(data) == 0 {
		return nil
	}
	if len(b.fragBuf)+len(data) > int(b.bs) {
		if err := b.flushFragment(); err != nil {
			return err
		}
	}
	n.frag, n.fragOff = b.nfrags, uint32(len(b.fragBuf))
	b.fragBuf = append(b.fragBuf, data...)
	return nil
}

// flushFragment writes the pending fragment block and its table entry
// (struct squashfs_fragment_entry: start, size, unused).
func (b *builder) flushFragment() error {
	if len(b.fragBuf) == 0 {
		return nil
	}
	z, err := b.c.compress(b.fragBuf)
	if err != nil {
		return fmt.Errorf("squashfs: compressing fragment: %w", err)
	}
	size := uint32(len(z))
	if len(z) >= len(b.fragBuf) {
		z, size = b.fragBuf, uint32(len(b.fragBuf))|blockStored
	}
	var e [fragEntrySize]byte
	le.PutUint64(e[0:], b.pos)
	le.PutUint32(e[8:], size)
	b.frags = append(b.frags, e[:]...)
	b.nfrags++
	if err := b.write(z); err != nil {
		return err
	}
	b.fragBuf = b.fragBuf[:0]
	return nil
}
