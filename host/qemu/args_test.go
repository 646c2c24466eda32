package qemu

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.args")

const cmdline = "console=ttyS0 ro cocoon.verity=ab12"

func tdxConfig() Config {
	return Config{
		Profile: ProfileTDX, CPUs: 8, MemoryMiB: 65536,
		Firmware: "/srv/cocoon/OVMF.fd", Kernel: "/srv/cocoon/vmlinuz", Initrd: "/srv/cocoon/initrd",
		Cmdline: cmdline, Disk: "/srv/cocoon/disk.img", ConfigDisk: "/srv/cocoon/config.img",
		TAP: "cocoon0", VsockCID: 42,
		GPUs:    []string{"0000:1b:00.0", "0000:9a:00.0"},
		Serial:  "file:/var/log/cocoon/console.log",
		PIDFile: "/run/cocoon/qemu.pid",
	}
}

func devConfig() Config {
	return Config{
		Profile: ProfileDev, CPUs: 2, MemoryMiB: 2048,
		Firmware: "out/image/OVMF.fd", Kernel: "out/image/vmlinuz", Initrd: "out/image/initrd",
		Cmdline: cmdline, Disk: "out/image/disk.img", ConfigDisk: "out/config.img",
		Forwards:          []Forward{{HostAddr: "127.0.0.1", HostPort: 8443, GuestPort: 443}, {HostPort: 2222, GuestPort: 22}},
		VsockCID:          3,
		TPMSocket:         "/tmp/cocoon-tpm/sock",
		HostChannelSocket: "/tmp/cocoon-host/hostlink.sock",
	}
}

func devDirectConfig() Config {
	c := devConfig()
	c.DirectBoot = true
	c.Firmware = ""
	c.TPMSocket = ""
	c.VsockCID = 0
	return c
}

func TestGolden(t *testing.T) {
	for name, c := range map[string]Config{"tdx": tdxConfig(), "dev": devConfig(), "dev-direct": devDirectConfig()} {
		t.Run(name, func(t *testing.T) {
			got, err := c.Args()
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Join(got, "\n") + "\n"
			path := filepath.Join("testdata", "golden", name+".args")
			if *update {
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./host/qemu -update)", err)
			}
			if text != string(want) {
				t.Errorf("argv differs from %s (rerun with -update and review the diff):\ngot:\n%s\nwant:\n%s", path, text, want)
			}
			again, _ := c.Args()
			if strings.Join(again, "\x00") != strings.Join(got, "\x00") {
				t.Error("Args is not deterministic")
			}
		})
	}
}

func TestArgsErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   error
	}{
		{"bad profile", func(c *Config) { c.Profile = "sev" }, ErrBadProfile},
		{"empty profile", func(c *Config) { c.Profile = "" }, ErrBadProfile},
		{"no cpus", func(c *Config) { c.CPUs = 0 }, ErrBadValue},
		{"tiny memory", func(c *Config) { c.MemoryMiB = 16 }, ErrBadValue},
		{"no kernel", func(c *Config) { c.Kernel = "" }, ErrMissingField},
		{"no disk", func(c *Config) { c.Disk = "" }, ErrMissingField},
		{"tdx without firmware", func(c *Config) { c.Firmware = "" }, ErrMissingField},
		{"tpm on tdx", func(c *Config) { c.TPMSocket = "/tmp/sock" }, ErrNotInProfile},
		{"direct boot on tdx", func(c *Config) { c.DirectBoot = true }, ErrNotInProfile},
		{"bad gpu address", func(c *Config) { c.GPUs = []string{"1b:00.0"} }, ErrBadValue},
		{"duplicate gpu", func(c *Config) { c.GPUs = []string{"0000:1b:00.0", "0000:1b:00.0"} }, ErrBadValue},
		{"bad qgs", func(c *Config) { c.QuoteGenerationSocket = "tcp:1.2.3.4:4050" }, ErrBadValue},
		{"reserved cid", func(c *Config) { c.VsockCID = 2 }, ErrBadValue},
		{"tap and forwards", func(c *Config) { c.Forwards = []Forward{{HostPort: 1, GuestPort: 1}} }, ErrBadValue},
		{"gpus on dev", func(c *Config) { *c = devConfig(); c.GPUs = []string{"0000:1b:00.0"} }, ErrNotInProfile},
		{"tap on dev", func(c *Config) { *c = devConfig(); c.Forwards = nil; c.TAP = "tap0" }, ErrNotInProfile},
		{"qgs on dev", func(c *Config) { *c = devConfig(); c.QuoteGenerationSocket = "vsock:2:4050" }, ErrNotInProfile},
		{"zero port", func(c *Config) { *c = devConfig(); c.Forwards = []Forward{{HostPort: 0, GuestPort: 22}} }, ErrBadValue},
		{"bad host addr", func(c *Config) {
			*c = devConfig()
			c.Forwards = []Forward{{HostAddr: "::1", HostPort: 1, GuestPort: 2}}
		}, ErrBadValue},
		{"dev without firmware", func(c *Config) { *c = devConfig(); c.Firmware = "" }, ErrMissingField},
		{"relative host channel", func(c *Config) { c.HostChannelSocket = "state/hostlink.sock" }, ErrBadValue},
		{"comma in host channel", func(c *Config) { c.HostChannelSocket = "/tmp/a,server=on/s" }, ErrBadValue},
		{"newline in host channel", func(c *Config) { c.HostChannelSocket = "/tmp/a\nb" }, ErrBadValue},
		{"long host channel", func(c *Config) { c.HostChannelSocket = "/" + strings.Repeat("d", 107) }, ErrBadValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tdxConfig()
			tt.mutate(&c)
			_, err := c.Args()
			if !errors.Is(err, tt.want) {
				t.Fatalf("Args() error = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestHostChannelOnTDX: virtio-serial is the fallback on TDX hosts too.
func TestHostChannelOnTDX(t *testing.T) {
	c := tdxConfig()
	c.HostChannelSocket = "/run/cocoon/hostlink.sock"
	a, err := c.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := "-device\nvirtio-serial-pci,id=vser0\n-chardev\nsocket,id=cocoonhost,path=/run/cocoon/hostlink.sock\n" +
		"-device\nvirtserialport,bus=vser0.0,chardev=cocoonhost,name=org.cocoon.host.0\n"
	if !strings.Contains(strings.Join(a, "\n")+"\n", want) {
		t.Fatalf("argv lacks the host channel:\n%s", strings.Join(a, "\n"))
	}
}

func TestQGSForms(t *testing.T) {
	tests := map[string]string{
		"":                     `{"qom-type":"tdx-guest","id":"tdx","quote-generation-socket":{"type":"vsock","cid":"2","port":"4050"}}`,
		"none":                 `{"qom-type":"tdx-guest","id":"tdx"}`,
		"unix:/run/qgs.sock":   `{"qom-type":"tdx-guest","id":"tdx","quote-generation-socket":{"type":"unix","path":"/run/qgs.sock"}}`,
		"/var/run/tdx-qgs/qgs": `{"qom-type":"tdx-guest","id":"tdx","quote-generation-socket":{"type":"unix","path":"/var/run/tdx-qgs/qgs"}}`,
		"vsock:2:4051":         `{"qom-type":"tdx-guest","id":"tdx","quote-generation-socket":{"type":"vsock","cid":"2","port":"4051"}}`,
	}
	for in, want := range tests {
		c := tdxConfig()
		c.QuoteGenerationSocket = in
		got, err := c.tdxObject()
		if err != nil || got != want {
			t.Errorf("QGS %q: got %s, %v; want %s", in, got, err, want)
		}
	}
}

func TestCommaEscaping(t *testing.T) {
	c := devDirectConfig()
	c.Disk = "/tmp/a,b/disk.img"
	got, err := c.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := "file=/tmp/a,,b/disk.img,if=none,id=root,format=raw,readonly=on"
	if !strings.Contains(strings.Join(got, "\n"), want) {
		t.Errorf("argv lacks %q:\n%s", want, strings.Join(got, "\n"))
	}
}

func TestValidateFiles(t *testing.T) {
	dir := t.TempDir()
	c := devConfig()
	for _, p := range []*string{&c.Firmware, &c.Kernel, &c.Initrd, &c.Disk, &c.ConfigDisk} {
		*p = filepath.Join(dir, filepath.Base(*p))
		if err := os.WriteFile(*p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	c.Initrd = filepath.Join(dir, "missing")
	if err := c.Validate(); !errors.Is(err, ErrMissingFile) || !strings.Contains(err.Error(), "Initrd") {
		t.Fatalf("Validate() = %v, want ErrMissingFile naming Initrd", err)
	}
	c.Initrd = filepath.Join(dir, "initrd")
	c.DirectBoot, c.Firmware = true, filepath.Join(dir, "no-ovmf")
	if err := c.Validate(); err != nil {
		t.Fatalf("DirectBoot needs no firmware file, Validate() = %v", err)
	}
}
