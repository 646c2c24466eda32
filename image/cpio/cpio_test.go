package cpio

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"syscall"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/fstree"
)

// testEpoch is 2023-11-14 22:13:20 UTC: more than six months in the past, so
// `cpio -tv` prints the year rather than the time of day.
const testEpoch = 1700000000

// testTree has every kind of entry, special permission bits, an empty file,
// an empty directory, bodies that are not a multiple of 4 and a large file.
func testTree(t testing.TB) *fstree.Tree {
	t.Helper()
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = byte(i*7 + i/251)
	}
	var tr fstree.Tree
	for _, e := range []fstree.Entry{
		{Path: "init", Kind: fstree.File, Perm: 0o755, Data: []byte("#!/bin/sh\nexec /usr/bin/worker\n")},
		{Path: "dev", Kind: fstree.Dir, Perm: 0o755},
		{Path: "dev/console", Kind: fstree.CharDev, Perm: 0o600, Major: 5, Minor: 1},
		{Path: "dev/null", Kind: fstree.CharDev, Perm: 0o666, Major: 1, Minor: 3},
		{Path: "dev/vda", Kind: fstree.BlockDev, Perm: 0o660, Major: 254, Minor: 0},
		{Path: "etc/hostname", Kind: fstree.File, Perm: 0o644, Data: []byte("cocoon\n")},
		{Path: "etc/shadow", Kind: fstree.File, Perm: 0o600, Data: []byte("root:*:1::::::\n")},
		{Path: "etc/empty", Kind: fstree.File, Perm: 0o644},
		{Path: "tmp", Kind: fstree.Dir, Perm: 0o1777},
		{Path: "var/empty", Kind: fstree.Dir, Perm: 0o700},
		{Path: "usr/bin/su", Kind: fstree.File, Perm: 0o4755, Data: []byte("ELF?")},
		{Path: "usr/bin/wall", Kind: fstree.File, Perm: 0o2755, Data: []byte("w")},
		{Path: "usr/lib/big.bin", Kind: fstree.File, Perm: 0o644, Data: big},
		{Path: "bin", Kind: fstree.Symlink, Perm: 0o777, Target: "usr/bin"},
		{Path: "etc/mtab", Kind: fstree.Symlink, Perm: 0o777, Target: "/proc/self/mounts"},
	} {
		if err := tr.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return &tr
}

func write(t testing.TB, tr *fstree.Tree, epoch int64) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, tr, epoch); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	tr := testTree(t)
	got, err := Read(bytes.NewReader(write(t, tr, testEpoch)))
	if err != nil {
		t.Fatal(err)
	}
	if d := fstree.FirstDifference(tr.Entries(), got); d != nil {
		t.Fatalf("Read(Write(t)) differs: %s", d)
	}
}

func TestDeterministic(t *testing.T) {
	a := write(t, testTree(t), testEpoch)
	b := write(t, testTree(t), testEpoch)
	if !bytes.Equal(a, b) {
		t.Fatal("two writes of the same tree differ")
	}
	// The writer touches no file, but the initrd must not depend on the
	// builder's umask even if that changes: prove it.
	old := syscall.Umask(0o002)
	c := write(t, testTree(t), testEpoch)
	syscall.Umask(0o077)
	d := write(t, testTree(t), testEpoch)
	syscall.Umask(old)
	if !bytes.Equal(a, c) || !bytes.Equal(a, d) {
		t.Fatal("output depends on the umask")
	}
	if len(a)%blockAlign != 0 {
		t.Fatalf("archive is %d bytes, want a multiple of %d", len(a), blockAlign)
	}
	if e := write(t, testTree(t), testEpoch+1); bytes.Equal(a, e) {
		t.Fatal("epoch does not reach the archive")
	}
}

// TestGolden pins the exact bytes of a small archive, so that a change in
// u-root's writer or in ours that would change every initrd hash is seen.
func TestGolden(t *testing.T) {
	var tr fstree.Tree
	for _, e := range []fstree.Entry{
		{Path: "dev/console", Kind: fstree.CharDev, Perm: 0o600, Major: 5, Minor: 1},
		{Path: "init", Kind: fstree.File, Perm: 0o755, Data: []byte("#!/bin/sh\n")},
		{Path: "bin", Kind: fstree.Symlink, Perm: 0o777, Target: "usr/bin"},
	} {
		if err := tr.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	b := write(t, &tr, testEpoch)
	const wantHeader = "070701" + "00000001" + "0000A1FF" + "00000000" + "00000000" + "00000001" +
		"6553F100" + "00000007" + "00000000" + "00000000" + "00000000" + "00000000" + "00000004" + "00000000" + "bin\x00"
	if got := string(b[:len(wantHeader)]); got != wantHeader {
		t.Errorf("first record\n got %q\nwant %q", got, wantHeader)
	}
	sum := sha256.Sum256(b)
	const want = "18818abff3e5ef4ca22c66801db6291a38e698c94266d41b33cb72745d37503e"
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("sha256 = %s, want %s (%d bytes)", got, want, len(b))
	}
}

func TestWriteErrors(t *testing.T) {
	tr := testTree(t)
	for _, tc := range []struct {
		name  string
		tree  *fstree.Tree
		epoch int64
		want  error
	}{
		{"negative epoch", tr, -1, ErrEpoch},
		{"epoch past 2106", tr, 1 << 32, ErrEpoch},
		{"long name", treeOf(t, fstree.Entry{Path: string(bytes.Repeat([]byte("a/"), 2048)) + "f", Kind: fstree.File}), 0, ErrTooLarge},
		{"long target", treeOf(t, fstree.Entry{Path: "l", Kind: fstree.Symlink, Target: string(bytes.Repeat([]byte("t"), pathMax))}), 0, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(&bytes.Buffer{}, tc.tree, tc.epoch)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Write = %v, want %v", err, tc.want)
			}
		})
	}
}

func treeOf(t testing.TB, es ...fstree.Entry) *fstree.Tree {
	t.Helper()
	var tr fstree.Tree
	for _, e := range es {
		if e.Perm == 0 && e.Kind != fstree.Symlink {
			e.Perm = fs.FileMode(0o644)
		}
		if err := tr.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return &tr
}
