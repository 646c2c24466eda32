package qemu

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInstalledQEMUKnowsDevices checks every -device driver we emit against
// the installed QEMU's -device help. Drivers this QEMU lacks are skipped with
// a note (the TDX host runs a newer QEMU than the development machines).
func TestInstalledQEMUKnowsDevices(t *testing.T) {
	bin, err := exec.LookPath(DefaultQEMU)
	if err != nil {
		t.Skipf("%s not installed", DefaultQEMU)
	}
	out, err := exec.Command(bin, "-device", "help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -device help: %v\n%s", bin, err, out)
	}
	help := string(out)
	drivers := map[string]bool{}
	for _, c := range []Config{tdxConfig(), devConfig(), devDirectConfig()} {
		a, err := c.Args()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(a); i++ {
			if a[i] == "-device" {
				drivers[strings.SplitN(a[i+1], ",", 2)[0]] = true
			}
		}
	}
	for d := range drivers {
		if !strings.Contains(help, `name "`+d+`"`) {
			t.Logf("note: installed QEMU has no -device %s; not checked here", d)
			continue
		}
	}
	for _, must := range []string{"virtio-blk-pci", "virtio-net-pci", "virtio-serial-pci", "virtserialport"} {
		if !strings.Contains(help, `name "`+must+`"`) {
			t.Errorf("installed QEMU lacks %s, which every profile needs", must)
		}
	}
}

// TestDevDirectStartsUnderQEMU runs the dev-direct argv for real with the
// built image (out/image), CPUs halted (-S): QEMU parses every option, opens
// the disks, loads kernel and initrd, then sits still. Still alive after two
// seconds means the argv is accepted.
func TestDevDirectStartsUnderQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	bin, err := exec.LookPath(DefaultQEMU)
	if err != nil {
		t.Skipf("%s not installed", DefaultQEMU)
	}
	img, _ := filepath.Abs("../../out/image")
	for _, f := range []string{"vmlinuz", "initrd", "disk.img"} {
		if _, err := os.Stat(filepath.Join(img, f)); err != nil {
			t.Skipf("no built image in %s: %v", img, err)
		}
	}
	dir := t.TempDir()
	cfgDisk := filepath.Join(dir, "config.img")
	if err := os.WriteFile(cfgDisk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	hostSock := filepath.Join(dir, "hostlink.sock")
	ln, err := net.Listen("unix", hostSock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := Config{
		Profile: ProfileDev, DirectBoot: true, CPUs: 1, MemoryMiB: 512,
		Kernel: filepath.Join(img, "vmlinuz"), Initrd: filepath.Join(img, "initrd"),
		Cmdline: "console=ttyS0", Disk: filepath.Join(img, "disk.img"), ConfigDisk: cfgDisk,
		Forwards:          []Forward{{HostPort: freePort(t), GuestPort: 443}},
		PIDFile:           filepath.Join(dir, "qemu.pid"),
		Serial:            "file:" + filepath.Join(dir, "console.log"),
		HostChannelSocket: hostSock,
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := c.Args()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append(a, "-S", "-display", "none")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("QEMU exited early (%v):\n%s\nargv: %q", err, stderr.String(), a)
	case <-time.After(2 * time.Second):
	}
	if _, err := os.Stat(c.PIDFile); err != nil {
		t.Errorf("pidfile not written: %v", err)
	}
	_ = cmd.Process.Kill()
	<-done
}

func freePort(t *testing.T) uint16 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// TestHostChannelUnderQEMU runs the host channel's arguments under the
// installed QEMU with nothing else (no disks, no kernel, CPUs halted):
// QEMU must accept the devices and connect, as a client, to the socket the
// launcher listens on. The guest's end is hostlink's.
func TestHostChannelUnderQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	bin, err := exec.LookPath(DefaultQEMU)
	if err != nil {
		t.Skipf("%s not installed", DefaultQEMU)
	}
	sock := filepath.Join(t.TempDir(), "hostlink.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A guard against a hang, not a timing assertion.
	ln.SetDeadline(time.Now().Add(time.Minute))
	c := Config{HostChannelSocket: sock}
	if err := checkSocketPath(c.HostChannelSocket); err != nil {
		t.Fatal(err)
	}
	var a args
	c.hostChannel(&a)
	argv := append([]string{"-machine", "q35", "-accel", "tcg", "-nodefaults", "-display", "none", "-S"}, a...)
	cmd := exec.Command(bin, argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	conn, err := ln.Accept()
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("QEMU did not connect: %v\n%s\nargv: %q", err, stderr.String(), argv)
	}
	defer conn.Close()
	// The connection is QEMU's: it ends when QEMU does.
	cmd.Process.Kill()
	<-exited
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read after QEMU exited: %d, %v; want EOF", n, err)
	}
}
