package verity

import (
	"crypto/sha256"
	"fmt"
	"io"
)

// Format hashes the first dataSize bytes of data and writes the superblock
// and the hash tree to hash, starting at offset 0, exactly as
// `veritysetup format --salt=HEX --uuid=UUID data hash` does: Result.Size
// bytes, the area between the superblock and Result.HashOffset and the tail
// of every level zero-filled. Bytes of hash past Result.Size are not touched.
//
// dataSize must be a positive multiple of the data block size (ErrUnaligned).
// data must allow concurrent ReadAt calls (as io.ReaderAt promises; *os.File
// does), since the leaf level is hashed in parallel. The tree is built in
// memory: about dataSize/128 bytes with the default parameters.
func Format(data io.ReaderAt, dataSize int64, hash io.WriterAt, p Params) (Result, error) {
	p, err := p.normalize()
	if err != nil {
		return Result{}, err
	}
	if dataSize <= 0 {
		return Result{}, fmt.Errorf("%w: data size %d, want > 0", ErrBadParams, dataSize)
	}
	if dataSize%int64(p.DataBlockSize) != 0 {
		return Result{}, fmt.Errorf("%w: %d bytes is not a multiple of %d", ErrUnaligned, dataSize, p.DataBlockSize)
	}
	g, err := newGeometry(p.DataBlockSize, p.HashBlockSize, uint64(dataSize)/uint64(p.DataBlockSize))
	if err != nil {
		return Result{}, err
	}
	sb, err := Superblock{
		Version:       1,
		HashType:      hashType1,
		UUID:          p.UUID,
		HashAlg:       p.HashAlg,
		DataBlockSize: p.DataBlockSize,
		HashBlockSize: p.HashBlockSize,
		DataBlocks:    g.dataBlocks,
		Salt:          p.Salt,
	}.MarshalBinary()
	if err != nil {
		return Result{}, err
	}

	tree := make([]byte, g.treeBytes())
	leaves := make([]byte, sha256.Size) // the lone digest when there is no tree
	if len(g.levels) > 0 {
		leaves = g.levelBytes(tree, 0)
	}
	if err := hashBlocks(data, g.dataBlocks, g.dataBlockSize, p.Salt, leaves, g.digestStride); err != nil {
		return Result{}, err
	}
	root := buildUpper(g, tree, p.Salt, leaves)

	head := make([]byte, g.hashOffset)
	copy(head, sb)
	if err := writeFull(hash, head, 0); err != nil {
		return Result{}, err
	}
	if err := writeFull(hash, tree, int64(g.hashOffset)); err != nil {
		return Result{}, err
	}
	return Result{RootHash: root, DataBlocks: g.dataBlocks, HashOffset: g.hashOffset, Size: g.hashFileSize()}, nil
}

func writeFull(w io.WriterAt, b []byte, off int64) error {
	if len(b) == 0 {
		return nil
	}
	n, err := w.WriteAt(b, off)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("verity: writing %d bytes of hash file at offset %d: %w", len(b), off, err)
	}
	return nil
}

// saltDomain separates DeriveSalt's digests from any other use of sha256 over
// the same seed.
const saltDomain = "cocoon verity salt v1\x00"

// DeriveSalt returns sha256("cocoon verity salt v1\x00" || seed). A salt that
// depends only on the build inputs keeps the image reproducible, where
// veritysetup's default random salt would change the root hash on every build.
func DeriveSalt(seed []byte) []byte {
	h := sha256.New()
	h.Write([]byte(saltDomain))
	h.Write(seed)
	return h.Sum(nil)
}
