// Package check answers "is this host ready to run Cocoon?" as a table of
// named checks, each with what was found and how to fix it
// (`cocoon host check`). Checks never change the host.
package check

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cocoon-appliance/cocoon/host/gpu"
	"github.com/cocoon-appliance/cocoon/host/qemu"
)

// Result is one row of the table.
type Result struct {
	Name   string
	OK     bool
	Detail string // what was found
	Fix    string // what to do when not OK
}

// Env is the host as the checks see it. Zero fields mean the real machine.
type Env struct {
	Root        string // filesystem root for /sys and /dev paths; "" means "/"
	Sysfs       gpu.Sysfs
	ReadFile    func(string) ([]byte, error)
	ReadDir     func(string) ([]fs.DirEntry, error)
	Stat        func(string) (fs.FileInfo, error)
	LookPath    func(string) (string, error)
	QEMUVersion func() (string, error) // output of qemu-system-x86_64 --version
	Admin       gpu.Admin              // nil: CC mode cannot be checked
}

// MinTDXQEMU is the first QEMU release with upstream TDX support.
var MinTDXQEMU = [2]int{10, 1}

func (e Env) withDefaults() Env {
	if e.Root == "" {
		e.Root = "/"
	}
	if e.Sysfs.Root == "" {
		e.Sysfs.Root = e.Root
	}
	if e.ReadFile == nil {
		e.ReadFile = os.ReadFile
	}
	if e.ReadDir == nil {
		e.ReadDir = os.ReadDir
	}
	if e.Stat == nil {
		e.Stat = os.Stat
	}
	if e.LookPath == nil {
		e.LookPath = exec.LookPath
	}
	if e.QEMUVersion == nil {
		e.QEMUVersion = func() (string, error) {
			out, err := exec.Command(qemu.DefaultQEMU, "--version").Output()
			return string(out), err
		}
	}
	return e
}

func (e Env) path(p string) string { return filepath.Join(e.Root, p) }

// Run performs every check in a fixed order.
func Run(env Env) []Result {
	e := env.withDefaults()
	rs := []Result{e.kvm(), e.tdx(), e.qemuVersion(), e.vfio(), e.iommu()}
	rs = append(rs, e.gpus()...)
	return append(rs, e.swtpm())
}

// AllOK reports whether every check passed.
func AllOK(rs []Result) bool {
	for _, r := range rs {
		if !r.OK {
			return false
		}
	}
	return true
}

func (e Env) kvm() Result {
	r := Result{Name: "kvm device"}
	if _, err := e.Stat(e.path("/dev/kvm")); err != nil {
		r.Detail = "/dev/kvm: " + errText(err)
		r.Fix = "enable VT-x in the BIOS and load kvm_intel (modprobe kvm_intel)"
		return r
	}
	r.OK, r.Detail = true, "/dev/kvm present"
	return r
}

func (e Env) tdx() Result {
	r := Result{Name: "tdx in kvm"}
	const p = "/sys/module/kvm_intel/parameters/tdx"
	b, err := e.ReadFile(e.path(p))
	if err != nil {
		r.Detail = p + ": " + errText(err)
		r.Fix = "boot a TDX host kernel (>= 6.16) with TDX enabled in the BIOS, then load kvm_intel tdx=1"
		return r
	}
	v := strings.TrimSpace(string(b))
	if v != "Y" {
		r.Detail = fmt.Sprintf("%s = %s, want Y", p, v)
		r.Fix = "set options kvm_intel tdx=1 (modprobe.d) and reload kvm_intel; dmesg | grep -i tdx tells why it is off"
		return r
	}
	r.OK, r.Detail = true, p+" = Y"
	return r
}

var qemuVer = regexp.MustCompile(`version (\d+)\.(\d+)(?:\.(\d+))?`)

// ParseQEMUVersion reads major and minor from `qemu-system-x86_64 --version`.
func ParseQEMUVersion(out string) (major, minor int, err error) {
	m := qemuVer.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("check: no \"version X.Y\" in %q", firstLine(out))
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, nil
}

