package gpu_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/host/gpu"
	"github.com/cocoon-appliance/cocoon/host/gpu/gputest"
)

const (
	h100   = "0000:1b:00.0"
	h100b  = "0000:9a:00.0"
	audio  = "0000:1b:00.1"
	nic    = "0000:05:00.0"
	vga    = "0000:03:00.0"
	absent = "0000:ff:00.0"
)

// newHost builds a host with two H100s (one on nvidia, one on vfio-pci when
// vfio is true), an NVIDIA audio function, an Intel NIC and an NVIDIA VGA.
func newHost(t *testing.T, vfio bool) (gpu.Sysfs, *gputest.Tree) {
	t.Helper()
	tr, err := gputest.NewTree(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	second := ""
	if vfio {
		second = "vfio-pci"
	}
	for _, d := range []struct{ addr, vendor, dev, class, drv, group string }{
		{h100, "0x10de", "0x2330", "0x030200", "nvidia", "31"},
		{audio, "0x10de", "0x22ba", "0x040300", "snd_hda_intel", "31"},
		{h100b, "0x10de", "0x2330", "0x030200", second, "77"},
		{nic, "0x8086", "0x1572", "0x020000", "i40e", "12"},
		{vga, "0x10de", "0x1eb8", "0x030000", "", ""},
	} {
		if err := tr.AddDevice(d.addr, d.vendor, d.dev, d.class, d.drv, d.group); err != nil {
			t.Fatal(err)
		}
	}
	if vfio {
		if err := tr.LoadDriver("vfio-pci"); err != nil {
			t.Fatal(err)
		}
	}
	return gpu.Sysfs{Root: tr.Root, FS: tr}, tr
}

func TestNVIDIAGPUs(t *testing.T) {
	s, _ := newHost(t, true)
	got, err := s.NVIDIAGPUs()
	if err != nil {
		t.Fatal(err)
	}
	want := []gpu.Device{
		{Address: vga, Vendor: "0x10de", Device: "0x1eb8", Class: "0x030000"},
		{Address: h100, Vendor: "0x10de", Device: "0x2330", Class: "0x030200", Driver: "nvidia", IOMMUGroup: "31"},
		{Address: h100b, Vendor: "0x10de", Device: "0x2330", Class: "0x030200", Driver: "vfio-pci", IOMMUGroup: "77"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NVIDIAGPUs() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestNVIDIAGPUsNone(t *testing.T) {
	tr, err := gputest.NewTree(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := gpu.Sysfs{Root: tr.Root, FS: tr}.NVIDIAGPUs()
	if err != nil || len(got) != 0 {
		t.Fatalf("NVIDIAGPUs() = %v, %v; want none", got, err)
	}
	if _, err := (gpu.Sysfs{Root: t.TempDir()}).NVIDIAGPUs(); err == nil {
		t.Error("NVIDIAGPUs on a root without sysfs: want an error")
	}
}

func TestBindVFIO(t *testing.T) {
	tests := []struct {
		name       string
		vfio       bool
		refuse     bool
		addr       string
		want       error
		wantWrites []string
	}{
		{name: "from nvidia", vfio: true, addr: h100, wantWrites: []string{
			"devices/" + h100 + "/driver_override=vfio-pci",
			"drivers/nvidia/unbind=" + h100,
			"drivers_probe=" + h100,
		}},
		{name: "already bound", vfio: true, addr: h100b},
		{name: "unbound device", vfio: true, addr: vga, wantWrites: []string{
			"devices/" + vga + "/driver_override=vfio-pci",
			"drivers_probe=" + vga,
		}},
		{name: "device missing", vfio: true, addr: absent, want: gpu.ErrNoDevice},
		{name: "bad address", vfio: true, addr: "1b:00.0", want: gpu.ErrBadAddress},
		{name: "vfio-pci not loaded", vfio: false, addr: h100, want: gpu.ErrVFIONotLoaded},
		{name: "kernel refuses", vfio: true, refuse: true, addr: h100, want: gpu.ErrBindFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, tr := newHost(t, tt.vfio)
			tr.RefuseBind = tt.refuse
			err := s.BindVFIO(tt.addr)
			if !errors.Is(err, tt.want) {
				t.Fatalf("BindVFIO(%s) = %v, want %v", tt.addr, err, tt.want)
			}
			if tt.want == gpu.ErrVFIONotLoaded && !strings.Contains(err.Error(), "modprobe vfio-pci") {
				t.Errorf("error %q does not say how to fix it", err)
			}
			if tt.want != nil {
				return
			}
			if !reflect.DeepEqual(tr.Writes, tt.wantWrites) {
				t.Errorf("writes = %q, want %q", tr.Writes, tt.wantWrites)
			}
			d, err := s.Lookup(tt.addr)
			if err != nil || d.Driver != "vfio-pci" {
				t.Fatalf("after BindVFIO: %+v, %v; want driver vfio-pci", d, err)
			}
			// Idempotent: a second call writes nothing.
			n := len(tr.Writes)
			if err := s.BindVFIO(tt.addr); err != nil || len(tr.Writes) != n {
				t.Errorf("second BindVFIO = %v with %d new writes, want nil and none", err, len(tr.Writes)-n)
			}
		})
	}
}

func TestUnbind(t *testing.T) {
	s, tr := newHost(t, true)
	if err := s.BindVFIO(h100); err != nil {
		t.Fatal(err)
	}
	if err := s.Unbind(h100); err != nil {
		t.Fatal(err)
	}
	d, err := s.Lookup(h100)
	if err != nil || d.Driver != "" {
		t.Fatalf("after Unbind: %+v, %v; want no driver", d, err)
	}
	ov, _ := os.ReadFile(filepath.Join(tr.Root, "sys/bus/pci/devices", h100, "driver_override"))
	if strings.TrimSpace(string(ov)) != "(null)" {
		t.Errorf("driver_override = %q, want cleared", ov)
	}
	if err := s.Unbind(h100); err != nil {
		t.Errorf("Unbind of an unbound device = %v, want nil", err)
	}
	if err := s.Unbind(absent); !errors.Is(err, gpu.ErrNoDevice) {
		t.Errorf("Unbind(absent) = %v, want ErrNoDevice", err)
	}
}

func TestAdminTools(t *testing.T) {
	var gotArgs []string
	run := func(out string, err error) func(context.Context, string, ...string) ([]byte, error) {
		return func(_ context.Context, name string, args ...string) ([]byte, error) {
			gotArgs = append([]string{name}, args...)
			return []byte(out), err
		}
	}
	a := gpu.AdminTools{Script: "/opt/gpu-admin-tools/nvidia_gpu_tools.py",
		Run: run("2025-01-01 NVIDIA GPU 0000:1b:00.0 H100-PCIE 0x2331\n2025-01-01 GPU 0000:1b:00.0 H100-PCIE 0x2331 BAR0 0x1 CC mode is on\n", nil)}
	mode, err := a.QueryCC(h100)
	if err != nil || mode != "on" {
		t.Fatalf("QueryCC = %q, %v; want on", mode, err)
	}
	want := []string{"python3", "/opt/gpu-admin-tools/nvidia_gpu_tools.py", "--gpu-bdf=" + h100, "--query-cc-mode"}
	if !reflect.DeepEqual(gotArgs, want) {
		t.Errorf("argv = %q, want %q", gotArgs, want)
	}
	if err := a.SetCC(h100, "on"); err != nil {
		t.Fatal(err)
	}
	want = []string{"python3", "/opt/gpu-admin-tools/nvidia_gpu_tools.py", "--gpu-bdf=" + h100, "--set-cc-mode=on", "--reset-after-cc-mode-switch"}
	if !reflect.DeepEqual(gotArgs, want) {
		t.Errorf("argv = %q, want %q", gotArgs, want)
	}
	if err := a.SetCC(h100, "maybe"); !errors.Is(err, gpu.ErrBadMode) {
		t.Errorf("SetCC(maybe) = %v, want ErrBadMode", err)
	}
	a.Run = run("something else\n", nil)
	if _, err := a.QueryCC(h100); err == nil {
		t.Error("QueryCC with unparseable output: want error")
	}
	if _, err := (gpu.AdminTools{}).QueryCC(h100); !errors.Is(err, gpu.ErrNoAdminTools) {
		t.Errorf("QueryCC without script = %v, want ErrNoAdminTools", err)
	}
}
