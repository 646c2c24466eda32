package squashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/cocoon-appliance/cocoon/image/fstree"
)

// Read lists an image's entries with their contents, sorted with
// fstree.SortEntries. The root directory itself is not an entry.
//
// It is a parser of its own rather than go-diskfs's reader, because that
// reader drops the set-uid, set-gid and sticky bits (its FileInfo.Mode keeps
// only the 0777 bits) and so could not tell two roots apart that differ in
// them. go-diskfs reads our images; the tests check that too.
//
// Read is strict where an entry list could not show what the image holds:
// owners must be 0:0 and there must be no xattr table (fstree has neither),
// FIFOs and sockets are refused, and names must be unique, sorted and
// valid. Every offset and size is checked against the file, every block
// decompresses to at most its expected size, and file contents may not
// exceed 1 GiB plus 256 times the image size (sparse or compressed bombs).
func Read(path string) ([]fstree.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("squashfs: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("squashfs: %w", err)
	}
	size := uint64(fi.Size())
	return readImage(f, size, 1<<30+256*size)
}

type reader struct {
	r         io.ReaderAt
	size      uint64
	sb        *superblock
	codec     codec
	ids       []uint32
	frags     []fragEntry
	metaCache map[uint64]metaBlock
	fragCache map[uint32][]byte
	files     map[uint64][]byte // contents by inode reference: hard links share them
	dirsSeen  map[uint64]bool
	budget    uint64 // bytes of file content still allowed
	entries   []fstree.Entry
}

type fragEntry struct {
	start uint64
	size  uint32
}

// inode is the part of an inode Read needs.
type inode struct {
	typ  uint16 // basic type: typeDir .. typeSocket
	perm fs.FileMode

	dirBlock uint32 // directory: listing position and size
	dirOff   uint16
	dirSize  uint32

	start   uint64 // regular file
	size    uint64
	frag    uint32
	fragOff uint32
	blocks  []uint32

	target string // symlink
	rdev   uint32 // device
}

func readImage(ra io.ReaderAt, size, budget uint64) ([]fstree.Entry, error) {
	r := &reader{r: ra, size: size, budget: budget, metaCache: map[uint64]metaBlock{},
		fragCache: map[uint32][]byte{}, files: map[uint64][]byte{}, dirsSeen: map[uint64]bool{}}
	if size < superblockSize {
		return nil, fmt.Errorf("%w: %d bytes, want at least the %d-byte superblock", ErrTruncated, size, superblockSize)
	}
	b := make([]byte, superblockSize)
	if err := r.readAt(b, 0); err != nil {
		return nil, err
	}
	sb, err := parseSuperblock(b)
	if err != nil {
		return nil, err
	}
	r.sb = sb
	if sb.bytesUsed > size {
		return nil, fmt.Errorf("%w: file is %d bytes, superblock says the image uses %d", ErrTruncated, size, sb.bytesUsed)
	}
	if sb.xattrTable != invalidTable {
		return nil, fmt.Errorf("%w: image has an xattr table at %d; fstree entries carry no xattrs", ErrUnsupported, sb.xattrTable)
	}
	if !(superblockSize <= sb.inodeTable && sb.inodeTable < sb.dirTable && sb.dirTable < sb.bytesUsed) {
		return nil, fmt.Errorf("%w: inode table at %d, directory table at %d, bytes used %d: want %d <= inodes < directories < end",
			ErrFormat, sb.inodeTable, sb.dirTable, sb.bytesUsed, superblockSize)
	}
	if r.codec, err = codecByID(sb.compression); err != nil {
		return nil, err
	}
	if err := r.readIDs(); err != nil {
		return nil, err
	}
	if err := r.readFragments(); err != nil {
		return nil, err
	}
	root, err := r.inode(sb.rootInode)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	if root.typ != typeDir {
		return nil, fmt.Errorf("%w: root inode has type %d, want a directory", ErrFormat, root.typ)
	}
	if err := r.walk("", root, sb.rootInode); err != nil {
		return nil, err
	}
	fstree.SortEntries(r.entries)
	return r.entries, nil
}