func (e Env) qemuVersion() Result {
	r := Result{Name: "qemu for tdx"}
	fix := fmt.Sprintf("install QEMU >= %d.%d (first release with TDX guests)", MinTDXQEMU[0], MinTDXQEMU[1])
	out, err := e.QEMUVersion()
	if err != nil {
		r.Detail, r.Fix = qemu.DefaultQEMU+": "+errText(err), fix
		return r
	}
	maj, min, err := ParseQEMUVersion(out)
	if err != nil {
		r.Detail, r.Fix = err.Error(), fix
		return r
	}
	r.Detail = fmt.Sprintf("QEMU %d.%d", maj, min)
	if maj < MinTDXQEMU[0] || (maj == MinTDXQEMU[0] && min < MinTDXQEMU[1]) {
		r.Detail += fmt.Sprintf(", want >= %d.%d", MinTDXQEMU[0], MinTDXQEMU[1])
		r.Fix = fix
		return r
	}
	r.OK = true
	return r
}

func (e Env) vfio() Result {
	r := Result{Name: "vfio-pci loaded"}
	const p = "/sys/bus/pci/drivers/vfio-pci"
	if _, err := e.ReadDir(filepath.Join(e.Sysfs.Root, p)); err != nil {
		r.Detail, r.Fix = p+": "+errText(err), "modprobe vfio-pci (and add it to /etc/modules-load.d)"
		return r
	}
	r.OK, r.Detail = true, p+" present"
	return r
}

func (e Env) iommu() Result {
	r := Result{Name: "iommu on"}
	const p = "/sys/class/iommu"
	ents, err := e.ReadDir(e.path(p))
	if err != nil || len(ents) == 0 {
		r.Detail = p + " is empty"
		if err != nil {
			r.Detail = p + ": " + errText(err)
		}
		r.Fix = "enable VT-d in the BIOS and boot with intel_iommu=on iommu=pt"
		return r
	}
	r.OK, r.Detail = true, fmt.Sprintf("%d IOMMU unit(s)", len(ents))
	return r
}

func (e Env) gpus() []Result {
	devs, err := e.Sysfs.NVIDIAGPUs()
	if err != nil || len(devs) == 0 {
		r := Result{Name: "nvidia gpus", Detail: "none found", Fix: "a GPU worker needs an NVIDIA H100/H200 (CC-capable) GPU"}
		if err != nil {
			r.Detail = errText(err)
		}
		return []Result{r}
	}
	rs := []Result{{Name: "nvidia gpus", OK: true, Detail: fmt.Sprintf("%d found", len(devs))}}
	for _, d := range devs {
		b := Result{Name: "gpu " + d.Address + " vfio", Detail: "driver " + orNone(d.Driver)}
		if d.Driver == gpu.DriverVFIO {
			b.OK = true
		} else {
			b.Detail += ", want vfio-pci"
			b.Fix = "cocoon host prepare (or: echo vfio-pci > .../driver_override; unbind; drivers_probe)"
		}
		if d.IOMMUGroup == "" {
			b.OK = false
			b.Detail += ", no IOMMU group"
			b.Fix = "enable the IOMMU (see iommu on)"
		}
		rs = append(rs, b)
		rs = append(rs, e.cc(d.Address))
	}
	return rs
}

func (e Env) cc(addr string) Result {
	r := Result{Name: "gpu " + addr + " cc mode"}
	if e.Admin == nil {
		r.Detail, r.Fix = "not checked", gpu.ErrNoAdminTools.Error()
		return r
	}
	mode, err := e.Admin.QueryCC(addr)
	if err != nil {
		r.Detail = firstLine(err.Error())
		r.Fix = "install NVIDIA gpu-admin-tools; run as root"
		if errors.Is(err, gpu.ErrNoAdminTools) {
			r.Fix = gpu.ErrNoAdminTools.Error()
		}
		return r
	}
	r.Detail = "cc mode " + mode
	if mode != gpu.CCOn {
		r.Detail += ", want on"
		r.Fix = "nvidia_gpu_tools.py --gpu-bdf=" + addr + " --set-cc-mode=on --reset-after-cc-mode-switch"
		return r
	}
	r.OK = true
	return r
}

func (e Env) swtpm() Result {
	r := Result{Name: "swtpm (dev profile)"}
	p, err := e.LookPath("swtpm")
	if err != nil {
		r.Detail, r.Fix = "swtpm not in PATH", "apt-get install swtpm (only needed for the dev profile)"
		return r
	}
	r.OK, r.Detail = true, p
	return r
}

// Format writes the results as an aligned table.
// Write errors are ignored: the table goes to a terminal.
func Format(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL\tFIX")
	for _, r := range rs {
		status := "ok"
		if !r.OK {
			status = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, status, oneLine(r.Detail), oneLine(r.Fix))
	}
	_ = tw.Flush()
}

func errText(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "not found"
	}
	return firstLine(err.Error())
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
