package gpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
)

func pseudoRandom(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testDisk is the disk the tests write: a 10000-byte root and a 5000-byte
// verity partition, with GUIDs derived from a fixed "root hash".
type testDisk struct {
	rootHash         []byte
	diskGUID         uuid.UUID
	parts            []Partition
	contents         [][]byte
	wantStart        []uint64 // sectors
	wantSize         []uint64 // sectors
	wantTotalSectors uint64
}

func newTestDisk(t testing.TB, dir string) testDisk {
	t.Helper()
	rh := sha256.Sum256([]byte("cocoon test root hash"))
	data, hash := UUIDsFromRootHash(rh[:])
	root, verity := pseudoRandom(10000, 1), pseudoRandom(5000, 2)
	return testDisk{
		rootHash: rh[:],
		diskGUID: DiskGUID(rh[:]),
		parts: []Partition{
			{Name: "root-x86-64", Type: TypeRootX86_64, UUID: data, Path: writeFile(t, dir, "root.img", root)},
			{Name: "root-x86-64-verity", Type: TypeRootVerityX86_64, UUID: hash, Path: writeFile(t, dir, "verity.img", verity)},
		},
		contents:  [][]byte{root, verity},
		wantStart: []uint64{2048, 4096},
		// 10000 and 5000 bytes rounded up to 4096: 12288 and 8192 bytes.
		wantSize: []uint64{24, 16},
		// 4096+16 sectors, plus the 33-sector backup GPT, rounded up to 1 MiB.
		wantTotalSectors: 6144,
	}
}

func (d testDisk) write(t testing.TB, out string) []byte {
	t.Helper()
	if err := Write(out, d.diskGUID, d.parts); err != nil {
		t.Fatalf("Write: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixCRCs recomputes both entry-array and header CRCs of a 128x128 table, so
// tests can change a field and still get past the CRC checks.
func fixCRCs(img []byte) {
	le := binary.LittleEndian
	for _, lba := range []uint64{1, uint64(len(img)/SectorSize) - 1} {
		h := img[lba*SectorSize:][:92]
		arr := img[le.Uint64(h[72:])*SectorSize:][:entryCount*entrySize]
		le.PutUint32(h[88:], crc32.ChecksumIEEE(arr))
		clear(h[16:20])
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h))
	}
}

// memDisk is an in-memory backend.WritableFile for go-diskfs.
type memDisk struct {
	b   []byte
	off int64
}

func (m *memDisk) Stat() (fs.FileInfo, error) { return nil, fs.ErrInvalid }
func (m *memDisk) Close() error               { return nil }
func (m *memDisk) Read(p []byte) (int, error) {
	n, err := m.ReadAt(p, m.off)
	m.off += int64(n)
	return n, err
}
func (m *memDisk) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.b).ReadAt(p, off)
}
func (m *memDisk) Seek(off int64, whence int) (int64, error) {
	return bytes.NewReader(m.b).Seek(off, whence) // only whence/end matter to callers here
}
func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, io.ErrShortWrite
	}
	return copy(m.b[off:], p), nil
}
