// Package fstreetest checks a directory tree that a real tool extracted
// (GNU cpio, unsquashfs) against the fstree.Entry list it was made from.
package fstreetest

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cocoon-appliance/cocoon/image/fstree"
)

// Options relax what a tool cannot restore.
type Options struct {
	// Epoch is the mtime every entry must have.
	Epoch int64
	// SkipDirMtime: the tool sets a directory's mtime before creating its
	// children, which then move it on (GNU cpio 2.13).
	SkipDirMtime bool
}

// CompareDir checks that dir holds exactly entries (plus dir itself), each
// with its type, permission bits (not for symlinks: Linux always shows
// 0777), owner 0:0, mtime (not for symlinks, which tools do not set),
// content, link target and device numbers.
func CompareDir(t testing.TB, dir string, entries []fstree.Entry, o Options) {
	t.Helper()
	n := 0
	if err := filepath.Walk(dir, func(string, os.FileInfo, error) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != len(entries)+1 {
		t.Errorf("extracted %d files besides the root, want %d", n-1, len(entries))
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Path)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Error(err)
			continue
		}
		if e.Kind != fstree.Symlink && st.Mode&0o7777 != uint32(e.Perm) {
			t.Errorf("%s: mode %#o, want %#o", e.Path, st.Mode&0o7777, uint32(e.Perm))
		}
		if st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: owner %d:%d, want 0:0", e.Path, st.Uid, st.Gid)
		}
		skipMtime := e.Kind == fstree.Symlink || (o.SkipDirMtime && e.Kind == fstree.Dir)
		if !skipMtime && st.Mtim.Sec != o.Epoch {
			t.Errorf("%s: mtime %d, want %d", e.Path, st.Mtim.Sec, o.Epoch)
		}
		typ := map[fstree.Kind]uint32{fstree.File: syscall.S_IFREG, fstree.Dir: syscall.S_IFDIR, fstree.Symlink: syscall.S_IFLNK,
			fstree.CharDev: syscall.S_IFCHR, fstree.BlockDev: syscall.S_IFBLK}[e.Kind]
		if st.Mode&syscall.S_IFMT != typ {
			t.Errorf("%s: type %#o, want %#o", e.Path, st.Mode&syscall.S_IFMT, typ)
			continue
		}
		switch e.Kind {
		case fstree.File:
			if data, err := os.ReadFile(p); err != nil || !bytes.Equal(data, e.Data) {
				t.Errorf("%s: content differs (%d bytes, want %d; %v)", e.Path, len(data), len(e.Data), err)
			}
		case fstree.Symlink:
			if target, err := os.Readlink(p); target != e.Target {
				t.Errorf("%s: link to %q, want %q (%v)", e.Path, target, e.Target, err)
			}
		case fstree.CharDev, fstree.BlockDev:
			if unix.Major(st.Rdev) != e.Major || unix.Minor(st.Rdev) != e.Minor {
				t.Errorf("%s: rdev %d:%d, want %d:%d", e.Path, unix.Major(st.Rdev), unix.Minor(st.Rdev), e.Major, e.Minor)
			}
		}
	}
}
