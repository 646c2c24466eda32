// Command init is the appliance's PID 1, built static (CGO_ENABLED=0) and
// placed at /init in the initrd by `cocoon image build`.
//
// This is the first cut: it mounts the kernel filesystems, reports what it
// was booted with and then stops the machine, because the boot sequence that
// opens the verity root, checks measurements and starts the worker is not
// written yet. Stopping is the fail-closed behaviour the finished init keeps
// for every failed check: a guest that cannot prove its state never serves.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/cocoon-appliance/cocoon/image/bootparams"
)

func main() {
	console := os.Stdout
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "cocoon-init: not PID 1; this program is the appliance's init and only runs inside the guest")
		os.Exit(2)
	}
	for _, m := range []struct{ src, target, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := syscall.Mount(m.src, m.target, m.fstype, syscall.MS_NOSUID|syscall.MS_NOEXEC, ""); err != nil {
			fmt.Fprintf(console, "cocoon-init: mount %s on %s: %v\n", m.fstype, m.target, err)
		}
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		halt(console, fmt.Sprintf("read /proc/cmdline: %v", err))
	}
	p, err := bootparams.Parse(strings.TrimSpace(string(cmdline)))
	if err != nil {
		halt(console, err.Error())
	}
	fmt.Fprintf(console, "cocoon-init: verity root hash %x, data %s, hash %s\n", p.Verity.RootHash, p.Verity.DataDevice, p.Verity.HashDevice)
	halt(console, "boot sequence not implemented in this build; refusing to continue")
}

// halt fails closed: say why on the console, then power off.
func halt(console *os.File, why string) {
	fmt.Fprintf(console, "cocoon-init: FATAL: %s\n", why)
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(console, "cocoon-init: power off: %v\n", err)
	}
	select {} // PID 1 must not exit: the kernel would panic
}
