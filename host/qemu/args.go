package qemu

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/cocoon-appliance/cocoon/guest/hostlink"
)

// Args returns the QEMU argv without argv[0] (see Binary). It validates the
// configuration but does not look at the filesystem (Validate does).
func (c Config) Args() ([]string, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	var a args
	switch c.Profile {
	case ProfileTDX:
		if err := c.tdxHead(&a); err != nil {
			return nil, err
		}
	case ProfileDev:
		c.devHead(&a)
	}
	c.boot(&a)
	a.add("-nodefaults", "-nographic")
	serial := c.Serial
	if serial == "" {
		serial = "stdio"
	}
	a.add("-serial", serial)
	if c.Profile == ProfileDev {
		// A guest that reboots in a test loop would hide the failure.
		a.add("-no-reboot")
	}
	if c.TPMSocket != "" {
		// swtpm wiring as in NOTES.md (QEMU/swtpm).
		a.add("-chardev", "socket,id=chrtpm,path="+optEscape(c.TPMSocket),
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
			"-device", "tpm-tis,tpmdev=tpm0")
	}
	c.disks(&a)
	c.network(&a)
	if c.VsockCID > 0 {
		a.add("-device", "vhost-vsock-pci,guest-cid="+strconv.FormatUint(uint64(c.VsockCID), 10))
	}
	c.hostChannel(&a)
	c.gpus(&a)
	if c.PIDFile != "" {
		a.add("-pidfile", c.PIDFile)
	}
	return a, nil
}

// Binary is the QEMU executable to run.
func (c Config) Binary() string {
	if c.QEMU == "" {
		return DefaultQEMU
	}
	return c.QEMU
}

type args []string

func (a *args) add(s ...string) { *a = append(*a, s...) }

func (c Config) mem() string { return strconv.FormatUint(c.MemoryMiB, 10) + "M" }

// tdxHead follows QEMU's docs/system/i386/tdx.rst: a tdx-guest object named
// by confidential-guest-support, split irqchip, -cpu host, TDVF via -bios.
// Guest RAM comes from an explicit memory backend; QEMU adds the guest_memfd
// for private memory itself when the machine is confidential.
func (c Config) tdxHead(a *args) error {
	obj, err := c.tdxObject()
	if err != nil {
		return err
	}
	a.add("-accel", "kvm",
		"-machine", "q35,kernel-irqchip=split,confidential-guest-support=tdx,hpet=off,memory-backend=mem0",
		"-object", obj,
		"-object", "memory-backend-ram,id=mem0,size="+c.mem(),
		"-cpu", "host",
		"-smp", strconv.Itoa(c.CPUs),
		"-m", c.mem())
	return nil
}

// tdxObject renders the tdx-guest object as JSON: quote-generation-socket is
// a QAPI SocketAddress (a nested struct), which the flat key=value syntax of
// -object cannot express.
func (c Config) tdxObject() (string, error) {
	type tdxGuest struct {
		QOMType string         `json:"qom-type"`
		ID      string         `json:"id"`
		QGS     *socketAddress `json:"quote-generation-socket,omitempty"`
	}
	qgs, err := qgsAddress(c.qgs())
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(tdxGuest{QOMType: "tdx-guest", ID: "tdx", QGS: qgs})
	return string(b), err
}

// socketAddress is QAPI's SocketAddress for the two kinds QGS listens on.
// QAPI declares the vsock cid and port as strings.
type socketAddress struct {
	Type string `json:"type"`
	CID  string `json:"cid,omitempty"`
	Port string `json:"port,omitempty"`
	Path string `json:"path,omitempty"`
}

func qgsAddress(s string) (*socketAddress, error) {
	switch {
	case s == "none":
		return nil, nil
	case strings.HasPrefix(s, "vsock:"):
		parts := strings.Split(strings.TrimPrefix(s, "vsock:"), ":")
		if len(parts) == 2 {
			_, e1 := strconv.ParseUint(parts[0], 10, 32)
			_, e2 := strconv.ParseUint(parts[1], 10, 32)
			if e1 == nil && e2 == nil {
				return &socketAddress{Type: "vsock", CID: parts[0], Port: parts[1]}, nil
			}
		}
	case strings.HasPrefix(s, "unix:") && len(s) > len("unix:"):
		return &socketAddress{Type: "unix", Path: strings.TrimPrefix(s, "unix:")}, nil
	case strings.HasPrefix(s, "/"):
		return &socketAddress{Type: "unix", Path: s}, nil
	}
	return nil, fmt.Errorf("%w: QuoteGenerationSocket = %q, want vsock:CID:PORT, unix:PATH, an absolute path or none", ErrBadValue, s)
}

func (c Config) devHead(a *args) {
	a.add("-accel", "tcg",
		"-machine", "q35",
		"-cpu", "max",
		"-smp", strconv.Itoa(c.CPUs),
		"-m", c.mem())
}

func (c Config) boot(a *args) {
	if c.usesFirmware() {
		a.add("-bios", c.Firmware)
	}
	a.add("-kernel", c.Kernel, "-initrd", c.Initrd, "-append", c.Cmdline)
}

func (c Config) disks(a *args) {
	disk := func(id, file, serial string) {
		a.add("-drive", "file="+optEscape(file)+",if=none,id="+id+",format=raw,readonly=on",
			"-device", "virtio-blk-pci,drive="+id+",serial="+serial)
	}
	disk("root", c.Disk, "cocoon-root")
	if c.ConfigDisk != "" {
		disk("config", c.ConfigDisk, "cocoon-config")
	}
}

func (c Config) network(a *args) {
	if c.TAP != "" {
		a.add("-netdev", "tap,id=net0,ifname="+c.TAP+",script=no,downscript=no")
	} else {
		nd := "user,id=net0"
		for _, f := range c.Forwards {
			host := f.HostAddr
			if host == "" {
				host = "127.0.0.1" // never expose a dev guest beyond loopback by accident
			}
			nd += fmt.Sprintf(",hostfwd=tcp:%s:%d-:%d", host, f.HostPort, f.GuestPort)
		}
		a.add("-netdev", nd)
	}
	a.add("-device", "virtio-net-pci,netdev=net0")
}

// hostChannel adds the virtio-serial port the guest finds by its name
// (hostlink.PortName). The chardev is a client (no server=on): the
// launcher listens before QEMU starts, so QEMU refuses to start rather
// than boot a guest nobody hears.
func (c Config) hostChannel(a *args) {
	if c.HostChannelSocket == "" {
		return
	}
	a.add("-device", "virtio-serial-pci,id=vser0",
		"-chardev", "socket,id=cocoonhost,path="+c.HostChannelSocket,
		"-device", "virtserialport,bus=vser0.0,chardev=cocoonhost,name="+hostlink.PortName)
}

// gpus gives each GPU its own PCIe root port (a GPU behind a conventional PCI
// bridge gets no PCIe capabilities, which the NVIDIA driver needs) and uses
// the iommufd VFIO backend, which QEMU's TDX shared-device assignment expects.
func (c Config) gpus(a *args) {
	if len(c.GPUs) == 0 {
		return
	}
	a.add("-object", "iommufd,id=iommufd0")
	for i, g := range c.GPUs {
		n := strconv.Itoa(i + 1)
		a.add("-device", "pcie-root-port,id=rp"+n+",bus=pcie.0,chassis="+n,
			"-device", "vfio-pci,host="+g+",bus=rp"+n+",iommufd=iommufd0")
	}
}

// optEscape doubles commas, QEMU's escape inside key=value option strings.
func optEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
