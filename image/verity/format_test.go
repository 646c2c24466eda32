package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	dmverity "github.com/containerd/go-dmverity/pkg/verity"
)

type formatCase struct {
	name   string
	blocks int
	p      Params
}

func formatCases() []formatCase {
	salt := DeriveSalt([]byte("format test"))
	def := Params{Salt: salt, UUID: testUUID}
	with := func(f func(*Params)) Params { p := def; f(&p); return p }
	return []formatCase{
		{"1 block", 1, def},
		{"2 blocks", 2, def},
		{"127 blocks", 127, def},
		{"128 blocks", 128, def},
		{"129 blocks", 129, def},
		{"128*128 blocks", 128 * 128, def},
		{"128*128+1 blocks", 128*128 + 1, def},
		{"3 MiB", 3 << 20 / 4096, def},
		{"no salt", 300, with(func(p *Params) { p.Salt = nil })},
		{"256-byte salt", 300, with(func(p *Params) { p.Salt = bytes.Repeat([]byte{0xa5}, MaxSaltSize) })},
		{"nil UUID", 5, with(func(p *Params) { p.UUID = [16]byte{} })},
		{"data 512 hash 1024", 1032, with(func(p *Params) { p.DataBlockSize, p.HashBlockSize = 512, 1024 })},
		{"data 4096 hash 512", 300, with(func(p *Params) { p.HashBlockSize = 512 })},
		{"data 8192 hash 65536", 2049, with(func(p *Params) { p.DataBlockSize, p.HashBlockSize = 8192, 65536 })},
	}
}

func (c formatCase) dataSize() int {
	bs := c.p.DataBlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	return c.blocks * int(bs)
}

