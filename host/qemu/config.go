// Package qemu turns a typed launch configuration into a QEMU command line.
//
// Two profiles exist. "tdx" boots the appliance as an Intel TDX trust domain
// under KVM (QEMU >= 10.1, see docs/system/i386/tdx.rst in QEMU) with
// optional NVIDIA GPUs passed through with iommufd-backed vfio-pci. "dev"
// boots the same image under TCG with a swtpm vTPM, for machines without
// TDX. The argv is deterministic: the same Config always yields the same
// arguments in the same order, so it can be golden-tested and so that
// anything QEMU measures (ACPI tables, device list) is reproducible.
package qemu

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"unicode"
)

// Profile selects the kind of virtual machine.
type Profile string

const (
	// ProfileTDX is a TDX trust domain under KVM.
	ProfileTDX Profile = "tdx"
	// ProfileDev is a TCG guest with a swtpm vTPM for development.
	ProfileDev Profile = "dev"
)

// DefaultQEMU is the binary used when Config.QEMU is empty.
const DefaultQEMU = "qemu-system-x86_64"

// DefaultQuoteGenerationSocket is where Intel's QGS listens by default
// (vsock CID 2 = host, port 4050).
const DefaultQuoteGenerationSocket = "vsock:2:4050"

// Forward is a user-mode networking host port forward (TCP).
type Forward struct {
	HostAddr  string // default "127.0.0.1"
	HostPort  uint16
	GuestPort uint16
}

// Config describes one appliance boot.
type Config struct {
	Profile   Profile
	QEMU      string // binary, default DefaultQEMU
	CPUs      int
	MemoryMiB uint64

	Firmware string // OVMF/TDVF image, loaded with -bios
	Kernel   string
	Initrd   string
	Cmdline  string // the exact -append string (from the image's cmdline file)

	// DirectBoot (dev only) boots the kernel without OVMF for fast tests.
	DirectBoot bool

	Disk       string // disk.img, first virtio-blk, read-only, serial "cocoon-root"
	ConfigDisk string // raw config disk, second virtio-blk, read-only, serial "cocoon-config"

	Forwards []Forward // user-mode NIC host forwards
	TAP      string    // tdx: tap interface instead of user-mode networking

	VsockCID uint32 // vhost-vsock-pci guest-cid when > 0

	// HostChannelSocket is the unix socket of the guest's host channel over
	// virtio-serial (guest/hostlink), for hosts without vhost-vsock: the
	// launcher listens there and QEMU connects to it. Both profiles.
	HostChannelSocket string

	TPMSocket string // dev: swtpm control socket

	// QuoteGenerationSocket (tdx) is "vsock:CID:PORT", "unix:PATH" or an
	// absolute unix socket path. Empty means DefaultQuoteGenerationSocket;
	// "none" leaves the property off (no GetQuote service).
	QuoteGenerationSocket string

	GPUs []string // tdx: PCI addresses (0000:bb:dd.f) bound to vfio-pci

	Serial  string // "stdio" (default) or a QEMU chardev spec such as "file:/x.log"
	PIDFile string
}

// Sentinel errors returned (wrapped) by Validate and Args.
var (
	ErrBadProfile   = errors.New("qemu: unknown profile")
	ErrMissingField = errors.New("qemu: required field missing")
	ErrMissingFile  = errors.New("qemu: file not found")
	ErrNotInProfile = errors.New("qemu: option not allowed in this profile")
	ErrBadValue     = errors.New("qemu: invalid value")
)

var pciAddr = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// Validate checks the configuration and that every file it names exists.
// Args does the same checks except the file-existence ones, so that argv can
// be computed (and golden-tested) for paths on another machine.
func (c Config) Validate() error {
	if err := c.check(); err != nil {
		return err
	}
	files := []struct{ name, path string }{
		{"Kernel", c.Kernel}, {"Initrd", c.Initrd}, {"Disk", c.Disk},
	}
	if c.usesFirmware() {
		files = append(files, struct{ name, path string }{"Firmware", c.Firmware})
	}
	if c.ConfigDisk != "" {
		files = append(files, struct{ name, path string }{"ConfigDisk", c.ConfigDisk})
	}
	for _, f := range files {
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%w: %s %q: %v", ErrMissingFile, f.name, f.path, err)
		}
	}
	return nil
}

func (c Config) usesFirmware() bool { return c.Profile == ProfileTDX || !c.DirectBoot }

