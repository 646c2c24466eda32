package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/fstree"
	"github.com/cocoon-appliance/cocoon/image/fstree/fstreetest"
)

// These tests check the writer against GNU cpio, the reference reader, and
// the reader against GNU cpio's writer. They skip when cpio is missing.

func gnuCpio(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("GNU cpio not installed")
	}
	return p
}

func writeFile(t *testing.T, tr *fstree.Tree) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "initrd.cpio")
	if err := os.WriteFile(img, write(t, tr, testEpoch), 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}

func runCpio(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command(gnuCpio(t), args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("cpio %v: %v\n%s", args, err, stderr.Bytes())
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

func TestGNUList(t *testing.T) {
	tr := testTree(t)
	got := runCpio(t, "-t", "--quiet", "-F", writeFile(t, tr))
	var want []string
	for _, e := range tr.Entries() {
		want = append(want, e.Path)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("cpio -t lists\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestGNUListVerbose(t *testing.T) {
	tr := testTree(t)
	lines := runCpio(t, "-tv", "--quiet", "-F", writeFile(t, tr))
	entries := tr.Entries()
	if len(lines) != len(entries) {
		t.Fatalf("cpio -tv: %d lines, want %d", len(lines), len(entries))
	}
	nlink := map[string]int{}
	for _, e := range entries {
		nlink[e.Path] = 1
		if e.Kind == fstree.Dir {
			nlink[e.Path] = 2
			nlink[filepath.Dir(e.Path)]++
		}
	}
	for i, e := range entries {
		f := strings.Fields(lines[i])
		// mode nlink owner group (size | major, minor) month day year name [-> target]
		want := []string{e.ModeString(), strconv.Itoa(nlink[e.Path]), "root", "root"}
		if e.Kind == fstree.CharDev || e.Kind == fstree.BlockDev {
			want = append(want, strconv.Itoa(int(e.Major))+",", strconv.Itoa(int(e.Minor)))
		} else {
			size := len(e.Data) + len(e.Target)
			want = append(want, strconv.Itoa(size))
		}
		want = append(want, "Nov", "14", "2023", e.Path)
		if e.Kind == fstree.Symlink {
			want = append(want, "->", e.Target)
		}
		if strings.Join(f, " ") != strings.Join(want, " ") {
			t.Errorf("cpio -tv line %q\nwant fields %q", lines[i], want)
		}
	}
}

// TestGNUExtract unpacks the archive with GNU cpio, as root so that owners,
// set-id bits and device nodes are restored, and compares the result with the
// tree: contents, types, modes, owners, device numbers and mtimes.
func TestGNUExtract(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to restore owners and create device nodes")
	}
	tr := testTree(t)
	dir := t.TempDir()
	runCpio(t, "-i", "-d", "-m", "--no-absolute-filenames", "--quiet", "-F", writeFile(t, tr), "-D", dir)
	// GNU cpio 2.13 sets a directory's mtime when it creates it, and
	// creating its children then moves it on: directory dates are checked
	// in TestGNUListVerbose's date column instead.
	fstreetest.CompareDir(t, dir, tr.Entries(), fstreetest.Options{Epoch: testEpoch, SkipDirMtime: true})
}

// TestReadGNUArchive reads what GNU cpio writes from a directory: a "."
// record, real inode numbers and a hard link whose body comes last.
func TestReadGNUArchive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to restore owners and create device nodes")
	}
	tr := testTree(t)
	dir := t.TempDir()
	runCpio(t, "-i", "-d", "-m", "--quiet", "-F", writeFile(t, tr), "-D", dir)
	if err := os.Link(filepath.Join(dir, "etc/hostname"), filepath.Join(dir, "etc/hostname.link")); err != nil {
		t.Fatal(err)
	}
	host, _ := tr.Get("etc/hostname")
	host.Path = "etc/hostname.link"
	if err := tr.Add(host); err != nil {
		t.Fatal(err)
	}

	find := exec.Command("find", ".")
	find.Dir = dir
	list, err := find.Output()
	if err != nil {
		t.Fatal(err)
	}
	out := exec.Command(gnuCpio(t), "-o", "-H", "newc", "--quiet")
	out.Dir = dir
	out.Stdin = bytes.NewReader(list)
	archive, err := out.Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Read(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	if d := fstree.FirstDifference(tr.Entries(), got); d != nil {
		t.Fatalf("Read(GNU archive) differs: %s", d)
	}
}