// TestFormatMatchesVeritysetup checks that our hash file and root hash are
// byte-identical to `veritysetup format`'s and to go-dmverity's Create, and
// that veritysetup and Verify accept our output.
func TestFormatMatchesVeritysetup(t *testing.T) {
	needVeritysetup(t)
	for i, c := range formatCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			data := writeFile(t, dir, "data", pseudoRandom(c.dataSize(), uint64(i)))

			ours := filepath.Join(dir, "ours.hash")
			res := formatFile(t, data, ours, c.p)
			theirs := filepath.Join(dir, "veritysetup.hash")
			root := veritysetupFormat(t, data, theirs, c.p)

			if !bytes.Equal(res.RootHash, root) {
				t.Errorf("root hash %x, veritysetup %x", res.RootHash, root)
			}
			got, want := readFile(t, ours), readFile(t, theirs)
			if !bytes.Equal(got, want) {
				t.Errorf("hash file differs from veritysetup's (%d vs %d bytes), first at byte %d", len(got), len(want), firstDiffByte(got, want))
			}
			if res.Size != int64(len(want)) {
				t.Errorf("Result.Size %d, veritysetup wrote %d bytes", res.Size, len(want))
			}
			if res.DataBlocks != uint64(c.blocks) {
				t.Errorf("Result.DataBlocks %d, want %d", res.DataBlocks, c.blocks)
			}
			hb := c.p.HashBlockSize
			if hb == 0 {
				hb = DefaultBlockSize
			}
			if wantOff := max(uint64(hb), 512); res.HashOffset != wantOff {
				t.Errorf("Result.HashOffset %d, want %d", res.HashOffset, wantOff)
			}

			dm := filepath.Join(dir, "dmverity.hash")
			dmRoot := dmverityCreate(t, data, dm, c)
			if !bytes.Equal(dmRoot, root) {
				t.Errorf("go-dmverity root hash %x, veritysetup %x", dmRoot, root)
			}
			// go-dmverity leaves a tree-less hash file (one data block) at the
			// 512-byte superblock; veritysetup pads it to the hash offset.
			dmb := readFile(t, dm)
			if len(dmb) < len(got) {
				dmb = append(dmb, make([]byte, len(got)-len(dmb))...)
			}
			if !bytes.Equal(got, dmb) {
				t.Errorf("hash file differs from go-dmverity's, first at byte %d", firstDiffByte(got, dmb))
			}

			if ok, out := veritysetupVerify(t, data, ours, res.RootHash); !ok {
				t.Errorf("veritysetup verify rejects our hash file:\n%s", out)
			}
			if err := verifyFile(t, data, ours, res.RootHash); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func dmverityCreate(t *testing.T, data, hash string, c formatCase) []byte {
	t.Helper()
	p := dmverity.DefaultParams()
	p.DataBlockSize, p.HashBlockSize = c.p.DataBlockSize, c.p.HashBlockSize
	if p.DataBlockSize == 0 {
		p.DataBlockSize = DefaultBlockSize
	}
	if p.HashBlockSize == 0 {
		p.HashBlockSize = DefaultBlockSize
	}
	p.DataBlocks = uint64(c.blocks)
	p.Salt, p.SaltSize = c.p.Salt, uint16(len(c.p.Salt))
	p.UUID = c.p.UUID
	// Superblock mode needs the tree offset set explicitly (NOTES.md).
	p.HashAreaOffset = max(uint64(p.HashBlockSize), 512)
	root, err := dmverity.Create(&p, data, hash)
	if err != nil {
		t.Fatalf("go-dmverity Create: %v", err)
	}
	return root
}

func firstDiffByte(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestFormatKnownAnswer pins a root hash computed by veritysetup 2.6.1, so
// the format stays checked where veritysetup is not installed.
func TestFormatKnownAnswer(t *testing.T) {
	data := make([]byte, 129*4096)
	for i := range data {
		data[i] = byte(i % 251)
	}
	salt, _ := hex.DecodeString("00112233")
	var hash memFile
	res, err := Format(bytes.NewReader(data), int64(len(data)), &hash, Params{Salt: salt, UUID: testUUID})
	if err != nil {
		t.Fatal(err)
	}
	// veritysetup format --salt=00112233 --uuid=3f0c2a7e-5b1d-4c8e-9a6f-0d2e4b6c8a10 data hash
	const want = "2b8141af2e717a9568af8208ed0b4ea5607eeba41e991b2b9cf2ea734b80000d"
	if got := hex.EncodeToString(res.RootHash); got != want {
		t.Errorf("root hash %s, want %s", got, want)
	}
	if res.Size != 4096+3*4096 || int64(len(hash.b)) != res.Size {
		t.Errorf("hash file %d bytes, Result.Size %d, want %d", len(hash.b), res.Size, 4*4096)
	}

	// One block: no tree, the root hash is H(salt || block).
	res, err = Format(bytes.NewReader(data[:4096]), 4096, &hash, Params{Salt: salt})
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(append(bytes.Clone(salt), data[:4096]...)); !bytes.Equal(res.RootHash, want[:]) {
		t.Errorf("one-block root hash %x, want sha256(salt||block) %x", res.RootHash, want)
	}
}

func TestDeriveSalt(t *testing.T) {
	got := DeriveSalt([]byte("seed"))
	want := sha256.Sum256([]byte("cocoon verity salt v1\x00seed"))
	if !bytes.Equal(got, want[:]) {
		t.Errorf("DeriveSalt = %x, want %x", got, want)
	}
	if bytes.Equal(DeriveSalt([]byte("a")), DeriveSalt([]byte("b"))) {
		t.Error("different seeds give the same salt")
	}
}

func TestFormatBadParams(t *testing.T) {
	data := make([]byte, 8192)
	short := bytes.NewReader(data[:4096])
	for _, c := range []struct {
		name string
		size int64
		p    Params
		r    io.ReaderAt // nil: all of data
		want error
	}{
		{"sha512", 8192, Params{HashAlg: "sha512"}, nil, ErrUnsupported},
		{"SHA256 spelled upper case", 8192, Params{HashAlg: "SHA256"}, nil, ErrUnsupported},
		{"data block 1000", 8000, Params{DataBlockSize: 1000}, nil, ErrBadParams},
		{"data block 256", 8192, Params{DataBlockSize: 256}, nil, ErrBadParams},
		{"hash block 1 MiB", 8192, Params{HashBlockSize: 1 << 20}, nil, ErrBadParams},
		{"hash block 3072", 8192, Params{HashBlockSize: 3072}, nil, ErrBadParams},
		{"salt 257 bytes", 8192, Params{Salt: make([]byte, 257)}, nil, ErrBadParams},
		{"empty data", 0, Params{}, nil, ErrBadParams},
		{"negative size", -4096, Params{}, nil, ErrBadParams},
		{"unaligned", 4095, Params{}, nil, ErrUnaligned},
		{"unaligned for 8 KiB blocks", 4096, Params{DataBlockSize: 8192}, nil, ErrUnaligned},
		{"data shorter than size", 8192, Params{}, short, ErrTruncated},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r io.ReaderAt = bytes.NewReader(data)
			if c.r != nil {
				r = c.r
			}
			var hash memFile
			_, err := Format(r, c.size, &hash, c.p)
			if !errors.Is(err, c.want) {
				t.Fatalf("Format: %v, want %v", err, c.want)
			}
			t.Log(err)
			if len(hash.b) != 0 {
				t.Errorf("Format wrote %d bytes despite the error", len(hash.b))
			}
		})
	}
}

// memFile is an in-memory io.WriterAt / io.ReaderAt.
type memFile struct{ b []byte }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.b).ReadAt(p, off)
}

func TestFormatWriteError(t *testing.T) {
	data := make([]byte, 4096*3)
	_, err := Format(bytes.NewReader(data), int64(len(data)), failingWriter{}, Params{})
	if err == nil || !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Format into a failing writer: %v, want it wrapped", err)
	}
}

type failingWriter struct{}

func (failingWriter) WriteAt([]byte, int64) (int, error) {
	return 0, fmt.Errorf("disk gone: %w", os.ErrClosed)
}
