package verity

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Errors returned by this package; match them with errors.Is.
var (
	// ErrUnsupported: a hash algorithm, hash type or superblock version this
	// package does not implement (only sha256, hash type 1, version 1).
	ErrUnsupported = errors.New("verity: unsupported")
	// ErrBadParams: invalid block size, salt length, data size or root hash length.
	ErrBadParams = errors.New("verity: invalid parameters")
	// ErrUnaligned: the data size is not a multiple of the data block size.
	ErrUnaligned = errors.New("verity: data size not a multiple of the data block size")
	// ErrBadSuperblock: the hash file does not start with a valid verity superblock.
	ErrBadSuperblock = errors.New("verity: bad superblock")
	// ErrTruncated: the data or the hash file is shorter than the superblock says.
	ErrTruncated = errors.New("verity: truncated")
	// ErrMismatch: a data block, a hash block or the root hash does not match
	// (the error is a *MismatchError saying which).
	ErrMismatch = errors.New("verity: hash mismatch")
)

const (
	// DefaultBlockSize is veritysetup's default data and hash block size.
	DefaultBlockSize = 4096
	// minBlockSize and maxBlockSize bound block sizes as cryptsetup does
	// (VERITY_BLOCK_SIZE_OK in lib/verity/verity.c).
	minBlockSize = 512
	maxBlockSize = 512 * 1024
	// MaxSaltSize is the size of the salt field in the superblock.
	MaxSaltSize = 256
	// hashType1 is the "normal" (non Chrome OS) on-disk format: salt
	// prepended, digests padded to a power of two.
	hashType1 = 1
	algSHA256 = "sha256"
	// maxLevels is cryptsetup's VERITY_MAX_LEVELS.
	maxLevels = 63
)

// Params are the format parameters. The zero value of every field but UUID
// and Salt means veritysetup's default.
type Params struct {
	// HashAlg is the digest algorithm; only "sha256" (the default) is supported.
	HashAlg string
	// DataBlockSize and HashBlockSize default to 4096; each must be a power
	// of two between 512 bytes and 512 KiB.
	DataBlockSize, HashBlockSize uint32
	// Salt is prepended to every hashed block; at most 256 bytes, may be empty.
	// Use DeriveSalt for a salt that depends only on the build inputs.
	Salt []byte
	// UUID is stored in the superblock (veritysetup --uuid).
	UUID [16]byte
}

// Result describes what Format wrote.
type Result struct {
	// RootHash is the digest that goes on the kernel command line.
	RootHash []byte
	// DataBlocks is the number of data blocks covered by the tree.
	DataBlocks uint64
	// HashOffset is where the tree starts in the hash file: the superblock
	// padded to one hash block (4096 with default parameters).
	HashOffset uint64
	// Size is the total hash file size: HashOffset plus the tree.
	Size int64
}

// normalize fills in defaults and validates p.
func (p Params) normalize() (Params, error) {
	if p.HashAlg == "" {
		p.HashAlg = algSHA256
	}
	if p.HashAlg != algSHA256 {
		return p, fmt.Errorf("%w: hash algorithm %q, want %q", ErrUnsupported, p.HashAlg, algSHA256)
	}
	if p.DataBlockSize == 0 {
		p.DataBlockSize = DefaultBlockSize
	}
	if p.HashBlockSize == 0 {
		p.HashBlockSize = DefaultBlockSize
	}
	if !blockSizeOK(p.DataBlockSize) {
		return p, fmt.Errorf("%w: data block size %d, want a power of two in [%d, %d]", ErrBadParams, p.DataBlockSize, minBlockSize, maxBlockSize)
	}
	if !blockSizeOK(p.HashBlockSize) {
		return p, fmt.Errorf("%w: hash block size %d, want a power of two in [%d, %d]", ErrBadParams, p.HashBlockSize, minBlockSize, maxBlockSize)
	}
	if len(p.Salt) > MaxSaltSize {
		return p, fmt.Errorf("%w: salt is %d bytes, want at most %d", ErrBadParams, len(p.Salt), MaxSaltSize)
	}
	return p, nil
}

