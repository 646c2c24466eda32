package launch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cocoon-appliance/cocoon/host/qemu"
	"github.com/cocoon-appliance/cocoon/image/build"
	"github.com/cocoon-appliance/cocoon/image/manifest"
	initconfig "github.com/cocoon-appliance/cocoon/init/config"
)

// GuestConfig reads the "guest" object as the guest's config document
// (init/config); its schema may be left out.
func (c *Config) GuestConfig() (*initconfig.Config, error) {
	var g initconfig.Config
	dec := json.NewDecoder(bytes.NewReader(c.Guest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("%w: guest: %v", ErrConfig, err)
	}
	if g.Schema == "" {
		g.Schema = initconfig.Schema
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("%w: guest: %w", ErrConfig, err)
	}
	return &g, nil
}

// GuestDisk is the guest's config disk (init/config.Encode).
func (c *Config) GuestDisk() ([]byte, error) {
	g, err := c.GuestConfig()
	if err != nil {
		return nil, err
	}
	return initconfig.Encode(g)
}

// SWTPM says whether each boot gets a fresh software TPM: the dev profile
// through OVMF (a direct boot has no firmware to measure into it).
func (c *Config) SWTPM() bool { return c.Profile == "dev" && !c.DirectBoot }

// Channel is the host channel each boot opens (host_channel, "auto"
// resolved).
func (c *Config) Channel() Channel {
	t := c.HostChannel.Transport
	if t == "" || t == TransportAuto {
		t = TransportVirtioSerial
		if c.VsockCID > 0 {
			t = TransportVsock
		}
	}
	if t == TransportNone {
		return Channel{}
	}
	return Channel{
		Transport: t, GuestCID: c.VsockCID,
		HealthTimeout: time.Duration(c.HostChannel.HealthTimeoutMS) * time.Millisecond,
	}
}

// QEMU is the QEMU config booting the image m describes (files in
// ImageDir) with the config disk at configDisk; TPMSocket and
// HostChannelSocket are set per boot (Sockets).
func (c *Config) QEMU(m *manifest.Manifest, configDisk string) (qemu.Config, error) {
	dir := c.ImageDir()
	q := qemu.Config{
		Profile: qemu.Profile(c.Profile), CPUs: c.CPUs, MemoryMiB: c.MemoryMiB,
		Kernel: filepath.Join(dir, build.VmlinuzName), Initrd: filepath.Join(dir, build.InitrdName),
		Cmdline: m.Cmdline, DirectBoot: c.DirectBoot,
		Disk: filepath.Join(dir, build.DiskName), ConfigDisk: configDisk,
		VsockCID: c.VsockCID, GPUs: c.GPUs,
	}
	if !c.DirectBoot {
		q.Firmware = filepath.Join(dir, build.FirmwareName)
	}
	for _, f := range c.Forwards {
		host, port, err := f.Split()
		if err != nil {
			return qemu.Config{}, fmt.Errorf("%w: forward %q: %v", ErrConfig, f.Host, err)
		}
		q.Forwards = append(q.Forwards, qemu.Forward{HostAddr: host, HostPort: port, GuestPort: uint16(f.GuestPort)})
	}
	return q, nil
}