// check is Validate without touching the filesystem.
func (c Config) check() error {
	switch c.Profile {
	case ProfileTDX, ProfileDev:
	default:
		return fmt.Errorf("%w: %q, want %q or %q", ErrBadProfile, c.Profile, ProfileTDX, ProfileDev)
	}
	if c.CPUs < 1 {
		return fmt.Errorf("%w: CPUs = %d, want >= 1", ErrBadValue, c.CPUs)
	}
	if c.MemoryMiB < 64 {
		return fmt.Errorf("%w: MemoryMiB = %d, want >= 64", ErrBadValue, c.MemoryMiB)
	}
	required := []struct{ name, val string }{
		{"Kernel", c.Kernel}, {"Initrd", c.Initrd}, {"Disk", c.Disk},
	}
	if c.usesFirmware() {
		required = append(required, struct{ name, val string }{"Firmware", c.Firmware})
	}
	for _, r := range required {
		if r.val == "" {
			return fmt.Errorf("%w: %s", ErrMissingField, r.name)
		}
	}
	for i, f := range c.Forwards {
		if f.HostPort == 0 || f.GuestPort == 0 {
			return fmt.Errorf("%w: Forwards[%d] = %d->%d, want non-zero ports", ErrBadValue, i, f.HostPort, f.GuestPort)
		}
		if f.HostAddr != "" && net.ParseIP(f.HostAddr).To4() == nil {
			return fmt.Errorf("%w: Forwards[%d].HostAddr = %q, want an IPv4 address", ErrBadValue, i, f.HostAddr)
		}
	}
	if c.TAP != "" && len(c.Forwards) > 0 {
		return fmt.Errorf("%w: TAP %q and Forwards both set; forwards only apply to user-mode networking", ErrBadValue, c.TAP)
	}
	if strings.ContainsAny(c.TAP, ", =") {
		return fmt.Errorf("%w: TAP = %q", ErrBadValue, c.TAP)
	}
	if c.VsockCID > 0 && c.VsockCID < 3 {
		return fmt.Errorf("%w: VsockCID = %d, want >= 3 (0-2 are reserved)", ErrBadValue, c.VsockCID)
	}
	if err := checkSocketPath(c.HostChannelSocket); err != nil {
		return err
	}
	if c.Serial != "" && strings.ContainsAny(c.Serial, " \n") {
		return fmt.Errorf("%w: Serial = %q", ErrBadValue, c.Serial)
	}
	switch c.Profile {
	case ProfileTDX:
		if c.DirectBoot {
			return fmt.Errorf("%w: DirectBoot on tdx (a TD always boots through TDVF)", ErrNotInProfile)
		}
		if c.TPMSocket != "" {
			return fmt.Errorf("%w: TPMSocket on tdx (TDX attests with RTMRs and quotes, not a vTPM)", ErrNotInProfile)
		}
		if _, err := qgsAddress(c.qgs()); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, g := range c.GPUs {
			if !pciAddr.MatchString(g) {
				return fmt.Errorf("%w: GPU address %q, want domain:bus:dev.fn like 0000:1b:00.0", ErrBadValue, g)
			}
			if seen[g] {
				return fmt.Errorf("%w: GPU %s listed twice", ErrBadValue, g)
			}
			seen[g] = true
		}
	case ProfileDev:
		if len(c.GPUs) > 0 {
			return fmt.Errorf("%w: GPUs on dev (GPU passthrough needs KVM and the tdx profile)", ErrNotInProfile)
		}
		if c.TAP != "" {
			return fmt.Errorf("%w: TAP on dev (dev uses user-mode networking)", ErrNotInProfile)
		}
		if c.QuoteGenerationSocket != "" {
			return fmt.Errorf("%w: QuoteGenerationSocket on dev", ErrNotInProfile)
		}
	}
	return nil
}

// checkSocketPath refuses what QEMU would misread: a comma ends the
// chardev option (QEMU's ",," escape is not used for this path, so the
// launcher's and QEMU's view of it cannot differ), a relative path depends
// on QEMU's working directory, and sun_path holds 107 bytes and a NUL.
func checkSocketPath(p string) error {
	switch {
	case p == "":
		return nil
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: HostChannelSocket = %q, want an absolute path", ErrBadValue, p)
	case strings.ContainsRune(p, ',') || strings.IndexFunc(p, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: HostChannelSocket = %q, want no commas or control characters", ErrBadValue, p)
	case len(p) > 107:
		return fmt.Errorf("%w: HostChannelSocket of %d bytes, want at most 107 (unix socket path)", ErrBadValue, len(p))
	}
	return nil
}

func (c Config) qgs() string {
	if c.QuoteGenerationSocket == "" {
		return DefaultQuoteGenerationSocket
	}
	return c.QuoteGenerationSocket
}
