// Package testinputs gives tests the real pinned inputs of the image (OVMF.fd,
// vmlinuz) from the verified package cache. Tests skip when the cache lacks
// them, and fail instead under COCOON_REQUIRE_INPUTS=1 (make test).
package testinputs

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/build"
	"github.com/cocoon-appliance/cocoon/image/lock"
)

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

func unpacked(t testing.TB, role string) *build.Unpacked {
	t.Helper()
	c := os.Getenv("COCOON_CACHE")
	if c == "" {
		d, _ := os.UserCacheDir()
		c = filepath.Join(d, "cocoon")
	}
	lf, err := lock.Load(filepath.Join(moduleRoot(), "image", "inputs.lock"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := lf.ByRole(role)
	if err != nil {
		t.Fatal(err)
	}
	u, err := build.Unpack(c, p)
	if err != nil {
		if os.Getenv("COCOON_REQUIRE_INPUTS") == "1" {
			t.Fatalf("pinned input %s missing (COCOON_REQUIRE_INPUTS=1): %v", p, err)
		}
		t.Skipf("pinned input %s not in %s (run `make setup`): %v", p, c, err)
	}
	return u
}

// Firmware returns the pinned OVMF.fd (TDVF).
func Firmware(t testing.TB) []byte {
	t.Helper()
	b, err := unpacked(t, lock.RoleFirmware).ReadFile(build.FirmwarePath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Kernel returns the pinned vmlinuz (a signed PE/COFF bzImage) and its
// release.
func Kernel(t testing.TB) ([]byte, string) {
	t.Helper()
	u := unpacked(t, lock.RoleKernel)
	rel, path, err := build.KernelImage(u)
	if err != nil {
		t.Fatal(err)
	}
	b, err := u.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, rel
}
