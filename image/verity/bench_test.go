package verity

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	dmverity "github.com/containerd/go-dmverity/pkg/verity"
)

// benchData writes size pseudo-random bytes to a temp file and reads it once
// so the timed runs hash from the page cache, as veritysetup would.
func benchData(b *testing.B, size int) string {
	b.Helper()
	dir := b.TempDir()
	p := filepath.Join(dir, "data")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	const piece = 16 << 20
	for off := 0; off < size; off += piece {
		if _, err := f.Write(pseudoRandom(min(piece, size-off), uint64(off))); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, f); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

func benchmarkFormat(b *testing.B, size int) {
	data := benchData(b, size)
	hash := filepath.Join(filepath.Dir(data), "hash")
	p := Params{Salt: DeriveSalt([]byte("bench")), UUID: testUUID}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for b.Loop() {
		formatFile(b, data, hash, p)
	}
}

func BenchmarkFormat64MiB(b *testing.B) { benchmarkFormat(b, 64<<20) }

// BenchmarkFormat1GiB is the size of the target; see
// scripts/bench-verity.sh for the comparison with veritysetup.
func BenchmarkFormat1GiB(b *testing.B) { benchmarkFormat(b, 1<<30) }

// BenchmarkGoDMVerityCreate64MiB is go-dmverity's Create on the same input,
// for comparison (it reads and hashes one block per syscall).
func BenchmarkGoDMVerityCreate64MiB(b *testing.B) {
	const size = 64 << 20
	data := benchData(b, size)
	hash := filepath.Join(filepath.Dir(data), "hash")
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		p := dmverity.DefaultParams()
		p.DataBlockSize, p.HashBlockSize, p.DataBlocks, p.HashAreaOffset = 4096, 4096, size/4096, 4096
		p.Salt, p.SaltSize, p.UUID = DeriveSalt([]byte("bench")), 32, testUUID
		if _, err := dmverity.Create(&p, data, hash); err != nil {
			b.Fatal(err)
		}
	}
}
