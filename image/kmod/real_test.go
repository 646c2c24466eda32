package kmod

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/deb"
)

// The real Debian kernel package is not committed (108 MB). Point
// COCOON_DEB_DIR at the directory holding it; the test skips without it.
const (
	kernelDeb = "linux-image-6.12.107+deb13-amd64_6.12.107-1_amd64.deb"
	kernelVer = "6.12.107+deb13-amd64"
)

// kernelModules reads the package once and returns every module file under
// the modules dir by relative path, and modules.builtin.
func kernelModules(t *testing.T) (map[string][]byte, []byte) {
	if testing.Short() {
		t.Skip("decompresses 110 MB")
	}
	dir := os.Getenv("COCOON_DEB_DIR")
	if dir == "" {
		dir = "/tmp/trixie/archives"
	}
	f, err := os.Open(filepath.Join(dir, kernelDeb))
	if os.IsNotExist(err) {
		t.Skipf("%s not in %s (set COCOON_DEB_DIR)", kernelDeb, dir)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	modDir := "usr/lib/modules/" + kernelVer + "/"
	files := map[string][]byte{}
	var builtin []byte
	err = deb.Walk(f, st.Size(), func(name string, hdr *tar.Header, r io.Reader) error {
		rel, ok := strings.CutPrefix(name, modDir)
		if !ok || hdr.Typeflag != tar.TypeReg || !(rel == "modules.builtin" || strings.HasPrefix(rel, "kernel/")) {
			return nil
		}
		b, err := io.ReadAll(r)
		if rel == "modules.builtin" {
			builtin = b
		} else {
			files[rel] = b
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 1000 || builtin == nil {
		t.Fatalf("found %d module files and modules.builtin=%v, want thousands and the file", len(files), builtin != nil)
	}
	return files, builtin
}

func TestRealKernelClosure(t *testing.T) {
	files, builtin := kernelModules(t)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	ix := NewIndex(paths, builtin)
	parsed := map[string]Info{}
	info := func(p string) (Info, error) {
		inf, err := ParseModinfo(files[p])
		parsed[p] = inf
		return inf, err
	}
	wanted := strings.Fields(`virtio_blk virtio_net vmw_vsock_virtio_transport vsock dm_mod dm_verity
		squashfs tdx_guest tsm configfs virtio_rng sha256_ssse3 tpm_tis tpm_crb virtio_pci virtio_console`)
	res, err := ix.Closure(wanted, info)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range res.Modules {
		t.Logf("%2d %-30s %-70s depends=%s", i, m.Name, m.Path, strings.Join(m.Depends, ","))
	}
	t.Logf("builtin: %s", strings.Join(res.Builtin, " "))
	t.Logf("ignored: %q", res.Ignored)

	order := names(res.Modules)
	pos := func(name string) int {
		i := slices.Index(order, name)
		if i < 0 {
			t.Fatalf("%s missing from the closure %q", name, order)
		}
		return i
	}
	for _, c := range [][2]string{{"dm_verity", "dm_bufio"}, {"dm_verity", "dm_mod"}, {"tdx_guest", "tsm"}} {
		if pos(c[0]) < pos(c[1]) {
			t.Errorf("%s at %d loads before its dependency %s at %d", c[0], pos(c[0]), c[1], pos(c[1]))
		}
	}
	for _, m := range res.Modules {
		if m.Name == "virtio_net" && len(m.Depends) == 0 {
			t.Errorf("virtio_net has no module dependencies, want net_failover at least")
		}
	}
	checkOrder(t, res, func(p string) (Info, error) { return parsed[p], nil })
	for _, b := range []string{"virtio_pci", "virtio_console", "tpm_tis", "tpm_crb"} {
		if !slices.Contains(res.Builtin, b) {
			t.Errorf("%s not reported builtin; Builtin = %q", b, res.Builtin)
		}
	}
	for p, inf := range parsed {
		if !strings.HasPrefix(inf.Vermagic, kernelVer+" ") || Normalize(inf.Name) != moduleName(p) {
			t.Errorf("%s: name=%q vermagic=%q, want name %s and vermagic for %s", p, inf.Name, inf.Vermagic, moduleName(p), kernelVer)
		}
	}
}
