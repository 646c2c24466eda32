// Command tpmlog is the /init of the boot test's initrd: it prints the
// kernel command line and the firmware's TPM event log (hex) on the console
// between markers, then powers the guest off. Built by boot_test.go.
package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"syscall"
)

func main() {
	for _, m := range []struct{ src, dir, fstype string }{
		{"sysfs", "/sys", "sysfs"},
		{"proc", "/proc", "proc"},
		{"securityfs", "/sys/kernel/security", "securityfs"},
	} {
		os.MkdirAll(m.dir, 0o755)
		if err := syscall.Mount(m.src, m.dir, m.fstype, 0, ""); err != nil {
			fmt.Println("TPMLOG-ERR mount", m.dir, err)
		}
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		fmt.Println("TPMLOG-ERR", err)
	}
	fmt.Printf("TPMLOG-CMDLINE %q\n", cmdline)
	log, err := os.ReadFile("/sys/kernel/security/tpm0/binary_bios_measurements")
	if err != nil {
		fmt.Println("TPMLOG-ERR", err)
	}
	h := hex.EncodeToString(log)
	for len(h) > 0 {
		n := min(len(h), 128)
		fmt.Println("TPMLOG-HEX", h[:n])
		h = h[n:]
	}
	fmt.Println("TPMLOG-END")
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
