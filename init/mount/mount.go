// Package mount mounts the guest's kernel filesystems and the verity root,
// and switches the root, behind a small syscall interface so the sequences
// are tested unprivileged.
package mount

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Sys is the part of the kernel this package uses.
type Sys interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	MkdirAll(path string, perm os.FileMode) error
	Chdir(dir string) error
	Chroot(dir string) error
}

// Linux is the real Sys.
type Linux struct{}

func (Linux) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}
func (Linux) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }
func (Linux) Chdir(dir string) error                       { return unix.Chdir(dir) }
func (Linux) Chroot(dir string) error                      { return unix.Chroot(dir) }

// Mount is one mount(2) call.
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
}

var flagNames = []struct {
	f    uintptr
	name string
}{
	{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"},
	{unix.MS_NOEXEC, "noexec"}, {unix.MS_MOVE, "move"},
}

// String reads like the mount(8) command it replaces.
func (m Mount) String() string {
	var opts []string
	for _, f := range flagNames {
		if m.Flags&f.f != 0 && f.f != unix.MS_MOVE {
			opts = append(opts, f.name)
		}
	}
	if m.Data != "" {
		opts = append(opts, m.Data)
	}
	if m.Flags&unix.MS_MOVE != 0 {
		return "mount --move " + m.Source + " " + m.Target
	}
	s := "mount -t " + m.FSType
	if len(opts) > 0 {
		s += " -o " + strings.Join(opts, ",")
	}
	return s + " " + m.Source + " " + m.Target
}

// Do creates the mount point and mounts.
func (m Mount) Do(sys Sys) error {
	if err := sys.MkdirAll(m.Target, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", m.Target, err)
	}
	if err := sys.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
		return fmt.Errorf("%s: %w", m, err)
	}
	return nil
}

const (
	nosuidNoexec = unix.MS_NOSUID | unix.MS_NOEXEC
	kernelFS     = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
)

// Early are the kernel filesystems mounted first, in order. configfs is a
// module in Debian's kernel, so it is mounted after the modules (Configfs).
var Early = []Mount{
	{Source: "proc", Target: "/proc", FSType: "proc", Flags: kernelFS},
	{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: kernelFS},
	{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: nosuidNoexec, Data: "mode=0755"},
	{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
	{Source: "securityfs", Target: "/sys/kernel/security", FSType: "securityfs", Flags: kernelFS},
}

// Configfs is mounted once its module is loaded (TDX quotes: configfs-tsm).
var Configfs = Mount{Source: "configfs", Target: "/sys/kernel/config", FSType: "configfs", Flags: kernelFS}

// Root mounts the verity device read-only on newRoot.
func Root(dev, newRoot string) Mount {
	return Mount{Source: dev, Target: newRoot, FSType: "squashfs", Flags: unix.MS_RDONLY | unix.MS_NODEV}
}

// Moved are the mounts carried into the new root by SwitchRoot.
var Moved = []string{"/dev", "/proc", "/sys", "/run"}

// SwitchRoot does what switch_root(8) does from an initramfs, where
// pivot_root(2) is refused: move the kernel filesystems under newRoot, move
// newRoot onto /, chroot into it and chdir to /. The initramfs contents are
// left in memory (a few MiB; deleting them is optional).
func SwitchRoot(sys Sys, newRoot string) error {
	for _, m := range Moved {
		if err := (Mount{Source: m, Target: newRoot + m, Flags: unix.MS_MOVE}).Do(sys); err != nil {
			return err
		}
	}
	if err := sys.Chdir(newRoot); err != nil {
		return fmt.Errorf("chdir %s: %w", newRoot, err)
	}
	if err := sys.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("mount --move %s /: %w", newRoot, err)
	}
	if err := sys.Chroot("."); err != nil {
		return fmt.Errorf("chroot .: %w", err)
	}
	if err := sys.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}
