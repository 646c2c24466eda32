// Package gputest provides fakes for package gpu: a sysfs tree in a
// directory that reacts to control-file writes the way the kernel does, and
// an in-memory Admin.
package gputest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cocoon-appliance/cocoon/host/gpu"
)

// Tree is a fake /sys/bus/pci under Root/sys/bus/pci. Use it as gpu.FS with
// gpu.Sysfs{Root: t.Root, FS: t}.
type Tree struct {
	gpu.OSFS
	Root string
	// RefuseBind makes drivers_probe leave devices unbound, like a kernel
	// whose vfio-pci rejects the device.
	RefuseBind bool
	// Writes records every control-file write as "relative/path=data".
	Writes []string
}

// NewTree makes an empty tree (no devices, no drivers) under root.
func NewTree(root string) (*Tree, error) {
	t := &Tree{Root: root}
	for _, d := range []string{"devices", "drivers"} {
		if err := os.MkdirAll(t.pci(d), 0o755); err != nil {
			return nil, err
		}
	}
	return t, os.WriteFile(t.pci("drivers_probe"), nil, 0o644)
}

func (t *Tree) pci(elem ...string) string {
	return filepath.Join(append([]string{t.Root, "sys/bus/pci"}, elem...)...)
}

// LoadDriver adds drivers/name with bind and unbind files.
func (t *Tree) LoadDriver(name string) error {
	if err := os.MkdirAll(t.pci("drivers", name), 0o755); err != nil {
		return err
	}
	for _, f := range []string{"bind", "unbind"} {
		if err := os.WriteFile(t.pci("drivers", name, f), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// AddDevice adds a PCI function; driver and group may be empty.
func (t *Tree) AddDevice(addr, vendor, device, class, driver, group string) error {
	dir := t.pci("devices", addr)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, v := range map[string]string{"vendor": vendor, "device": device, "class": class, "driver_override": "(null)"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			return err
		}
	}
	if group != "" {
		g := filepath.Join(t.Root, "sys/kernel/iommu_groups", group)
		if err := os.MkdirAll(g, 0o755); err != nil {
			return err
		}
		if err := os.Symlink(g, filepath.Join(dir, "iommu_group")); err != nil {
			return err
		}
	}
	if driver != "" {
		if err := t.LoadDriver(driver); err != nil {
			return err
		}
		return t.link(addr, driver)
	}
	return nil
}

func (t *Tree) link(addr, driver string) error {
	return os.Symlink(filepath.Join("../../../bus/pci/drivers", driver), t.pci("devices", addr, "driver"))
}

// WriteFile stores the data and then does what the kernel would.
func (t *Tree) WriteFile(name string, data []byte) error {
	rel, err := filepath.Rel(t.pci(), name)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("gputest: write outside sysfs: %s", name)
	}
	if err := t.OSFS.WriteFile(name, data); err != nil {
		return err
	}
	t.Writes = append(t.Writes, rel+"="+strings.TrimSpace(string(data)))
	val := strings.TrimSpace(string(data))
	parts := strings.Split(rel, string(filepath.Separator))
	switch {
	case rel == "drivers_probe":
		return t.probe(val)
	case len(parts) == 3 && parts[0] == "drivers" && parts[2] == "unbind":
		cur, _ := os.Readlink(t.pci("devices", val, "driver"))
		if filepath.Base(cur) != parts[1] {
			return fmt.Errorf("gputest: %s not bound to %s: %w", val, parts[1], os.ErrInvalid)
		}
		return os.Remove(t.pci("devices", val, "driver"))
	case len(parts) == 3 && parts[0] == "devices" && parts[2] == "driver_override":
		if val == "" {
			return os.WriteFile(name, []byte("(null)\n"), 0o644)
		}
	}
	return nil
}

// probe binds a driverless device to its driver_override, if that driver is
// loaded. (Without an override a real kernel would pick by ID table; the
// fake picks nothing.)
func (t *Tree) probe(addr string) error {
	if _, err := os.Lstat(t.pci("devices", addr, "driver")); err == nil {
		return nil
	}
	b, err := os.ReadFile(t.pci("devices", addr, "driver_override"))
	if err != nil {
		return err
	}
	drv := strings.TrimSpace(string(b))
	if drv == "(null)" || t.RefuseBind {
		return nil
	}
	if _, err := os.Stat(t.pci("drivers", drv)); err != nil {
		return nil
	}
	return t.link(addr, drv)
}

// Admin is an in-memory gpu.Admin.
type Admin struct {
	mu    sync.Mutex
	Modes map[string]string // addr -> on|off|devtools
	Err   error             // returned by every call when set
}

// QueryCC implements gpu.Admin.
func (a *Admin) QueryCC(addr string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return "", a.Err
	}
	m, ok := a.Modes[addr]
	if !ok {
		return "", fmt.Errorf("gputest: %s: %w", addr, gpu.ErrNoDevice)
	}
	return m, nil
}

// SetCC implements gpu.Admin.
func (a *Admin) SetCC(addr, mode string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Err != nil {
		return a.Err
	}
	if a.Modes == nil {
		a.Modes = map[string]string{}
	}
	a.Modes[addr] = mode
	return nil
}
