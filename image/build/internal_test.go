package build

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/lock"
)

func TestCheckOutDir(t *testing.T) {
	base := t.TempDir()
	if err := checkOutDir(filepath.Join(base, "new")); err != nil {
		t.Fatalf("absent dir: %v", err)
	}
	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	if err := checkOutDir(empty); err != nil {
		t.Fatalf("empty dir: %v", err)
	}
	img := filepath.Join(base, "img")
	os.Mkdir(img, 0o755)
	os.WriteFile(filepath.Join(img, ManifestName), []byte("{}"), 0o644)
	if err := checkOutDir(img); err != nil {
		t.Fatalf("previous image: %v", err)
	}
	other := filepath.Join(base, "other")
	os.Mkdir(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), nil, 0o644)
	if err := checkOutDir(other); !errors.Is(err, ErrOutDir) {
		t.Fatalf("foreign dir: %v", err)
	}
}

func TestReplaceDir(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "out")
	for i, content := range []string{"one", "two"} {
		tmp := filepath.Join(base, "tmp")
		os.Mkdir(tmp, 0o755)
		os.WriteFile(filepath.Join(tmp, ManifestName), []byte(content), 0o644)
		if err := replaceDir(tmp, out); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if b, _ := os.ReadFile(filepath.Join(out, ManifestName)); string(b) != content {
			t.Fatalf("round %d: out holds %q", i, b)
		}
	}
	if ents, _ := os.ReadDir(base); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestEpochFromEnv(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want int64
		ok   bool
	}{{"", -1, true}, {"0", 0, true}, {"1767225600", 1767225600, true}, {"-1", 0, false}, {"12abc", 0, false}, {"01", 0, false}} {
		t.Setenv("SOURCE_DATE_EPOCH", tc.v)
		got, err := EpochFromEnv()
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("SOURCE_DATE_EPOCH=%q: %d, %v", tc.v, got, err)
		}
	}
}

// TestUnpackedDetectsTampering: a file changed in the unpack cache after
// extraction is refused, not used.
func TestUnpackedDetectsTampering(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "boot"), 0o755)
	os.WriteFile(filepath.Join(dir, "boot", "vmlinuz-1"), []byte("kernel"), 0o644)
	// sha256("kernel")
	os.WriteFile(filepath.Join(dir, contentsName), []byte("6923dd1bc0460082c5d55a831908c24a282860b7f1cd6c2b79cf1bc8857c639c 6 boot/vmlinuz-1\n"), 0o644)
	u, err := loadUnpacked(dir, lock.Package{Name: "k", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := u.ReadFile("boot/vmlinuz-1"); err != nil || string(b) != "kernel" {
		t.Fatalf("intact file: %q %v", b, err)
	}
	os.WriteFile(filepath.Join(dir, "boot", "vmlinuz-1"), []byte("kernex"), 0o644)
	if _, err := u.ReadFile("boot/vmlinuz-1"); !errors.Is(err, ErrUnpack) {
		t.Fatalf("digest mismatch not detected: %v", err)
	}
	if _, err := u.ReadFile("boot/missing"); !errors.Is(err, ErrUnpack) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestFindKernel(t *testing.T) {
	u := &Unpacked{Pkg: lock.Package{Name: "k"}, files: map[string]fileSum{
		"boot/vmlinuz-6.12.1":                        {},
		"usr/lib/modules/6.12.1/modules.builtin":     {},
		"usr/lib/modules/6.12.1/kernel/a/b.ko.xz":    {},
		"usr/share/doc/linux-image-6.12.1/changelog": {},
	}}
	k, err := findKernel(u)
	if err != nil || k.release != "6.12.1" || k.modulesDir != "usr/lib/modules/6.12.1" {
		t.Fatalf("%+v %v", k, err)
	}
	u.files["boot/vmlinuz-6.13"] = fileSum{}
	if _, err := findKernel(u); !errors.Is(err, errKernelLayout) {
		t.Fatalf("two kernels: %v", err)
	}
	if !isModule("kernel/x.ko.xz") || !isModule("kernel/x.ko") || isModule("kernel/x.xz") {
		t.Fatal("isModule")
	}
}
