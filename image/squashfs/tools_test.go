package squashfs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/fstree"
	"github.com/cocoon-appliance/cocoon/image/fstree/fstreetest"
)

// These tests check images against squashfs-tools, the reference reader and
// writer. They skip when the tools are missing.

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (squashfs-tools)", name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// listing is `unsquashfs -lln` with the root line dropped, each line split
// into fields. Directory sizes are blanked when blankDirSizes is set: they
// are listing sizes, which depend on where each writer puts its inodes.
func listing(t *testing.T, img string, blankDirSizes bool) []string {
	var lines []string
	for _, l := range strings.Split(run(t, "unsquashfs", "-lln", img), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || !strings.HasPrefix(f[len(f)-1], "squashfs-root") && !strings.Contains(l, " squashfs-root/") {
			continue
		}
		if blankDirSizes && f[0][0] == 'd' {
			f[2] = "-"
		}
		lines = append(lines, strings.Join(f, " "))
	}
	return lines
}

func TestUnsquashfsList(t *testing.T) {
	tr := testTree(t)
	got := listing(t, build(t, tr, small), true)
	want := []string{"drwxr-xr-x 0/0 - 2023-11-14 22:13 squashfs-root"}
	for _, e := range tr.Entries() {
		size := strconv.Itoa(len(e.Data) + len(e.Target))
		switch e.Kind {
		case fstree.Dir:
			size = "-"
		case fstree.CharDev, fstree.BlockDev:
			// unsquashfs -ll prints rdev>>8 and rdev&0xff of the kernel's
			// new_encode_dev value, which is the device numbers only when the
			// minor is below 256 (its mknod decodes them correctly).
			rdev := e.Minor&0xff | e.Major<<8 | (e.Minor&^0xff)<<12
			size = fmt.Sprintf("%3d,%3d", rdev>>8, rdev&0xff)
		}
		l := e.ModeString() + " 0/0 " + size + " 2023-11-14 22:13 squashfs-root/" + e.Path
		if e.Kind == fstree.Symlink {
			l += " -> " + e.Target
		}
		want = append(want, strings.Join(strings.Fields(l), " "))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("unsquashfs -lln:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestUnsquashfsExtract unpacks the image with unsquashfs, as root so that
// owners, set-id bits and device nodes are restored, and compares every
// file with the tree.
func TestUnsquashfsExtract(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to restore owners and create device nodes")
	}
	for _, comp := range []string{"gzip", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			o := small
			o.Compression = comp
			tr := largeTree(t)
			for _, e := range testTree(t).Entries() {
				if err := tr.Add(e); err != nil {
					t.Fatal(err)
				}
			}
			dir := filepath.Join(t.TempDir(), "root")
			run(t, "unsquashfs", "-q", "-n", "-d", dir, build(t, tr, o))
			fstreetest.CompareDir(t, dir, tr.Entries(), fstreetest.Options{Epoch: testEpoch})
		})
	}
}

// TestMksquashfs builds the same tree with mksquashfs and checks that
// unsquashfs lists both images alike and that Read reads mksquashfs's image
// as the tree. (The bytes differ: mksquashfs orders inodes differently,
// keeps tail ends of large files out of fragments and uses C zlib.)
func TestMksquashfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to stage device nodes and owners")
	}
	tr := testTree(t)
	ours := build(t, tr, small)
	dir := filepath.Join(t.TempDir(), "root")
	run(t, "unsquashfs", "-q", "-n", "-d", dir, ours)
	for _, comp := range []string{"gzip", "zstd"} {
		theirs := filepath.Join(t.TempDir(), "mk.sqfs")
		epoch := strconv.Itoa(testEpoch)
		run(t, "mksquashfs", dir, theirs, "-noappend", "-no-xattrs", "-no-exports", "-all-root",
			"-mkfs-time", epoch, "-all-time", epoch, "-b", "4096", "-comp", comp, "-processors", "1", "-quiet")
		if got, want := listing(t, theirs, true), listing(t, ours, true); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: mksquashfs image lists\n%s\nours\n%s", comp, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		got, err := Read(theirs)
		if err != nil {
			t.Fatalf("%s: Read(mksquashfs image): %v", comp, err)
		}
		if d := fstree.FirstDifference(tr.Entries(), got); d != nil {
			t.Errorf("%s: Read(mksquashfs image) differs: %s", comp, d)
		}
	}
}

// TestCorruption flips one byte in a compressed data block (its zlib or
// zstd checksum catches it) and in a stored one (nothing can: squashfs has
// no checksums of its own; dm-verity over the image is what protects it).
func TestCorruption(t *testing.T) {
	var tr fstree.Tree
	text := bytes.Repeat([]byte("compressible "), 1000)
	if err := tr.AddFile("text", 0o644, text); err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"gzip", "zstd"} {
		o := small
		o.Compression = comp
		img := build(t, &tr, o)
		b, _ := os.ReadFile(img)
		// The file's first block is the first thing after the superblock.
		b[superblockSize+10] ^= 0x40
		if err := os.WriteFile(img, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(img); err == nil {
			t.Errorf("%s: Read accepted a corrupted compressed block", comp)
		} else {
			t.Logf("%s: Read: %v", comp, err)
		}
		cmd := exec.Command(tool(t, "unsquashfs"), "-n", "-d", filepath.Join(t.TempDir(), "x"), img)
		if out, err := cmd.CombinedOutput(); err == nil && !bytes.Contains(out, []byte("failed")) {
			t.Errorf("%s: unsquashfs accepted a corrupted compressed block:\n%s", comp, out)
		}
	}

	noise := make([]byte, 4096)
	x := uint32(1)
	for i := range noise {
		x = x*1664525 + 1013904223
		noise[i] = byte(x >> 24)
	}
	var tr2 fstree.Tree
	if err := tr2.AddFile("noise", 0o644, noise); err != nil {
		t.Fatal(err)
	}
	img := build(t, &tr2, small)
	b, _ := os.ReadFile(img)
	b[superblockSize+10] ^= 0x40
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Read(img)
	if err != nil || len(got) != 1 || bytes.Equal(got[0].Data, noise) {
		t.Fatalf("stored block: Read = %v; want it to succeed with the flipped byte (no checksum exists)", err)
	}
}

// TestGoDiskfsReadsOurImages reads our images with go-diskfs's reader, an
// independent implementation. Its FileInfo has neither the set-id and sticky
// bits nor device numbers, so those are left out of the comparison.
func TestGoDiskfsReadsOurImages(t *testing.T) {
	for _, comp := range []string{"gzip", "zstd"} {
		o := small
		o.Compression = comp
		tr := largeTreeN(t, 150) // still > 256 entries and 8 KiB tables; go-diskfs is slow on more
		for _, e := range testTree(t).Entries() {
			if err := tr.Add(e); err != nil {
				t.Fatal(err)
			}
		}
		got, err := readWithGoDiskfs(build(t, tr, o))
		if err != nil {
			t.Fatal(err)
		}
		var want []fstree.Entry
		for _, e := range tr.Entries() {
			e.Perm &= 0o777
			e.Major, e.Minor = 0, 0
			want = append(want, e)
		}
		if d := fstree.FirstDifference(want, got); d != nil {
			t.Fatalf("%s: go-diskfs reads %s", comp, d)
		}
	}
}