func (r *reader) readAt(p []byte, off uint64) error {
	if off > r.size || uint64(len(p)) > r.size-off {
		return fmt.Errorf("%w: %d bytes at offset %d, file is %d bytes", ErrTruncated, len(p), off, r.size)
	}
	n, err := r.r.ReadAt(p, int64(off))
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: short read of %d bytes at offset %d", ErrTruncated, len(p), off)
	}
	return fmt.Errorf("squashfs: reading at %d: %w", off, err)
}

// indexedTable reads a table of n fixed-size records stored as metadata
// blocks located by an index of 64-bit positions at start (id and fragment
// tables, squashfs_fs.h SQUASHFS_ID_BLOCK_* and SQUASHFS_FRAGMENT_INDEX*).
func (r *reader) indexedTable(start uint64, n, recSize uint64, what string) ([]byte, error) {
	nblocks := (n*recSize + metaSize - 1) / metaSize
	if start > r.sb.bytesUsed || nblocks > (r.sb.bytesUsed-start)/8 {
		return nil, fmt.Errorf("%w: %s index of %d entries at %d runs past the image end %d", ErrFormat, what, nblocks, start, r.sb.bytesUsed)
	}
	index := make([]byte, nblocks*8)
	if err := r.readAt(index, start); err != nil {
		return nil, err
	}
	var out []byte
	for i := range nblocks {
		pos := le.Uint64(index[8*i:])
		b, err := r.metaBlock(pos, start)
		if err != nil {
			return nil, fmt.Errorf("%s table block %d: %w", what, i, err)
		}
		want := min(metaSize, n*recSize-i*metaSize)
		if uint64(len(b.data)) < want {
			return nil, fmt.Errorf("%w: %s table block %d holds %d bytes, want %d", ErrFormat, what, i, len(b.data), want)
		}
		out = append(out, b.data[:want]...)
	}
	return out, nil
}

func (r *reader) readIDs() error {
	if r.sb.ids == 0 {
		return fmt.Errorf("%w: id table is empty, want at least one id", ErrFormat)
	}
	b, err := r.indexedTable(r.sb.idTable, uint64(r.sb.ids), 4, "id")
	if err != nil {
		return err
	}
	for i := 0; i < len(b); i += 4 {
		r.ids = append(r.ids, le.Uint32(b[i:]))
	}
	return nil
}

func (r *reader) readFragments() error {
	if r.sb.fragments == 0 {
		return nil
	}
	b, err := r.indexedTable(r.sb.fragTable, uint64(r.sb.fragments), fragEntrySize, "fragment")
	if err != nil {
		return err
	}
	for i := 0; i < len(b); i += fragEntrySize {
		r.frags = append(r.frags, fragEntry{start: le.Uint64(b[i:]), size: le.Uint32(b[i+8:])})
	}
	return nil
}

// inode reads the inode at ref in the inode table.
func (r *reader) inode(ref uint64) (*inode, error) {
	what := fmt.Sprintf("inode %#x", ref)
	c, err := r.cursorAt(r.sb.inodeTable, r.sb.dirTable, ref, what)
	if err != nil {
		return nil, err
	}
	h, err := c.read(16)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	typ, mode := le.Uint16(h), le.Uint16(h[2:])
	uid, gid := le.Uint16(h[4:]), le.Uint16(h[6:])
	if int(uid) >= len(r.ids) || int(gid) >= len(r.ids) {
		return nil, fmt.Errorf("%w: %s: uid/gid index %d/%d, id table has %d", ErrFormat, what, uid, gid, len(r.ids))
	}
	if r.ids[uid] != 0 || r.ids[gid] != 0 {
		return nil, fmt.Errorf("%w: %s: owner %d:%d, want 0:0", ErrUnsupported, what, r.ids[uid], r.ids[gid])
	}
	in := &inode{typ: typ, perm: fs.FileMode(mode & 0o7777)}
	if typ >= typeLDir && typ <= typeLSocket {
		in.typ = typ - 7
	}
	if err := r.inodeBody(c, typ, in); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return in, nil
}

