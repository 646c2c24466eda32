package squashfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/fstree"
)

// testEpoch is 2023-11-14 22:13:20 UTC.
const testEpoch = 1700000000

// testTree holds every kind of entry, set-id and sticky bits, an empty file,
// an empty directory, nested directories, a file of exactly one 4 KiB block,
// files over several blocks (compressible and not) and small files that
// share fragments.
func testTree(t testing.TB) *fstree.Tree {
	t.Helper()
	noise := make([]byte, 3*4096+100) // incompressible: stored blocks
	x := uint32(1)
	for i := range noise {
		x = x*1664525 + 1013904223
		noise[i] = byte(x >> 24)
	}
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\n"), 500) // 22000 bytes
	var tr fstree.Tree
	for _, e := range []fstree.Entry{
		{Path: "bin", Kind: fstree.Symlink, Perm: 0o777, Target: "usr/bin"},
		{Path: "dev/console", Kind: fstree.CharDev, Perm: 0o600, Major: 5, Minor: 1},
		{Path: "dev/null", Kind: fstree.CharDev, Perm: 0o666, Major: 1, Minor: 3},
		{Path: "dev/nvme0n1", Kind: fstree.BlockDev, Perm: 0o660, Major: 259, Minor: 300000},
		{Path: "etc/hostname", Kind: fstree.File, Perm: 0o644, Data: []byte("cocoon\n")},
		{Path: "etc/shadow", Kind: fstree.File, Perm: 0o600, Data: []byte("root:*:1::::::\n")},
		{Path: "etc/empty", Kind: fstree.File, Perm: 0o644},
		{Path: "etc/mtab", Kind: fstree.Symlink, Perm: 0o777, Target: "/proc/self/mounts"},
		{Path: "tmp", Kind: fstree.Dir, Perm: 0o1777},
		{Path: "var/empty", Kind: fstree.Dir, Perm: 0o700},
		{Path: "usr/bin/su", Kind: fstree.File, Perm: 0o4755, Data: []byte("\x7fELF su")},
		{Path: "usr/bin/wall", Kind: fstree.File, Perm: 0o2755, Data: []byte("\x7fELF wall")},
		{Path: "usr/lib/block.bin", Kind: fstree.File, Perm: 0o644, Data: bytes.Repeat([]byte{7}, 4096)},
		{Path: "usr/lib/noise.bin", Kind: fstree.File, Perm: 0o644, Data: noise},
		{Path: "usr/share/doc/a/b/c/readme.txt", Kind: fstree.File, Perm: 0o444, Data: text},
	} {
		if err := tr.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return &tr
}

var small = Options{Epoch: testEpoch, BlockSize: 4096}

func build(t testing.TB, tr *fstree.Tree, o Options) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "root.sqfs")
	if err := Write(img, tr, o); err != nil {
		t.Fatal(err)
	}
	return img
}

func buildBytes(t testing.TB, tr *fstree.Tree, o Options) []byte {
	t.Helper()
	b, err := os.ReadFile(build(t, tr, o))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	for _, o := range []Options{
		{Epoch: testEpoch},
		small,
		{Epoch: testEpoch, BlockSize: 4096, Compression: "zstd"},
		{Epoch: testEpoch, BlockSize: 1 << 20, Compression: "zstd"},
	} {
		t.Run(fmt.Sprintf("%s-%d", o.Compression, o.BlockSize), func(t *testing.T) {
			tr := testTree(t)
			got, err := Read(build(t, tr, o))
			if err != nil {
				t.Fatal(err)
			}
			if d := fstree.FirstDifference(tr.Entries(), got); d != nil {
				t.Fatalf("Read(Write(t)) differs: %s", d)
			}
		})
	}
}

func TestEmptyTree(t *testing.T) {
	got, err := Read(build(t, &fstree.Tree{}, small))
	if err != nil || len(got) != 0 {
		t.Fatalf("Read = %v, %v; want no entries", got, err)
	}
}

func TestSuperblockTime(t *testing.T) {
	b := buildBytes(t, testTree(t), small)
	if got := le.Uint32(b[8:]); got != testEpoch {
		t.Errorf("mkfs_time = %d, want %d", got, testEpoch)
	}
	if len(b)%padding != 0 {
		t.Errorf("image is %d bytes, want a multiple of %d", len(b), padding)
	}
	if used := le.Uint64(b[40:]); used > uint64(len(b)) || uint64(len(b))-used >= padding {
		t.Errorf("bytes_used %d in a %d-byte file, want padding < %d", used, len(b), padding)
	}
}

// TestDeterministic builds the same tree under different TMPDIRs and umasks;
// the writer uses neither, and this keeps it so.
func TestDeterministic(t *testing.T) {
	for _, o := range []Options{small, {Epoch: testEpoch, Compression: "zstd"}} {
		want := buildBytes(t, testTree(t), o)
		if got := buildBytes(t, testTree(t), o); !bytes.Equal(got, want) {
			t.Fatal("two builds differ")
		}
		t.Setenv("TMPDIR", t.TempDir())
		old := syscall.Umask(0o002)
		a := buildBytes(t, testTree(t), o)
		syscall.Umask(0o077)
		b := buildBytes(t, testTree(t), o)
		syscall.Umask(old)
		if !bytes.Equal(a, want) || !bytes.Equal(b, want) {
			t.Fatal("output depends on TMPDIR or umask")
		}
	}
	o := small
	o.Epoch++
	if bytes.Equal(buildBytes(t, testTree(t), o), buildBytes(t, testTree(t), small)) {
		t.Fatal("epoch does not reach the image")
	}
}

