package check

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/host/gpu"
	"github.com/cocoon-appliance/cocoon/host/gpu/gputest"
)

const gpuA, gpuB = "0000:1b:00.0", "0000:9a:00.0"

func write(t *testing.T, root, rel, data string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readyEnv is a TDX GPU host with everything in place.
func readyEnv(t *testing.T) Env {
	tr, err := gputest.NewTree(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{gpuA, gpuB} {
		if err := tr.AddDevice(a, "0x10de", "0x2330", "0x030200", "vfio-pci", "7"+a[5:7]); err != nil {
			t.Fatal(err)
		}
	}
	write(t, tr.Root, "dev/kvm", "")
	write(t, tr.Root, "sys/module/kvm_intel/parameters/tdx", "Y\n")
	write(t, tr.Root, "sys/class/iommu/dmar0/x", "")
	return Env{
		Root:        tr.Root,
		Sysfs:       gpu.Sysfs{Root: tr.Root, FS: tr},
		QEMUVersion: func() (string, error) { return "QEMU emulator version 10.1.0\nCopyright", nil },
		LookPath:    func(string) (string, error) { return "/usr/bin/swtpm", nil },
		Admin:       &gputest.Admin{Modes: map[string]string{gpuA: "on", gpuB: "on"}},
	}
}

// bareEnv is a machine with nothing: no KVM, no sysfs, old QEMU.
func bareEnv(t *testing.T) Env {
	root := t.TempDir()
	return Env{
		Root:        root,
		QEMUVersion: func() (string, error) { return "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)", nil },
		LookPath:    func(string) (string, error) { return "", errors.New("not found") },
	}
}

func byName(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Name] = r
	}
	return m
}

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		env    func(*testing.T) Env
		wantOK map[string]bool
		detail map[string]string // substring expected in Detail
	}{
		{"all ready", readyEnv, map[string]bool{
			"kvm device": true, "tdx in kvm": true, "qemu for tdx": true, "vfio-pci loaded": true, "iommu on": true,
			"nvidia gpus": true, "gpu " + gpuA + " vfio": true, "gpu " + gpuA + " cc mode": true,
			"gpu " + gpuB + " vfio": true, "gpu " + gpuB + " cc mode": true, "swtpm (dev profile)": true,
		}, map[string]string{"qemu for tdx": "QEMU 10.1", "nvidia gpus": "2 found"}},
		{"nothing ready", bareEnv, map[string]bool{
			"kvm device": false, "tdx in kvm": false, "qemu for tdx": false, "vfio-pci loaded": false, "iommu on": false,
			"nvidia gpus": false, "swtpm (dev profile)": false,
		}, map[string]string{"qemu for tdx": "QEMU 7.2, want >= 10.1"}},
		{"tdx off, gpu on nvidia, cc off", func(t *testing.T) Env {
			e := readyEnv(t)
			write(t, e.Root, "sys/module/kvm_intel/parameters/tdx", "N\n")
			if err := e.Sysfs.Unbind(gpuB); err != nil {
				t.Fatal(err)
			}
			e.Admin = &gputest.Admin{Modes: map[string]string{gpuA: "on", gpuB: "devtools"}}
			return e
		}, map[string]bool{"tdx in kvm": false, "gpu " + gpuB + " vfio": false, "gpu " + gpuB + " cc mode": false, "gpu " + gpuA + " cc mode": true},
			map[string]string{"tdx in kvm": "= N, want Y", "gpu " + gpuB + " vfio": "driver none", "gpu " + gpuB + " cc mode": "devtools, want on"}},
		{"no admin tools", func(t *testing.T) Env {
			e := readyEnv(t)
			e.Admin = &gputest.Admin{Err: gpu.ErrNoAdminTools}
			return e
		}, map[string]bool{"gpu " + gpuA + " cc mode": false}, nil},
		{"qemu missing", func(t *testing.T) Env {
			e := readyEnv(t)
			e.QEMUVersion = func() (string, error) { return "", os.ErrNotExist }
			return e
		}, map[string]bool{"qemu for tdx": false}, map[string]string{"qemu for tdx": "not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := Run(tt.env(t))
			got := byName(rs)
			for name, ok := range tt.wantOK {
				r, found := got[name]
				if !found {
					t.Errorf("no result %q in %+v", name, rs)
					continue
				}
				if r.OK != ok {
					t.Errorf("%s: OK = %v (%s), want %v", name, r.OK, r.Detail, ok)
				}
				if !r.OK && r.Fix == "" {
					t.Errorf("%s failed without a Fix", name)
				}
			}
			for name, sub := range tt.detail {
				if !strings.Contains(got[name].Detail, sub) {
					t.Errorf("%s: Detail = %q, want it to contain %q", name, got[name].Detail, sub)
				}
			}
		})
	}
	if !AllOK(Run(readyEnv(t))) || AllOK(Run(bareEnv(t))) {
		t.Error("AllOK disagrees with the tables above")
	}
}

func TestParseQEMUVersion(t *testing.T) {
	for in, want := range map[string][2]int{
		"QEMU emulator version 10.1.0":                         {10, 1},
		"QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)":   {7, 2},
		"QEMU emulator version 9.2.50 (v9.2.0-1234-gdeadbeef)": {9, 2},
		"QEMU emulator version 11.0":                           {11, 0},
	} {
		maj, min, err := ParseQEMUVersion(in)
		if err != nil || [2]int{maj, min} != want {
			t.Errorf("ParseQEMUVersion(%q) = %d.%d, %v; want %v", in, maj, min, err, want)
		}
	}
	if _, _, err := ParseQEMUVersion("bash: qemu: not found"); err == nil {
		t.Error("want error for garbage")
	}
}

func TestFormat(t *testing.T) {
	var b bytes.Buffer
	Format(&b, []Result{
		{Name: "kvm device", OK: true, Detail: "/dev/kvm present"},
		{Name: "tdx in kvm", Detail: "x = N,\nwant Y", Fix: "load kvm_intel tdx=1"},
	})
	want := "CHECK       STATUS  DETAIL            FIX\n" +
		"kvm device  ok      /dev/kvm present  \n" +
		"tdx in kvm  FAIL    x = N, want Y     load kvm_intel tdx=1\n"
	if b.String() != want {
		t.Errorf("Format =\n%s\nwant\n%s", b.String(), want)
	}
}

// TestRealHost runs every check against this machine. It asserts only that
// the checks complete and each row is well formed; on a dev box most fail.
func TestRealHost(t *testing.T) {
	rs := Run(Env{Admin: gpu.AdminTools{}})
	if len(rs) < 7 {
		t.Fatalf("got %d results, want >= 7", len(rs))
	}
	for _, r := range rs {
		if r.Name == "" || r.Detail == "" || (!r.OK && r.Fix == "") {
			t.Errorf("malformed result %+v", r)
		}
	}
	var b bytes.Buffer
	Format(&b, rs)
	t.Logf("this host:\n%s", b.String())
}