func blockSizeOK(n uint32) bool {
	return n >= minBlockSize && n <= maxBlockSize && n&(n-1) == 0
}

// geometry is the shape of a hash tree, computed as cryptsetup's
// VERITY_create_or_verify_hash does.
type geometry struct {
	dataBlockSize, hashBlockSize int
	digestSize, digestStride     int // stride: digest padded to a power of two
	dataBlocks                   uint64
	hashOffset                   uint64 // superblock area, in bytes
	// levels[0] is the level hashing the data; the last is the single top block.
	levels     []level
	treeBlocks uint64 // hash blocks in all levels
}

type level struct {
	blocks uint64 // hash blocks in this level
	start  uint64 // first block, counted in hash blocks from the tree start
}

func newGeometry(dataBlockSize, hashBlockSize uint32, dataBlocks uint64) (geometry, error) {
	g := geometry{
		dataBlockSize: int(dataBlockSize),
		hashBlockSize: int(hashBlockSize),
		digestSize:    sha256.Size,
		digestStride:  sha256.Size, // already a power of two
		dataBlocks:    dataBlocks,
		// The superblock is 512 bytes; the tree starts at the next hash block.
		hashOffset: alignUp(superblockSize, uint64(hashBlockSize)),
	}
	if dataBlocks == 0 {
		return g, fmt.Errorf("%w: no data blocks", ErrBadParams)
	}
	if dataBlocks > math.MaxInt64/uint64(dataBlockSize) {
		return g, fmt.Errorf("%w: %d data blocks of %d bytes overflow int64", ErrBadParams, dataBlocks, dataBlockSize)
	}
	// hashes per block = 2^perBlockBits (get_bits_down in cryptsetup).
	perBlockBits := uint(bits.Len(uint(g.hashBlockSize/g.digestStride))) - 1
	// Level i has ceil(dataBlocks / 2^(perBlockBits*(i+1))) blocks; there
	// are as many levels as it takes to get (dataBlocks-1) down to zero.
	n := 0
	for perBlockBits*uint(n) < 64 && (dataBlocks-1)>>(perBlockBits*uint(n)) > 0 {
		n++
	}
	if n > maxLevels {
		return g, fmt.Errorf("%w: %d tree levels, want at most %d", ErrBadParams, n, maxLevels)
	}
	g.levels = make([]level, n)
	for i := range g.levels {
		g.levels[i].blocks = ceilShift(dataBlocks, perBlockBits*uint(i+1))
	}
	// The top level comes first in the hash file.
	var pos uint64
	for i := n - 1; i >= 0; i-- {
		g.levels[i].start = pos
		pos += g.levels[i].blocks
	}
	g.treeBlocks = pos
	if pos > (math.MaxInt64-g.hashOffset)/uint64(hashBlockSize) {
		return g, fmt.Errorf("%w: hash tree of %d blocks overflows int64", ErrBadParams, pos)
	}
	return g, nil
}

// treeBytes is the size of the tree, without the superblock area.
func (g geometry) treeBytes() int64 { return int64(g.treeBlocks) * int64(g.hashBlockSize) }

// hashFileSize is what veritysetup leaves as the hash file size.
func (g geometry) hashFileSize() int64 { return int64(g.hashOffset) + g.treeBytes() }

// levelBytes returns level i's bytes within tree.
func (g geometry) levelBytes(tree []byte, i int) []byte {
	hb := uint64(g.hashBlockSize)
	l := g.levels[i]
	return tree[l.start*hb : (l.start+l.blocks)*hb]
}

func ceilShift(n uint64, s uint) uint64 {
	if s >= 64 {
		return 1 // n > 0 here
	}
	q := n >> s
	if n&(1<<s-1) != 0 {
		q++
	}
	return q
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }
