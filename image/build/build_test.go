package build_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cocoon-appliance/cocoon/image/bootparams"
	"github.com/cocoon-appliance/cocoon/image/build"
	"github.com/cocoon-appliance/cocoon/image/manifest"
)

var artifacts = []string{
	build.VmlinuzName, build.FirmwareName, build.InitrdName, build.RootfsName,
	build.VerityName, build.CmdlineName, build.DiskName, build.ManifestName,
}

var (
	refOnce sync.Once
	refDir  string
	refErr  string
)

// reference builds the image once (cwd and HOME in temp dirs, TZ=UTC, umask
// 022) and returns its directory; other tests compare against it.
func reference(t *testing.T) string {
	t.Helper()
	c := cache(t)
	refOnce.Do(func() {
		base, err := os.MkdirTemp("", "cocoon-ref-")
		if err != nil {
			refErr = err.Error()
			return
		}
		refDir = filepath.Join(base, "image")
		r := run{dir: base, umask: "022", env: baseEnv(map[string]string{"TZ": "UTC", "HOME": base, "COCOON_CACHE": c})}
		_, stderr, code := r.cocoon(t, "image", "build", "--src", moduleRoot(t), "--out", refDir)
		if code != 0 {
			refErr = stderr
		}
	})
	if refErr != "" {
		t.Fatalf("reference build failed:\n%s", refErr)
	}
	return refDir
}

// TestReproducible builds the image a second time from a copy of the
// source at another path, from another working directory, with another
// time zone, locale, umask and HOME, and (unless -short) a cold Go build
// and module cache, and requires every artifact to be byte-identical.
func TestReproducible(t *testing.T) {
	ref := reference(t)
	c := cache(t)
	base := t.TempDir()
	src := filepath.Join(base, "elsewhere", "checkout")
	copySource(t, moduleRoot(t), src)
	over := map[string]string{
		"TZ": "Pacific/Chatham", "LC_ALL": "C.UTF-8", "LANG": "de_DE.UTF-8", "HOME": filepath.Join(base, "home"),
		"COCOON_CACHE": c, "TMPDIR": filepath.Join(base, "tmp"),
	}
	os.MkdirAll(over["TMPDIR"], 0o755)
	if !testing.Short() {
		// A cold build cache and module cache; modules come from the
		// current module cache as a file:// proxy, so no network is used.
		modcache := strings.TrimSpace(goEnv(t, "GOMODCACHE"))
		over["GOCACHE"] = filepath.Join(base, "gocache")
		over["GOPATH"] = filepath.Join(base, "gopath")
		over["GOMODCACHE"] = filepath.Join(base, "gopath", "pkg", "mod")
		over["GOPROXY"] = "file://" + filepath.Join(modcache, "cache", "download")
		over["GOFLAGS"] = "-modcacherw"
		over["GONOSUMDB"], over["GOSUMDB"] = "*", "off"
	} else {
		t.Log("-short: sharing the Go build cache")
	}
	r := run{dir: base, umask: "077", env: baseEnv(over)}
	out := filepath.Join(base, "out")
	_, stderr, code := r.cocoon(t, "image", "build", "--src", src, "--out", out)
	if code != 0 {
		t.Fatalf("second build failed:\n%s", stderr)
	}
	for _, name := range artifacts {
		if a, b := sha(t, filepath.Join(ref, name)), sha(t, filepath.Join(out, name)); a != b {
			t.Errorf("%s differs: %s vs %s", name, a, b)
		}
	}
	t.Logf("stderr of the second build:\n%s", stderr)
}