// inodeBody reads the type-specific part of an inode (squashfs_fs.h).
func (r *reader) inodeBody(c *cursor, typ uint16, in *inode) error {
	var f []uint64 // fixed fields in on-disk order
	read := func(sizes ...int) error {
		for _, s := range sizes {
			b, err := c.read(s)
			if err != nil {
				return err
			}
			switch s {
			case 2:
				f = append(f, uint64(le.Uint16(b)))
			case 4:
				f = append(f, uint64(le.Uint32(b)))
			case 8:
				f = append(f, le.Uint64(b))
			}
		}
		return nil
	}
	switch typ {
	case typeDir: // start_block nlink file_size offset parent
		if err := read(4, 4, 2, 2, 4); err != nil {
			return err
		}
		in.dirBlock, in.dirSize, in.dirOff = uint32(f[0]), uint32(f[2]), uint16(f[3])
	case typeLDir: // nlink file_size start_block parent i_count offset xattr
		if err := read(4, 4, 4, 4, 2, 2, 4); err != nil {
			return err
		}
		in.dirSize, in.dirBlock, in.dirOff = uint32(f[1]), uint32(f[2]), uint16(f[5])
	case typeFile: // start_block fragment offset file_size
		if err := read(4, 4, 4, 4); err != nil {
			return err
		}
		in.start, in.frag, in.fragOff, in.size = f[0], uint32(f[1]), uint32(f[2]), f[3]
		return r.blockList(c, in)
	case typeLFile: // start_block file_size sparse nlink fragment offset xattr
		if err := read(8, 8, 8, 4, 4, 4, 4); err != nil {
			return err
		}
		in.start, in.size, in.frag, in.fragOff = f[0], f[1], uint32(f[4]), uint32(f[5])
		return r.blockList(c, in)
	case typeSymlink, typeLSymlink: // nlink symlink_size symlink
		if err := read(4, 4); err != nil {
			return err
		}
		if f[1] == 0 || f[1] >= pathMax {
			return fmt.Errorf("%w: symlink target of %d bytes, want 1..%d", ErrFormat, f[1], pathMax-1)
		}
		t, err := c.read(int(f[1]))
		if err != nil {
			return err
		}
		if bytes.IndexByte(t, 0) >= 0 {
			return fmt.Errorf("%w: symlink target %q contains NUL", ErrFormat, t)
		}
		in.target = string(t)
	case typeBlock, typeChar, typeLBlock, typeLChar: // nlink rdev
		if err := read(4, 4); err != nil {
			return err
		}
		in.rdev = uint32(f[1])
	case typeFifo, typeSocket, typeLFifo, typeLSocket:
		return fmt.Errorf("%w: FIFO or socket (inode type %d); fstree has neither", ErrUnsupported, typ)
	default:
		return fmt.Errorf("%w: inode type %d, want 1..14", ErrFormat, typ)
	}
	return nil
}

// blockList reads a file's block sizes: one per full block, plus one for
// the tail when it is not in a fragment.
func (r *reader) blockList(c *cursor, in *inode) error {
	if in.size > r.budget {
		return fmt.Errorf("%w: file of %d bytes, %d bytes of content left to this image's limit", ErrTooLarge, in.size, r.budget)
	}
	bs := uint64(r.sb.blockSize)
	n := in.size / bs
	if in.frag == invalidFrag && in.size%bs != 0 {
		n++
	}
	for range n {
		s, err := c.u32()
		if err != nil {
			return err
		}
		in.blocks = append(in.blocks, s)
	}
	return nil
}
