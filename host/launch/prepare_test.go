package launch

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/host/qemu"
	"github.com/cocoon-appliance/cocoon/image/manifest"
	initconfig "github.com/cocoon-appliance/cocoon/init/config"
)

func TestQEMUConfig(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(devConfig))
	if err != nil {
		t.Fatal(err)
	}
	c.dir = "/srv/cocoon"
	q, err := c.QEMU(&manifest.Manifest{Cmdline: "console=ttyS0 ro"}, "/run/config.img")
	if err != nil {
		t.Fatal(err)
	}
	img := "/srv/cocoon/img"
	if q.Profile != qemu.Profile("dev") || q.Kernel != filepath.Join(img, "vmlinuz") || q.Disk != filepath.Join(img, "disk.img") ||
		q.Cmdline != "console=ttyS0 ro" || q.ConfigDisk != "/run/config.img" || q.Firmware != "" || !q.DirectBoot {
		t.Fatalf("%+v", q)
	}
	if len(q.Forwards) != 1 || q.Forwards[0] != (qemu.Forward{HostAddr: "127.0.0.1", HostPort: 18080, GuestPort: 8080}) {
		t.Fatalf("forwards %+v", q.Forwards)
	}
	if c.SWTPM() {
		t.Fatal("a direct boot gets no swtpm")
	}
	c.DirectBoot = false
	if q, _ = c.QEMU(&manifest.Manifest{}, "x"); q.Firmware != filepath.Join(img, "OVMF.fd") || !c.SWTPM() {
		t.Fatalf("OVMF boot: firmware %q swtpm %v", q.Firmware, c.SWTPM())
	}
	disk, err := c.GuestDisk()
	if err != nil || len(disk)%4096 != 0 || string(disk[:8]) != initconfig.Magic {
		t.Fatalf("guest disk: %d bytes, %v", len(disk), err)
	}
}

func TestChannel(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit string // fields added to devConfig
		want Channel
	}{
		{"default: virtio-serial", ``, Channel{Transport: TransportVirtioSerial}},
		{"auto with a vsock cid", `"vsock_cid": 5,`, Channel{Transport: TransportVsock, GuestCID: 5}},
		{"virtio-serial beside vsock", `"vsock_cid": 5, "host_channel": {"transport": "virtio-serial"},`, Channel{Transport: TransportVirtioSerial, GuestCID: 5}},
		{"timeout", `"host_channel": {"transport": "auto", "health_timeout_ms": 60000},`, Channel{Transport: TransportVirtioSerial, HealthTimeout: time.Minute}},
		{"none", `"vsock_cid": 5, "host_channel": {"transport": "none"},`, Channel{}},
	} {
		c, err := ParseConfig(strings.NewReader(strings.Replace(devConfig, `"restart"`, tc.edit+` "restart"`, 1)))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := c.Channel(); got != tc.want {
			t.Errorf("%s: Channel() = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
