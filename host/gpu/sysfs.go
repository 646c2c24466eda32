// Package gpu prepares NVIDIA GPUs on the host for a TDX guest: it finds
// them in sysfs, binds them to vfio-pci (the kernel's documented
// driver_override + drivers_probe sequence, Documentation/ABI/testing/
// sysfs-bus-pci) and queries or sets their confidential-computing mode
// through NVIDIA's gpu-admin-tools.
package gpu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// FS is the part of the filesystem Sysfs uses. Tests substitute a fake that
// behaves like the kernel when control files are written.
type FS interface {
	ReadFile(name string) ([]byte, error)
	WriteFile(name string, data []byte) error
	Readlink(name string) (string, error)
	ReadDir(name string) ([]fs.DirEntry, error)
}

// OSFS is the real filesystem.
type OSFS struct{}

func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// WriteFile writes without truncating or creating: sysfs attributes exist
// already and take one write each.
func (OSFS) WriteFile(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}
func (OSFS) Readlink(name string) (string, error)       { return os.Readlink(name) }
func (OSFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// Sysfs is the PCI part of sysfs under Root ("/" in production).
type Sysfs struct {
	Root string
	FS   FS // nil means OSFS
}

// Device is one PCI function as sysfs describes it.
type Device struct {
	Address    string // 0000:1b:00.0
	Vendor     string // 0x10de
	Device     string // 0x2330
	Class      string // 0x030200
	Driver     string // bound driver name, "" when none
	IOMMUGroup string // group number, "" when the IOMMU is off
}

const (
	// VendorNVIDIA is NVIDIA's PCI vendor ID.
	VendorNVIDIA = "0x10de"
	// DriverVFIO is the driver a passed-through GPU must be bound to.
	DriverVFIO = "vfio-pci"
)

// Sentinel errors.
var (
	ErrNoDevice      = errors.New("gpu: no such PCI device")
	ErrVFIONotLoaded = errors.New("gpu: vfio-pci driver not loaded (run: modprobe vfio-pci)")
	ErrBindFailed    = errors.New("gpu: binding to vfio-pci did not take")
	ErrBadAddress    = errors.New("gpu: bad PCI address")
)

var pciAddr = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

func (s Sysfs) fs() FS {
	if s.FS == nil {
		return OSFS{}
	}
	return s.FS
}

func (s Sysfs) path(elem ...string) string {
	root := s.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(append([]string{root, "sys/bus/pci"}, elem...)...)
}

func (s Sysfs) attr(addr, name string) (string, error) {
	b, err := s.fs().ReadFile(s.path("devices", addr, name))
	return strings.TrimSpace(string(b)), err
}

// linkBase is the last element of a symlink target, "" when there is no link.
func (s Sysfs) linkBase(addr, name string) (string, error) {
	t, err := s.fs().Readlink(s.path("devices", addr, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return filepath.Base(t), nil
}

// Lookup reads one device.
func (s Sysfs) Lookup(addr string) (Device, error) {
	if !pciAddr.MatchString(addr) {
		return Device{}, fmt.Errorf("%w: %q, want domain:bus:dev.fn like 0000:1b:00.0", ErrBadAddress, addr)
	}
	d := Device{Address: addr}
	var err error
	if d.Vendor, err = s.attr(addr, "vendor"); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Device{}, fmt.Errorf("%w: %s (not in %s)", ErrNoDevice, addr, s.path("devices"))
		}
		return Device{}, fmt.Errorf("gpu: %s: %w", addr, err)
	}
	if d.Device, err = s.attr(addr, "device"); err != nil {
		return Device{}, fmt.Errorf("gpu: %s: %w", addr, err)
	}
	if d.Class, err = s.attr(addr, "class"); err != nil {
		return Device{}, fmt.Errorf("gpu: %s: %w", addr, err)
	}
	if d.Driver, err = s.linkBase(addr, "driver"); err != nil {
		return Device{}, fmt.Errorf("gpu: %s driver: %w", addr, err)
	}
	if d.IOMMUGroup, err = s.linkBase(addr, "iommu_group"); err != nil {
		return Device{}, fmt.Errorf("gpu: %s iommu_group: %w", addr, err)
	}
	return d, nil
}

// NVIDIAGPUs lists NVIDIA display (0x0300xx) and 3D (0x0302xx) controllers,
// sorted by address. Audio functions and NVSwitches are left out.
func (s Sysfs) NVIDIAGPUs() ([]Device, error) {
	entries, err := s.fs().ReadDir(s.path("devices"))
	if err != nil {
		return nil, fmt.Errorf("gpu: listing PCI devices: %w", err)
	}
	var out []Device
	for _, e := range entries {
		if !pciAddr.MatchString(e.Name()) {
			continue
		}
		d, err := s.Lookup(e.Name())
		if err != nil {
			return nil, err
		}
		if d.Vendor == VendorNVIDIA && (strings.HasPrefix(d.Class, "0x0302") || strings.HasPrefix(d.Class, "0x0300")) {
			out = append(out, d)
		}
	}
	return out, nil
}

// BindVFIO binds addr to vfio-pci: set driver_override, unbind from the
// current driver, ask the kernel to reprobe, then check the driver link.
// Already bound to vfio-pci is a no-op.
func (s Sysfs) BindVFIO(addr string) error {
	d, err := s.Lookup(addr)
	if err != nil {
		return err
	}
	if d.Driver == DriverVFIO {
		return nil
	}
	if _, err := s.fs().ReadDir(s.path("drivers", DriverVFIO)); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrVFIONotLoaded, s.path("drivers", DriverVFIO), err)
	}
	w := s.fs().WriteFile
	if err := w(s.path("devices", addr, "driver_override"), []byte(DriverVFIO)); err != nil {
		return fmt.Errorf("gpu: %s: setting driver_override: %w", addr, err)
	}
	if d.Driver != "" {
		if err := w(s.path("drivers", d.Driver, "unbind"), []byte(addr)); err != nil {
			return fmt.Errorf("gpu: %s: unbinding from %s (is a process still using the GPU?): %w", addr, d.Driver, err)
		}
	}
	if err := w(s.path("drivers_probe"), []byte(addr)); err != nil {
		return fmt.Errorf("gpu: %s: drivers_probe: %w", addr, err)
	}
	got, err := s.linkBase(addr, "driver")
	if err != nil {
		return fmt.Errorf("gpu: %s: %w", addr, err)
	}
	if got != DriverVFIO {
		return fmt.Errorf("%w: %s driver = %q after drivers_probe, want %q (check dmesg; the IOMMU group may hold other devices)", ErrBindFailed, addr, got, DriverVFIO)
	}
	return nil
}

// Unbind detaches addr from its driver and clears driver_override, leaving
// the device driverless; the host driver can then be bound with
// drivers_probe. Already unbound is a no-op for the unbind step.
func (s Sysfs) Unbind(addr string) error {
	d, err := s.Lookup(addr)
	if err != nil {
		return err
	}
	w := s.fs().WriteFile
	if d.Driver != "" {
		if err := w(s.path("drivers", d.Driver, "unbind"), []byte(addr)); err != nil {
			return fmt.Errorf("gpu: %s: unbinding from %s: %w", addr, d.Driver, err)
		}
	}
	// A lone newline clears driver_override (sysfs-bus-pci ABI).
	if err := w(s.path("devices", addr, "driver_override"), []byte("\n")); err != nil {
		return fmt.Errorf("gpu: %s: clearing driver_override: %w", addr, err)
	}
	return nil
}