func goEnv(t *testing.T, key string) string {
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func loadManifest(t *testing.T, dir string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Load(filepath.Join(dir, build.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestManifestMatchesFiles: every output's size and sha256 in the manifest
// are those of the file, and the cmdline carries the verity table.
func TestManifestMatchesFiles(t *testing.T) {
	dir := reference(t)
	m := loadManifest(t, dir)
	for _, o := range m.Outputs {
		st, err := os.Stat(filepath.Join(dir, o.Name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != o.Size || sha(t, filepath.Join(dir, o.Name)) != o.SHA256 {
			t.Errorf("%s: manifest says %d bytes %s", o.Name, o.Size, o.SHA256)
		}
	}
	cmdline, _ := os.ReadFile(filepath.Join(dir, build.CmdlineName))
	if string(cmdline) != m.Cmdline {
		t.Errorf("cmdline file %q != manifest %q", cmdline, m.Cmdline)
	}
	p, err := bootparams.Parse(string(cmdline))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%x", p.Verity.RootHash) != m.Verity.RootHash || p.Verity.DataDevice != "PARTUUID="+m.Verity.RootPartUUID {
		t.Errorf("cmdline %+v does not match manifest %+v", p.Verity, m.Verity)
	}
	for _, want := range []string{"dm_verity", "dm_bufio", "squashfs", "virtio_blk", "tdx_guest", "tsm"} {
		found := false
		for _, mod := range m.Kernel.Modules {
			found = found || mod == want
		}
		if !found {
			t.Errorf("module %s not in the initrd (have %v)", want, m.Kernel.Modules)
		}
	}
	if ents, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".*tmp-*")); len(ents) != 0 {
		t.Errorf("temporary build directories left: %v", ents)
	}
}

// TestVeritysetup: the real tool accepts our hash tree, and rejects it
// after one byte of the root filesystem flips.
func TestVeritysetup(t *testing.T) {
	if _, err := exec.LookPath("veritysetup"); err != nil {
		t.Skip("veritysetup not installed (make setup installs cryptsetup-bin)")
	}
	dir := reference(t)
	m := loadManifest(t, dir)
	verify := func(data string) ([]byte, error) {
		return exec.Command("veritysetup", "verify", data, filepath.Join(dir, build.VerityName), m.Verity.RootHash).CombinedOutput()
	}
	if out, err := verify(filepath.Join(dir, build.RootfsName)); err != nil {
		t.Fatalf("veritysetup verify: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, build.RootfsName))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	bad := filepath.Join(t.TempDir(), "rootfs.img")
	os.WriteFile(bad, b, 0o644)
	if out, err := verify(bad); err == nil {
		t.Fatalf("veritysetup accepted a corrupted root filesystem:\n%s", out)
	}
}

// TestUnsquashfs: the real tool lists the root filesystem.
func TestUnsquashfs(t *testing.T) {
	if _, err := exec.LookPath("unsquashfs"); err != nil {
		t.Skip("unsquashfs not installed (make setup installs squashfs-tools)")
	}
	dir := reference(t)
	out, err := exec.Command("unsquashfs", "-lln", filepath.Join(dir, build.RootfsName)).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, out)
	}
	for _, want := range []string{"squashfs-root/usr/bin/cocoon-worker", "squashfs-root/etc/cocoon/static.json", "squashfs-root/etc/os-release -> ../usr/lib/os-release"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("unsquashfs -lln lacks %q:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte(" 1000/")) {
		t.Errorf("files not owned by 0/0:\n%s", out)
	}
}

// TestCpio: GNU cpio lists the initrd, and the init inside is identical to
// a separate build with the documented command.
func TestCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed")
	}
	dir := reference(t)
	m := loadManifest(t, dir)
	f, err := os.Open(filepath.Join(dir, build.InitrdName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("cpio", "-t", "--quiet")
	cmd.Stdin = f
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	modDir := "lib/modules/" + m.Kernel.Release + "/"
	for _, want := range []string{"init", "dev/console", "dev/null", modDir + build.ModulesLoadName} {
		if !bytes.Contains(out, []byte("\n"+want+"\n")) && !bytes.HasPrefix(out, []byte(want+"\n")) {
			t.Errorf("cpio -t lacks %s:\n%s", want, out)
		}
	}
	// Extract /init and compare with a separate build.
	ex := t.TempDir()
	f.Seek(0, 0)
	cmd = exec.Command("cpio", "-i", "--quiet", "--no-absolute-filenames", "init")
	cmd.Dir, cmd.Stdin = ex, f
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	sep := filepath.Join(t.TempDir(), "init")
	gb := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", sep, "./init")
	gb.Dir = moduleRoot(t)
	gb.Env = baseEnv(map[string]string{"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "amd64", "GOAMD64": "v1", "GOFLAGS": "-mod=readonly"})
	if out, err := gb.CombinedOutput(); err != nil {
		t.Fatalf("separate go build: %v\n%s", err, out)
	}
	if a, b := sha(t, filepath.Join(ex, "init")), sha(t, sep); a != b {
		t.Fatalf("init in the initrd (%s) differs from a separate build (%s)", a, b)
	}
}

// TestDiskGPT: sfdisk reads the disk and finds both partitions with the
// Discoverable Partitions types and the UUIDs the cmdline names.
func TestDiskGPT(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk not installed")
	}
	dir := reference(t)
	m := loadManifest(t, dir)
	out, err := exec.Command("sfdisk", "--json", filepath.Join(dir, build.DiskName)).Output()
	if err != nil {
		t.Fatalf("sfdisk: %v", err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string
			Partitions []struct {
				Type, UUID, Name string
				Start, Size      int64
			}
		}
	}
	if err := json.Unmarshal(out, &pt); err != nil {
		t.Fatal(err)
	}
	ps := pt.PartitionTable.Partitions
	if pt.PartitionTable.Label != "gpt" || len(ps) != 2 {
		t.Fatalf("sfdisk: %s", out)
	}
	want := []struct{ typ, uuid string }{
		{"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", m.Verity.RootPartUUID},
		{"2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5", m.Verity.HashPartUUID},
	}
	for i, w := range want {
		if !strings.EqualFold(ps[i].Type, w.typ) || !strings.EqualFold(ps[i].UUID, w.uuid) {
			t.Errorf("partition %d: type %s uuid %s, want %s %s", i+1, ps[i].Type, ps[i].UUID, w.typ, w.uuid)
		}
	}
	// The partitions hold exactly the root filesystem and the hash tree.
	disk, _ := os.ReadFile(filepath.Join(dir, build.DiskName))
	for i, name := range []string{build.RootfsName, build.VerityName} {
		content, _ := os.ReadFile(filepath.Join(dir, name))
		start := ps[i].Start * 512
		if !bytes.Equal(disk[start:start+int64(len(content))], content) {
			t.Errorf("partition %d does not hold %s", i+1, name)
		}
	}
}
