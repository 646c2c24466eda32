// Package squashfs turns an fstree.Tree into the guest's read-only root
// filesystem image, and lists an image's entries again so two roots can be
// compared file by file.
//
// The format is SquashFS 4.0 as the kernel reads it: fs/squashfs/squashfs_fs.h
// and Documentation/filesystems/squashfs.rst, with the layout rules that
// squashfs_fill_super and the table readers (id.c, fragment.c) check. The
// squashfs-tools-ng format description (doc/format.adoc) is the most complete
// prose reference.
//
// The writer is our own rather than go-diskfs's: go-diskfs v1.9.4 stages files
// in a host directory and builds the image from stat(2), and its Finalize
// writes broken images (see the package README.md). This writer builds the
// image straight from the tree, so nothing of the build machine (clock, umask,
// TMPDIR, filesystem link counts, xattrs) can reach the bytes.
package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors. Read returns errors matching ErrFormat for malformed images;
// ErrTruncated additionally matches when the file ends before the image does.
var (
	ErrFormat      = errors.New("squashfs: bad image")
	ErrTruncated   = truncated{}
	ErrUnsupported = errors.New("squashfs: unsupported")
	ErrTooLarge    = errors.New("squashfs: too large")
	ErrOptions     = errors.New("squashfs: bad options")
)

type truncated struct{}

func (truncated) Error() string        { return "squashfs: image truncated" }
func (truncated) Is(target error) bool { return target == ErrFormat }

// Options control Write.
type Options struct {
	// Epoch is SOURCE_DATE_EPOCH: the superblock's mkfs_time and every
	// inode's mtime. SquashFS times are unsigned 32-bit seconds.
	Epoch int64
	// BlockSize is the data block size, a power of two from 4 KiB to 1 MiB;
	// 0 means 128 KiB, mksquashfs's default.
	BlockSize uint32
	// Compression is "gzip" (the default, zlib streams at level 9 as
	// mksquashfs writes them; kernel SQUASHFS_ZLIB) or "zstd" (kernel
	// SQUASHFS_ZSTD). xz, lz4 and lzo are not offered: see README.md.
	Compression string
}

// Everything on disk is little endian.
var le = binary.LittleEndian

// On-disk constants (squashfs_fs.h).
const (
	magic          = 0x73717368 // "hsqs"
	superblockSize = 96
	metaSize       = 8192 // SQUASHFS_METADATA_SIZE
	metaStored     = 0x8000
	blockStored    = 1 << 24 // SQUASHFS_COMPRESSED_BIT_BLOCK: set = not compressed
	blockSizeMask  = blockStored - 1
	invalidFrag    = 0xffffffff
	invalidXattr   = 0xffffffff
	invalidTable   = ^uint64(0)
	flagNoXattrs   = 0x0200
	maxName        = 256 // SQUASHFS_NAME_LEN
	maxDirCount    = 256 // SQUASHFS_DIR_COUNT: entries under one header
	dirSizeExtra   = 3   // a directory's file_size counts "." and ".."
	fragEntrySize  = 16
	defaultBlock   = 128 << 10
	padding        = 4096 // mksquashfs pads the image to 4 KiB
	pathMax        = 4096
)

// Compression ids.
const (
	compGzip = 1
	compLzma = 2
	compLzo  = 3
	compXz   = 4
	compLz4  = 5
	compZstd = 6
)

// Inode types. Directory entries always carry the basic type.
const (
	typeDir = iota + 1
	typeFile
	typeSymlink
	typeBlock
	typeChar
	typeFifo
	typeSocket
	typeLDir
	typeLFile
	typeLSymlink
	typeLBlock
	typeLChar
	typeLFifo
	typeLSocket
)

// superblock is struct squashfs_super_block.
type superblock struct {
	inodes      uint32
	mkfsTime    uint32
	blockSize   uint32
	fragments   uint32
	compression uint16
	blockLog    uint16
	flags       uint16
	ids         uint16
	major       uint16
	minor       uint16
	rootInode   uint64
	bytesUsed   uint64
	idTable     uint64
	xattrTable  uint64
	inodeTable  uint64
	dirTable    uint64
	fragTable   uint64
	exportTable uint64
}

func (s *superblock) marshal() []byte {
	b := make([]byte, superblockSize)
	le.PutUint32(b[0:], magic)
	le.PutUint32(b[4:], s.inodes)
	le.PutUint32(b[8:], s.mkfsTime)
	le.PutUint32(b[12:], s.blockSize)
	le.PutUint32(b[16:], s.fragments)
	le.PutUint16(b[20:], s.compression)
	le.PutUint16(b[22:], s.blockLog)
	le.PutUint16(b[24:], s.flags)
	le.PutUint16(b[26:], s.ids)
	le.PutUint16(b[28:], s.major)
	le.PutUint16(b[30:], s.minor)
	le.PutUint64(b[32:], s.rootInode)
	le.PutUint64(b[40:], s.bytesUsed)
	le.PutUint64(b[48:], s.idTable)
	le.PutUint64(b[56:], s.xattrTable)
	le.PutUint64(b[64:], s.inodeTable)
	le.PutUint64(b[72:], s.dirTable)
	le.PutUint64(b[80:], s.fragTable)
	le.PutUint64(b[88:], s.exportTable)
	return b
}

func parseSuperblock(b []byte) (*superblock, error) {
	if m := le.Uint32(b[0:]); m != magic {
		return nil, fmt.Errorf("%w: magic %#08x, want %#08x (\"hsqs\")", ErrFormat, m, magic)
	}
	s := &superblock{
		inodes: le.Uint32(b[4:]), mkfsTime: le.Uint32(b[8:]), blockSize: le.Uint32(b[12:]),
		fragments: le.Uint32(b[16:]), compression: le.Uint16(b[20:]), blockLog: le.Uint16(b[22:]),
		flags: le.Uint16(b[24:]), ids: le.Uint16(b[26:]), major: le.Uint16(b[28:]), minor: le.Uint16(b[30:]),
		rootInode: le.Uint64(b[32:]), bytesUsed: le.Uint64(b[40:]), idTable: le.Uint64(b[48:]),
		xattrTable: le.Uint64(b[56:]), inodeTable: le.Uint64(b[64:]), dirTable: le.Uint64(b[72:]),
		fragTable: le.Uint64(b[80:]), exportTable: le.Uint64(b[88:]),
	}
	if s.major != 4 || s.minor != 0 {
		return nil, fmt.Errorf("%w: version %d.%d, want 4.0", ErrFormat, s.major, s.minor)
	}
	if err := checkBlockSize(s.blockSize); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if 1<<s.blockLog != s.blockSize {
		return nil, fmt.Errorf("%w: block_log %d does not match block size %d", ErrFormat, s.blockLog, s.blockSize)
	}
	return s, nil
}

// checkBlockSize enforces mksquashfs's range, which the kernel also needs
// (block_size <= SQUASHFS_FILE_MAX_SIZE).
func checkBlockSize(bs uint32) error {
	if bs < 4096 || bs > 1<<20 || bs&(bs-1) != 0 {
		return fmt.Errorf("block size %d, want a power of two from 4096 to 1048576", bs)
	}
	return nil
}

func log2(v uint32) uint16 {
	var n uint16
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}
