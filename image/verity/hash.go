package verity

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// chunkSize is how much each worker reads per ReadAt. Large reads keep the
// syscall count low (veritysetup reads one block per call); 2 MiB keeps the
// per-worker buffer small and spreads even small inputs over the workers.
const chunkSize = 2 << 20

// hashBlocks sets out[i*stride : i*stride+32] = sha256(salt || block i) for
// the n blocks of size bs at the start of r. Chunks of blocks are handed out
// to GOMAXPROCS workers, each with its own read buffer and reused hash state;
// r must allow concurrent ReadAt calls, as the io.ReaderAt contract requires.
// A short read fails with ErrTruncated.
func hashBlocks(r io.ReaderAt, n uint64, bs int, salt []byte, out []byte, stride int) error {
	per := uint64(max(1, chunkSize/bs)) // blocks per chunk
	chunks := (n + per - 1) / per
	workers := uint64(runtime.GOMAXPROCS(0))
	workers = max(1, min(workers, chunks))

	var (
		next    atomic.Uint64 // next chunk to hash
		failed  atomic.Bool
		errOnce sync.Once
		err     error
		wg      sync.WaitGroup
	)
	fail := func(e error) {
		errOnce.Do(func() { err = e })
		failed.Store(true)
	}
	for range workers {
		wg.Go(func() {
			buf := make([]byte, int(per)*bs)
			h := sha256.New()
			for !failed.Load() {
				c := next.Add(1) - 1
				if c >= chunks {
					return
				}
				first := c * per
				cnt := min(per, n-first)
				b := buf[:int(cnt)*bs]
				off := int64(first) * int64(bs)
				if got, rerr := r.ReadAt(b, off); got < len(b) {
					if rerr == nil || errors.Is(rerr, io.EOF) {
						fail(fmt.Errorf("%w: data ends at byte %d, want %d bytes", ErrTruncated, off+int64(got), int64(n)*int64(bs)))
					} else {
						fail(fmt.Errorf("verity: reading data at offset %d: %w", off, rerr))
					}
					return
				}
				for i := range cnt {
					h.Reset()
					h.Write(salt)
					h.Write(b[int(i)*bs : int(i+1)*bs])
					o := int(first+i) * stride
					h.Sum(out[o:o])
				}
			}
		})
	}
	wg.Wait()
	return err
}

// buildUpper fills levels 1.. of tree from level 0 and returns the root hash.
// With no levels (a single data block) the root is the leaf digest, which the
// caller passes as leaf.
func buildUpper(g geometry, tree, salt, leaf []byte) []byte {
	for i := 1; i < len(g.levels); i++ {
		below := g.levelBytes(tree, i-1)
		// Hashing a level in memory is cheap (1/128 of the data), but the
		// same parallel path keeps it so for multi-GiB inputs too.
		_ = hashBlocks(bytes.NewReader(below), g.levels[i-1].blocks, g.hashBlockSize, salt, g.levelBytes(tree, i), g.digestStride)
	}
	if len(g.levels) == 0 {
		return bytes.Clone(leaf)
	}
	return digest(salt, g.levelBytes(tree, len(g.levels)-1))
}

func digest(salt, block []byte) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write(block)
	return h.Sum(nil)
}
