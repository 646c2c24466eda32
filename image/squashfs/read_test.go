package squashfs

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/fstree"
	"golang.org/x/sys/unix"
)

func readBytes(t *testing.T, b []byte) ([]fstree.Entry, error) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "x.sqfs")
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return Read(img)
}

// TestReadTruncated cuts an image at many lengths: every cut before
// bytes_used is ErrTruncated, cuts in the 4 KiB padding are harmless.
func TestReadTruncated(t *testing.T) {
	b := buildBytes(t, testTree(t), small)
	used := int(le.Uint64(b[40:]))
	for _, n := range []int{0, 1, 95, 96, 97, 200, used / 2, used - 8, used - 1} {
		_, err := readBytes(t, b[:n])
		if !errors.Is(err, ErrTruncated) || !errors.Is(err, ErrFormat) {
			t.Errorf("cut at %d of %d used: %v, want ErrTruncated", n, used, err)
		}
	}
	if _, err := readBytes(t, b[:used]); err != nil {
		t.Errorf("image without its padding: %v", err)
	}
	_, err := readBytes(t, b[:used-1])
	if want := "file is"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say how long the file is", err)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

// TestReadBad edits single fields of a valid image.
func TestReadBad(t *testing.T) {
	good := buildBytes(t, testTree(t), small)
	sb, err := parseSuperblock(good)
	if err != nil {
		t.Fatal(err)
	}
	set := func(off int, v any) []byte {
		b := bytes.Clone(good)
		switch v := v.(type) {
		case uint16:
			le.PutUint16(b[off:], v)
		case uint32:
			le.PutUint32(b[off:], v)
		case uint64:
			le.PutUint64(b[off:], v)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"magic", set(0, uint32(0x73717368^1)), ErrFormat},
		{"big-endian magic", set(0, uint32(0x68737173)), ErrFormat},
		{"version 3", set(28, uint16(3)), ErrFormat},
		{"block size 1000", set(12, uint32(1000)), ErrFormat},
		{"block_log off by one", set(22, uint16(13)), ErrFormat},
		{"lzo", set(20, uint16(compLzo)), ErrUnsupported},
		{"xz", set(20, uint16(compXz)), ErrUnsupported},
		{"compression 9", set(20, uint16(9)), ErrFormat},
		{"xattr table", set(56, sb.bytesUsed-16), ErrUnsupported},
		{"bytes_used past the file", set(40, uint64(len(good)+1)), ErrTruncated},
		{"inode table after directory table", set(64, sb.dirTable), ErrFormat},
		{"no ids", set(26, uint16(0)), ErrFormat},
		{"id index past the end", set(48, sb.bytesUsed-4), ErrFormat},
		{"fragment count huge", set(16, uint32(0xffffffff)), ErrFormat},
		{"root ref past inode table", set(32, (sb.dirTable-sb.inodeTable+1)<<16), ErrFormat},
		{"root ref at a file", set(32, uint64(0)), ErrFormat},
		{"root ref offset 9000", set(32, uint64(9000)), ErrFormat},
		{"metadata header zero", set(int(sb.inodeTable), uint16(0)), ErrFormat},
		{"metadata header too big", set(int(sb.inodeTable), uint16(metaSize+1)), ErrFormat},
		{"garbage compressed metadata", set(int(sb.inodeTable)+2, uint64(0xdeadbeefdeadbeef)), ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := readBytes(t, tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Read = %d entries, %v; want %v", len(es), err, tc.want)
			}
			if tc.want != ErrTruncated && errors.Is(err, ErrTruncated) {
				t.Fatalf("Read = %v, want an error that is not truncation", err)
			}
			if !strings.Contains(err.Error(), "squashfs: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestReadRejects covers what Read refuses by policy, on images built with
// mksquashfs so they are otherwise valid: other owners, FIFOs, xattrs.
func TestReadRejects(t *testing.T) {
	mk := tool(t, "mksquashfs")
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	for _, tc := range []struct {
		name  string
		setup func(dir string) error
		args  []string
		want  error
	}{
		{"owner", func(d string) error { return os.Chown(filepath.Join(d, "f"), 1000, 1000) }, []string{"-no-xattrs"}, ErrUnsupported},
		{"fifo", func(d string) error { return mkfifo(filepath.Join(d, "p")) }, []string{"-no-xattrs", "-all-root"}, ErrUnsupported},
		{"xattrs", func(d string) error { return setxattr(filepath.Join(d, "f")) }, []string{"-xattrs", "-all-root"}, ErrUnsupported},
		{"plain", func(string) error { return nil }, []string{"-no-xattrs", "-all-root"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := tc.setup(dir); err != nil {
				t.Skipf("setup: %v", err)
			}
			img := filepath.Join(t.TempDir(), "mk.sqfs")
			args := append([]string{dir, img, "-noappend", "-quiet"}, tc.args...)
			if out, err := execOut(mk, args...); err != nil {
				t.Fatalf("mksquashfs: %v\n%s", err, out)
			}
			_, err := Read(img)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Read = %v, want %v", err, tc.want)
			}
		})
	}
}

func mkfifo(p string) error { return unix.Mkfifo(p, 0o644) }

func setxattr(p string) error { return unix.Setxattr(p, "user.cocoon", []byte("1"), 0) }

func execOut(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}