// TestGolden pins the bytes of a small image: a change in our writer or in
// klauspost/compress that would change every root hash shows up here.
func TestGolden(t *testing.T) {
	for _, tc := range []struct{ comp, want string }{
		{"gzip", "99bd948dbd29d494fe6cd3295830742a9fd7194d2886c1cb52f949b65c614d8e"},
		{"zstd", "0056f42b894bd3a01f0a77786fcd6c408059b8b85170ecba98a768f02b12c6f3"},
	} {
		o := small
		o.Compression = tc.comp
		sum := sha256.Sum256(buildBytes(t, testTree(t), o))
		if got := hex.EncodeToString(sum[:]); got != tc.want {
			t.Errorf("%s: sha256 = %s, want %s", tc.comp, got, tc.want)
		}
	}
}

// TestLargeDirectories goes past every 8 KiB and 256-entry boundary: inode
// and directory tables of many metadata blocks, directories of more than 256
// entries and listings that span blocks. go-diskfs v1.9.4 writes corrupt
// images here.
func TestLargeDirectories(t *testing.T) {
	tr := largeTree(t)
	img := build(t, tr, small)
	got, err := Read(img)
	if err != nil {
		t.Fatal(err)
	}
	if d := fstree.FirstDifference(tr.Entries(), got); d != nil {
		t.Fatal(d)
	}
	b, _ := os.ReadFile(img)
	sb, _ := parseSuperblock(b)
	if sb.dirTable-sb.inodeTable < 3*metaSize/4 || sb.fragTable-sb.dirTable < metaSize/4 {
		t.Errorf("inode table %d bytes, directory table %d: too small to cross blocks", sb.dirTable-sb.inodeTable, sb.fragTable-sb.dirTable)
	}
}

func largeTree(t testing.TB) *fstree.Tree { return largeTreeN(t, 1500) }

// largeTreeN has a directory of 2n entries (n files, n symlinks) and
// min(n, 300) directories with one subdirectory each.
func largeTreeN(t testing.TB, n int) *fstree.Tree {
	var tr fstree.Tree
	for i := range n {
		p := fmt.Sprintf("usr/lib/x86_64-linux-gnu/libexample-%04d.so.1", i)
		if err := tr.AddFile(p, 0o644, []byte(p)); err != nil {
			t.Fatal(err)
		}
		if err := tr.Add(fstree.Entry{Path: p[:len(p)-2], Kind: fstree.Symlink, Perm: 0o777, Target: filepath.Base(p)}); err != nil {
			t.Fatal(err)
		}
		if err := tr.AddDir(fmt.Sprintf("usr/share/d%03d/sub", i%300), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &tr
}

func TestWriteErrors(t *testing.T) {
	one := func(e fstree.Entry) *fstree.Tree {
		var tr fstree.Tree
		if err := tr.Add(e); err != nil {
			t.Fatal(err)
		}
		return &tr
	}
	long := string(bytes.Repeat([]byte("n"), maxName+1))
	deep := string(bytes.Repeat([]byte("d/"), pathMax/2)) + "f"
	for _, tc := range []struct {
		name string
		tree *fstree.Tree
		o    Options
		want error
	}{
		{"negative epoch", testTree(t), Options{Epoch: -1}, ErrOptions},
		{"epoch past 2106", testTree(t), Options{Epoch: 1 << 32}, ErrOptions},
		{"block size 1000", testTree(t), Options{BlockSize: 1000}, ErrOptions},
		{"block size 2 MiB", testTree(t), Options{BlockSize: 2 << 20}, ErrOptions},
		{"xz", testTree(t), Options{Compression: "xz"}, ErrUnsupported},
		{"unknown compression", testTree(t), Options{Compression: "brotli"}, ErrOptions},
		{"long name", one(fstree.Entry{Path: long, Kind: fstree.File, Perm: 0o644}), Options{}, ErrTooLarge},
		{"long path", one(fstree.Entry{Path: deep, Kind: fstree.File, Perm: 0o644}), Options{}, ErrTooLarge},
		{"major 4096", one(fstree.Entry{Path: "c", Kind: fstree.CharDev, Major: 4096}), Options{}, ErrTooLarge},
		{"minor 2^20", one(fstree.Entry{Path: "c", Kind: fstree.BlockDev, Minor: 1 << 20}), Options{}, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "x.sqfs")
			err := Write(img, tc.tree, tc.o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Write = %v, want %v", err, tc.want)
			}
			if _, serr := os.Stat(img); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("failed Write left %s behind (%v)", img, serr)
			}
		})
	}
}
