// Command init is the appliance's PID 1, built static (CGO_ENABLED=0) and
// placed at /init in the initrd by `cocoon image build`.
//
// The boot sequence is a list of steps (init/boot): kernel filesystems,
// modules, the verity root named by the measured command line, the runtime
// config disk, switch root, then the supervised worker. Any failed step
// powers the machine off: a guest that cannot prove its state never serves.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/containerd/go-dmverity/pkg/dm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cocoon-appliance/cocoon/guest/hostlink"
	"github.com/cocoon-appliance/cocoon/init/boot"
	"github.com/cocoon-appliance/cocoon/init/kmod"
	"github.com/cocoon-appliance/cocoon/init/measured"
	"github.com/cocoon-appliance/cocoon/init/mount"
	"github.com/cocoon-appliance/cocoon/init/netup"
	"github.com/cocoon-appliance/cocoon/init/reap"
	"github.com/cocoon-appliance/cocoon/init/verity"
)

const (
	newRoot    = "/sysroot"
	workerPath = "/usr/bin/cocoon-worker"
	// gpuCheckPath is the GPU gate program (cgo, NVML); images without it
	// have no GPU check, and a config requiring a GPU then stops the boot.
	gpuCheckPath = "/usr/bin/cocoon-gpucheck"
)

var workerEnv = []string{"PATH=/usr/bin:/bin", "HOME=/"}

func main() {
	// The console is the serial port, and the host channel once open.
	console := &boot.Tee{W: os.Stdout}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "cocoon-init: not PID 1; this program is the appliance's init and only runs inside the guest")
		os.Exit(2)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		halt(console, fmt.Errorf("uname: %w", err))
	}
	// PID 1 inherits every orphan in the guest; reap them all from the start.
	reaper := reap.New(func(pid int, ws syscall.WaitStatus) {
		fmt.Fprintf(console, "cocoon-init: reaped orphan %d (wait status %#x)\n", pid, uint32(ws))
	})
	s := &boot.State{Release: unix.ByteSliceToString(uts.Release[:])}
	if err := boot.Run(context.Background(), steps(s.Release, console, reaper), s, console); err != nil {
		if s.Host != nil {
			// Tell the launcher why, and give the line a moment to leave.
			s.Host.Health(hostlink.Failed, err.Error())
			s.Host.Close()
		}
		halt(console, nil) // boot.Run printed the FATAL line
	}
	select {} // the worker's supervisor runs on; PID 1 never exits
}

// steps is the boot sequence.
func steps(release string, console *boot.Tee, reaper *reap.Reaper) []boot.Step {
	sys := mount.Linux{}
	sysBlock := os.DirFS("/sys/class/block")
	var st []boot.Step
	for _, m := range mount.Early {
		st = append(st, boot.Mount{M: m, Sys: sys})
	}
	st = append(st,
		boot.Cmdline{ReadFile: os.ReadFile},
		boot.Modules{Dir: kmod.Dir(release), ReadFile: os.ReadFile, Loader: kmod.Finit{}},
		boot.HostLink{Open: boot.OpenHostLink, Tee: console},
		boot.Mount{M: mount.Configfs, Sys: sys},
		boot.RootDisk{SysBlock: sysBlock, Table: boot.ReadGPT, Timeout: 15 * time.Second},
		boot.Verity{Open: func() (verity.Mapper, error) { return dm.Open() }, Nodes: verity.DevNodes{}},
		boot.MountRoot{Sys: sys, NewRoot: newRoot},
		boot.Config{SysBlock: sysBlock, Open: boot.OpenFile, Timeout: 5 * time.Second, StaticPath: "/run/cocoon/static.json"},
		boot.CheckMeasured{Open: boot.OpenMeasured},
		boot.SwitchRoot{Sys: sys, NewRoot: newRoot},
		boot.Network{Link: func() (netup.Link, error) { return netlink.NewHandle(unix.NETLINK_ROUTE) }, ResolvConf: "/run/resolv.conf"},
		boot.GPUGate{PCI: os.DirFS("/sys/bus/pci/devices"), CC: boot.ExecGPUCheck(gpuCheckPath,
			func(_ context.Context, p string) ([]byte, []byte, error) { return reaper.Output(p, nil, workerEnv) })},
		boot.MeasureConfig{LogPath: measured.RuntimeLogPath},
		boot.Worker{Sup: &boot.Supervisor{
			Path: workerPath, Runner: boot.ReapRunner{Reaper: reaper, Env: workerEnv},
			Clock: boot.RealClock{}, Console: console,
		}},
	)
	return st
}

// halt fails closed: say why on the console, then power off.
func halt(console io.Writer, err error) {
	if err != nil {
		fmt.Fprintf(console, "cocoon-init: FATAL: %v\n", err)
	}
	fmt.Fprintln(console, "cocoon-init: powering off")
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(console, "cocoon-init: power off: %v\n", err)
	}
	select {} // PID 1 must not exit: the kernel would panic
}
