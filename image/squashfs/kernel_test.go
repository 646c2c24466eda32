package squashfs

import (
	"cmp"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/fstree"
	"github.com/cocoon-appliance/cocoon/image/fstree/fstreetest"
	"golang.org/x/sys/unix"
)

// mount loop-mounts img read-only and returns the mount point, or skips when
// this machine cannot loop-mount squashfs at all (not root, no loop devices,
// no squashfs in the kernel, a container without CAP_SYS_ADMIN). To tell
// that apart from a bad image, a mksquashfs image is mounted first.
func mount(t *testing.T, img string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop mounting needs root")
	}
	try := func(img string) (string, []byte, error) {
		dir := t.TempDir()
		out, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", img, dir).CombinedOutput()
		if err == nil {
			t.Cleanup(func() {
				if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
					t.Errorf("umount %s: %v\n%s", dir, err, out)
				}
			})
		}
		return dir, out, err
	}
	ref := filepath.Join(t.TempDir(), "ref.sqfs")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool(t, "mksquashfs"), src, ref, "-noappend", "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	if _, out, err := try(ref); err != nil {
		t.Skipf("cannot loop-mount even a mksquashfs image here: %v: %s", err, out)
	}
	dir, out, err := try(img)
	if err != nil {
		t.Fatalf("the kernel refuses the image: %v: %s", err, out)
	}
	return dir
}

// TestKernelMount has the running kernel, the image's real consumer, read
// the image: every path is looked up and read through the squashfs driver,
// and directories have the link count the kernel reports, 2 + subdirectories.
func TestKernelMount(t *testing.T) {
	for _, o := range []Options{
		small,
		{Epoch: testEpoch, Compression: "zstd"},
		{Epoch: testEpoch, BlockSize: 4096, Compression: "zstd"},
	} {
		t.Run(cmp.Or(o.Compression, "gzip")+"-"+strconv.Itoa(int(cmp.Or(o.BlockSize, defaultBlock))), func(t *testing.T) {
			tr := largeTree(t)
			for _, e := range testTree(t).Entries() {
				if err := tr.Add(e); err != nil {
					t.Fatal(err)
				}
			}
			dir := mount(t, build(t, tr, o))
			entries := tr.Entries()
			fstreetest.CompareDir(t, dir, entries, fstreetest.Options{Epoch: testEpoch})
			subdirs := map[string]uint64{}
			for _, e := range entries {
				if e.Kind == fstree.Dir {
					subdirs[filepath.Dir(e.Path)]++
				}
			}
			for _, e := range append([]fstree.Entry{{Path: ".", Kind: fstree.Dir}}, entries...) {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(dir, e.Path), &st); err != nil {
					t.Fatal(err)
				}
				want := uint64(1)
				if e.Kind == fstree.Dir {
					want = 2 + subdirs[e.Path]
				}
				if st.Nlink != want {
					t.Errorf("%s: nlink %d, want %d", e.Path, st.Nlink, want)
				}
			}
		})
	}
}
