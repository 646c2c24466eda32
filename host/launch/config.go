package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/cocoon-appliance/cocoon/internal/strictjson"
)

// ConfigSchema names the host config format.
const ConfigSchema = "cocoon-host/v1"

// ErrConfig is returned for an invalid host config.
var ErrConfig = errors.New("launch: invalid host config")

// Config is the host config file of `cocoon host launch`:
//
//	{
//	  "schema": "cocoon-host/v1",
//	  "profile": "dev",                     // "dev" (TCG + swtpm) or "tdx"
//	  "image": "out/image",                 // built image directory, relative to this file
//	  "cpus": 2, "memory_mib": 2048,
//	  "direct_boot": false,                 // dev only: no OVMF, faster, no firmware measurements
//	  "forwards": [{"host": "127.0.0.1:18080", "guest_port": 8080}],
//	  "vsock_cid": 0,
//	  "gpus": ["0000:17:00.0"],             // tdx only: GPUs bound to vfio-pci
//	  "restart": {"max": 3, "backoff_ms": 1000, "max_backoff_ms": 30000},
//	  "host_channel": {"transport": "auto", "health_timeout_ms": 30000},
//	  "guest": {"static": {...}, "runtime": {...}}   // the guest's config (init/config), written to its config disk
//	}
//
// host_channel is the guest's channel to the launcher for its logs and
// health (guest/hostlink); it may be left out. Its transport is "auto" (the
// default: vsock when vsock_cid is set, else virtio-serial), "vsock"
// (needs vsock_cid: only that guest is heard), "virtio-serial" (a unix
// socket in the state directory; for hosts without vhost-vsock, such as
// the development profile under TCG, and a fallback on TDX) or "none". The
// virtio-serial port is one more PCI device: a TDX platform capture must be
// taken with the same setting. A guest that reported ready and then sends
// no heartbeat for health_timeout_ms (default 30000, at least 10000) is
// restarted, as is one that reports failed.
type Config struct {
	Schema      string            `json:"schema"`
	Profile     string            `json:"profile"`
	Image       string            `json:"image"`
	CPUs        int               `json:"cpus"`
	MemoryMiB   uint64            `json:"memory_mib"`
	DirectBoot  bool              `json:"direct_boot"`
	Forwards    []Forward         `json:"forwards"`
	VsockCID    uint32            `json:"vsock_cid"`
	GPUs        []string          `json:"gpus"`
	Restart     RestartConfig     `json:"restart"`
	HostChannel HostChannelConfig `json:"host_channel"`
	Guest       json.RawMessage   `json:"guest"`

	dir string // the config file's directory, for relative paths
}

// Forward is a host TCP port forwarded to the guest (dev profile).
type Forward struct {
	Host      string `json:"host"`
	GuestPort int    `json:"guest_port"`
}

// Split returns the forward's host address and port.
func (f Forward) Split() (string, uint16, error) {
	host, port, err := net.SplitHostPort(f.Host)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("want IP:PORT")
	}
	return host, uint16(p), nil
}

// RestartConfig is the restart policy.
type RestartConfig struct {
	Max          int `json:"max"`
	BackoffMS    int `json:"backoff_ms"`
	MaxBackoffMS int `json:"max_backoff_ms"`
}

// Policy converts the restart settings.
func (r RestartConfig) Policy() Policy {
	p := Policy{MaxRestarts: r.Max, Backoff: time.Duration(r.BackoffMS) * time.Millisecond, MaxBackoff: time.Duration(r.MaxBackoffMS) * time.Millisecond}
	if p.Backoff == 0 {
		p.Backoff = time.Second
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = 30 * time.Second
	}
	return p
}

// HostChannelConfig is the "host_channel" object (see Config).
type HostChannelConfig struct {
	Transport       string `json:"transport"`
	HealthTimeoutMS int    `json:"health_timeout_ms"`
}

// minHealthTimeoutMS is twice the guest's heartbeat interval: a shorter
// timeout would restart healthy guests.
const minHealthTimeoutMS = 10000

var pciAddrRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// Validate checks the config.
func (c *Config) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(f, a...)) }
	switch {
	case c.Schema != ConfigSchema:
		return bad("schema %q, want %q", c.Schema, ConfigSchema)
	case c.Profile != "dev" && c.Profile != "tdx":
		return bad("profile %q, want dev or tdx", c.Profile)
	case c.Image == "":
		return bad("no image directory")
	case c.CPUs < 1 || c.CPUs > 512:
		return bad("cpus %d, want 1..512", c.CPUs)
	case c.MemoryMiB < 256 || c.MemoryMiB > 4<<20:
		return bad("memory_mib %d, want 256..4194304", c.MemoryMiB)
	case c.DirectBoot && c.Profile == "tdx":
		return bad("direct_boot is for the dev profile: a TD always boots through TDVF")
	case len(c.GPUs) > 0 && c.Profile != "tdx":
		return bad("gpus need the tdx profile")
	case len(c.Forwards) > 0 && c.Profile != "dev":
		return bad("forwards need the dev profile (user-mode networking)")
	case c.Restart.Max < 0 || c.Restart.BackoffMS < 0 || c.Restart.MaxBackoffMS < 0:
		return bad("negative restart settings")
	case len(c.Guest) == 0:
		return bad("no guest config")
	}
	switch ch := c.HostChannel; {
	case ch.Transport != "" && ch.Transport != TransportAuto && ch.Transport != TransportVsock &&
		ch.Transport != TransportVirtioSerial && ch.Transport != TransportNone:
		return bad("host_channel transport %q, want auto, vsock, virtio-serial or none", ch.Transport)
	case ch.Transport == TransportVsock && c.VsockCID == 0:
		return bad("host_channel transport vsock needs vsock_cid")
	case ch.HealthTimeoutMS != 0 && ch.HealthTimeoutMS < minHealthTimeoutMS:
		return bad("host_channel health_timeout_ms %d, want at least %d (the guest's heartbeat is every 5000)", ch.HealthTimeoutMS, minHealthTimeoutMS)
	}
	for _, g := range c.GPUs {
		if !pciAddrRE.MatchString(g) {
			return bad("gpu %q: want a PCI address like 0000:17:00.0", g)
		}
	}
	seen := map[string]bool{}
	for _, f := range c.Forwards {
		if _, _, err := f.Split(); err != nil {
			return bad("forward host %q: want IP:PORT", f.Host)
		}
		if f.GuestPort < 1 || f.GuestPort > 65535 {
			return bad("forward guest_port %d", f.GuestPort)
		}
		if seen[f.Host] {
			return bad("forward %s given twice", f.Host)
		}
		seen[f.Host] = true
	}
	_, err := c.GuestConfig()
	return err
}

// ImageDir is the image directory, resolved against the config file.
func (c *Config) ImageDir() string {
	if filepath.IsAbs(c.Image) || c.dir == "" {
		return c.Image
	}
	return filepath.Join(c.dir, c.Image)
}

// ParseConfig reads a host config.
func ParseConfig(r io.Reader) (*Config, error) {
	var c Config
	if err := strictjson.Decode(r, 1<<20, &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &c, c.Validate()
}

// LoadConfig reads a host config file; relative paths in it are relative
// to the file.
func LoadConfig(path string) (*Config, error) {
	c, err := strictjson.Load(path, ParseConfig)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c.dir = filepath.Dir(abs)
	return c, nil
}
