package verity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// superblockSize is sizeof(struct verity_sb).
const superblockSize = 512

// signature is the superblock magic, "verity" NUL-padded to 8 bytes.
var signature = [8]byte{'v', 'e', 'r', 'i', 't', 'y', 0, 0}

// Superblock is the decoded verity superblock, cryptsetup's struct verity_sb
// (lib/verity/verity.c). All integers are little endian:
//
//	off size field
//	  0    8 signature "verity\0\0"
//	  8    4 version (1)
//	 12    4 hash_type (0 Chrome OS, 1 normal)
//	 16   16 uuid (RFC 4122 byte order, as uuid_parse gives it)
//	 32   32 algorithm, NUL-padded ("sha256")
//	 64    4 data_block_size
//	 68    4 hash_block_size
//	 72    8 data_blocks
//	 80    2 salt_size
//	 82    6 padding
//	 88  256 salt
//	344  168 padding
type Superblock struct {
	Version       uint32
	HashType      uint32
	UUID          [16]byte
	HashAlg       string
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	Salt          []byte
}

// MarshalBinary encodes sb as the 512-byte on-disk superblock.
func (sb Superblock) MarshalBinary() ([]byte, error) {
	if len(sb.HashAlg) > 31 { // keep a terminating NUL, as cryptsetup does
		return nil, fmt.Errorf("%w: algorithm name %q is %d bytes, want at most 31", ErrBadParams, sb.HashAlg, len(sb.HashAlg))
	}
	if len(sb.Salt) > MaxSaltSize {
		return nil, fmt.Errorf("%w: salt is %d bytes, want at most %d", ErrBadParams, len(sb.Salt), MaxSaltSize)
	}
	b := make([]byte, superblockSize)
	copy(b[0:8], signature[:])
	le := binary.LittleEndian
	le.PutUint32(b[8:], sb.Version)
	le.PutUint32(b[12:], sb.HashType)
	copy(b[16:32], sb.UUID[:])
	copy(b[32:64], sb.HashAlg)
	le.PutUint32(b[64:], sb.DataBlockSize)
	le.PutUint32(b[68:], sb.HashBlockSize)
	le.PutUint64(b[72:], sb.DataBlocks)
	le.PutUint16(b[80:], uint16(len(sb.Salt)))
	copy(b[88:344], sb.Salt)
	return b, nil
}

// ParseSuperblock decodes and validates a superblock from the first 512 bytes
// of b. It accepts what cryptsetup's VERITY_read_sb accepts for the subset
// this package implements: version 1, hash type 1, sha256, block sizes that
// are powers of two in [512, 512 KiB], salt_size <= 256, and in addition a
// non-zero block count whose data size fits in an int64.
func ParseSuperblock(b []byte) (Superblock, error) {
	var sb Superblock
	if len(b) < superblockSize {
		return sb, fmt.Errorf("%w: superblock is %d bytes, want %d", ErrTruncated, len(b), superblockSize)
	}
	if !bytes.Equal(b[0:8], signature[:]) {
		return sb, fmt.Errorf("%w: signature %q, want %q", ErrBadSuperblock, b[0:8], signature[:])
	}
	le := binary.LittleEndian
	sb.Version = le.Uint32(b[8:])
	sb.HashType = le.Uint32(b[12:])
	copy(sb.UUID[:], b[16:32])
	alg := b[32:64]
	if i := bytes.IndexByte(alg, 0); i >= 0 {
		alg = alg[:i]
	}
	sb.HashAlg = string(alg)
	sb.DataBlockSize = le.Uint32(b[64:])
	sb.HashBlockSize = le.Uint32(b[68:])
	sb.DataBlocks = le.Uint64(b[72:])
	saltSize := int(le.Uint16(b[80:]))

	if sb.Version != 1 {
		return sb, fmt.Errorf("%w: superblock version %d, want 1", ErrUnsupported, sb.Version)
	}
	if sb.HashType != hashType1 {
		return sb, fmt.Errorf("%w: hash type %d, want %d", ErrUnsupported, sb.HashType, hashType1)
	}
	if sb.HashAlg != algSHA256 {
		return sb, fmt.Errorf("%w: hash algorithm %q, want %q", ErrUnsupported, sb.HashAlg, algSHA256)
	}
	if !blockSizeOK(sb.DataBlockSize) || !blockSizeOK(sb.HashBlockSize) {
		return sb, fmt.Errorf("%w: block sizes data %d hash %d, want powers of two in [%d, %d]",
			ErrBadSuperblock, sb.DataBlockSize, sb.HashBlockSize, minBlockSize, maxBlockSize)
	}
	if sb.DataBlocks == 0 || sb.DataBlocks > math.MaxInt64/uint64(sb.DataBlockSize) {
		return sb, fmt.Errorf("%w: %d data blocks of %d bytes", ErrBadSuperblock, sb.DataBlocks, sb.DataBlockSize)
	}
	if saltSize > MaxSaltSize {
		return sb, fmt.Errorf("%w: salt_size %d, want at most %d", ErrBadSuperblock, saltSize, MaxSaltSize)
	}
	sb.Salt = bytes.Clone(b[88 : 88+saltSize])
	return sb, nil
}

// ReadSuperblock reads and validates the superblock at offset 0 of r.
func ReadSuperblock(r io.ReaderAt) (Superblock, error) {
	b := make([]byte, superblockSize)
	n, err := r.ReadAt(b, 0)
	if n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			return Superblock{}, fmt.Errorf("%w: hash file holds %d bytes, want at least a %d-byte superblock", ErrTruncated, n, superblockSize)
		}
		return Superblock{}, fmt.Errorf("verity: reading superblock: %w", err)
	}
	return ParseSuperblock(b)
}
