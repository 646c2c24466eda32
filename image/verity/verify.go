package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// MismatchError says which block failed verification. It matches ErrMismatch.
type MismatchError struct {
	// Area is "data" for a data block, "hash" for a hash block, or "root"
	// when the top of the tree does not match the expected root hash.
	Area string
	// Level is the tree level of a hash block (0 hashes the data).
	Level int
	// Block is the data block number (Area "data") or the hash block number
	// counted from the start of the hash file (Area "hash" and "root").
	Block uint64
	// Offset is the byte offset of that block in the data or hash file.
	Offset int64
	// Got is the digest of the block as found, Want the digest recorded above it.
	Got, Want []byte
}

func (e *MismatchError) Error() string {
	what := fmt.Sprintf("data block %d (offset %d)", e.Block, e.Offset)
	if e.Area != "data" {
		what = fmt.Sprintf("hash block %d (level %d, offset %d)", e.Block, e.Level, e.Offset)
	}
	want := "the digest recorded in its parent hash block"
	if e.Area == "root" {
		want = "the root hash"
	}
	return fmt.Sprintf("verity: hash mismatch: %s hashes to %s, want %s %s", what,
		hex.EncodeToString(e.Got), want, hex.EncodeToString(e.Want))
}

// Is makes errors.Is(err, ErrMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == ErrMismatch }

// Verify checks data against the superblock and tree in hash and against
// rootHash. Parameters (block sizes, block count, salt) come from the
// superblock at offset 0 of hash. It walks the tree from the top as the kernel
// does: the top block against rootHash, each hash block against the digest in
// its parent, then every data block against level 0, so a corrupted hash
// block is reported as such and not as bad data. The first failure is
// returned as a *MismatchError (errors.Is(err, ErrMismatch)).
//
// dataSize may exceed the covered area (a partition larger than its
// filesystem); only the DataBlocks blocks the superblock names are checked,
// as by the kernel. Less data than that, or a hash file shorter than the
// tree, is ErrTruncated.
func Verify(data io.ReaderAt, dataSize int64, hash io.ReaderAt, rootHash []byte) error {
	sb, err := ReadSuperblock(hash)
	if err != nil {
		return err
	}
	if len(rootHash) != sha256.Size {
		return fmt.Errorf("%w: root hash is %d bytes, want %d for %s", ErrBadParams, len(rootHash), sha256.Size, sb.HashAlg)
	}
	g, err := newGeometry(sb.DataBlockSize, sb.HashBlockSize, sb.DataBlocks)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSuperblock, err)
	}
	if need := int64(sb.DataBlocks) * int64(sb.DataBlockSize); dataSize < need {
		return fmt.Errorf("%w: data is %d bytes, superblock covers %d blocks of %d = %d bytes",
			ErrTruncated, dataSize, sb.DataBlocks, sb.DataBlockSize, need)
	}

	tree := make([]byte, g.treeBytes())
	if n, err := hash.ReadAt(tree, int64(g.hashOffset)); n < len(tree) {
		if err == nil || errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: hash file is %d bytes, want %d (superblock area %d + %d hash blocks of %d)",
				ErrTruncated, int64(g.hashOffset)+int64(n), g.hashFileSize(), g.hashOffset, g.treeBlocks, g.hashBlockSize)
		}
		return fmt.Errorf("verity: reading hash tree: %w", err)
	}

	hb := int64(g.hashBlockSize)
	blockOffset := func(lvl int, i uint64) int64 {
		return int64(g.hashOffset) + int64(g.levels[lvl].start+i)*hb
	}
	if top := len(g.levels) - 1; top >= 0 {
		if got := digest(sb.Salt, g.levelBytes(tree, top)); !bytes.Equal(got, rootHash) {
			off := blockOffset(top, 0)
			return &MismatchError{Area: "root", Level: top, Block: uint64(off / hb), Offset: off, Got: got, Want: rootHash}
		}
	}
	// Each level below the top, against the digests in the level above it.
	for lvl := len(g.levels) - 2; lvl >= 0; lvl-- {
		got := make([]byte, int(g.levels[lvl].blocks)*g.digestStride)
		_ = hashBlocks(bytes.NewReader(g.levelBytes(tree, lvl)), g.levels[lvl].blocks, g.hashBlockSize, sb.Salt, got, g.digestStride)
		if i, ok := firstDiff(got, g.levelBytes(tree, lvl+1), g.digestStride, g.digestSize); !ok {
			off := blockOffset(lvl, i)
			return &MismatchError{Area: "hash", Level: lvl, Block: uint64(off / hb), Offset: off,
				Got: digestAt(got, i, g.digestStride, g.digestSize), Want: digestAt(g.levelBytes(tree, lvl+1), i, g.digestStride, g.digestSize)}
		}
	}
	// The data, against level 0 (or the root hash for a lone block).
	got := make([]byte, int(g.dataBlocks)*g.digestStride)
	if err := hashBlocks(data, g.dataBlocks, g.dataBlockSize, sb.Salt, got, g.digestStride); err != nil {
		return err
	}
	want := rootHash
	if len(g.levels) > 0 {
		want = g.levelBytes(tree, 0)
	}
	if i, ok := firstDiff(got, want, g.digestStride, g.digestSize); !ok {
		return &MismatchError{Area: "data", Block: i, Offset: int64(i) * int64(g.dataBlockSize),
			Got: digestAt(got, i, g.digestStride, g.digestSize), Want: digestAt(want, i, g.digestStride, g.digestSize)}
	}
	return nil
}

// firstDiff compares the len(got)/stride digests in got with those at the
// start of want and returns the index of the first that differs.
func firstDiff(got, want []byte, stride, size int) (uint64, bool) {
	if bytes.Equal(got, want[:len(got)]) {
		return 0, true
	}
	for i := 0; i*stride < len(got); i++ {
		if !bytes.Equal(digestAt(got, uint64(i), stride, size), digestAt(want, uint64(i), stride, size)) {
			return uint64(i), false
		}
	}
	return 0, true // only padding between digests differs, and it is covered by the parent
}

func digestAt(b []byte, i uint64, stride, size int) []byte {
	o := int(i) * stride
	return bytes.Clone(b[o : o+size])
}
