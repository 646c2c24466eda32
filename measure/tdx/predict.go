package tdx

import (
	"crypto"
	"errors"
	"fmt"
	"sort"

	"github.com/cocoon-appliance/cocoon/measure/authenticode"
	"github.com/cocoon-appliance/cocoon/measure/platform"
	"github.com/cocoon-appliance/cocoon/measure/qemukernel"
	"github.com/cocoon-appliance/cocoon/measure/register"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/measure/tdvf"
)

// Errors.
var (
	ErrProfile  = errors.New("tdx: unknown VM profile")
	ErrPlatform = errors.New("tdx: platform capture does not match the VM")
)

// Profile names a host stack: the QEMU version and the KVM interface decide
// how the TD is built (MRTD ordering) and how the kernel reaches OVMF
// (RTMR1).
type Profile struct {
	Name        string
	QEMU        string // version passed to measure/qemukernel
	Ordering    tdvf.Ordering
	Description string
}

// Profiles are the host stacks we predict for.
var Profiles = []Profile{
	{Name: "qemu-10.1-tdx", QEMU: "10.1", Ordering: tdvf.Interleaved,
		Description: "upstream QEMU 10.1 with upstream KVM TDX (Linux >= 6.16): pages added and extended one by one"},
	{Name: "qemu-9.2-tdx", QEMU: "9.2", Ordering: tdvf.Interleaved,
		Description: "QEMU 9.x TDX trees on KVM's gmem populate path"},
	{Name: "qemu-8.2-tdx", QEMU: "8.2", Ordering: tdvf.TwoPass,
		Description: "Canonical's QEMU 8.2 (tdx-qemu-upstream-v5): each section added, then extended"},
}

// DefaultProfile is the one `cocoon host` launches.
const DefaultProfile = "qemu-10.1-tdx"

// LookupProfile finds a profile by name.
func LookupProfile(name string) (Profile, error) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, nil
		}
	}
	var names []string
	for _, p := range Profiles {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return Profile{}, fmt.Errorf("%w %q (known: %v)", ErrProfile, name, names)
}

// Inputs of a TDX prediction.
type Inputs struct {
	Firmware, Kernel, Initrd []byte
	Cmdline                  string // the -append string
	CPUs                     int
	MemoryMiB                uint64
	Profile                  Profile
	// Platform holds QEMU's ACPI blobs and the boot variables; without it
	// RTMR0 cannot be predicted (Known[0] is false).
	Platform *platform.Capture
	// Runtime are the events the init extends into RTMR3; empty leaves
	// RTMR3 at zero, as before the init runs.
	Runtime runtime.Log
}

// Prediction is the predicted registers and every event behind them.
type Prediction struct {
	MRTD  []byte
	RTMR  [4][]byte
	Known [4]bool // RTMR0 is unknown without a platform capture
	// Events lists RTMR0-3 extends in order; MRTD is summarized by one
	// pseudo-event per TDVF section in MRTDEvents.
	Events     []register.Event
	MRTDEvents []string
	// KernelFields are the setup-header fields QEMU patched.
	KernelFields []qemukernel.Field
	KernelSource qemukernel.Source
	// LoadOptions is the command line the kernel sees and measures.
	LoadOptions string
}

// Predict computes MRTD and RTMR0-3 for a QEMU direct boot of the inputs.
func Predict(in Inputs) (*Prediction, error) {
	md, err := tdvf.Parse(in.Firmware)
	if err != nil {
		return nil, err
	}
	p := &Prediction{}
	m, err := tdvf.MRTD(in.Firmware, md, in.Profile.Ordering)
	if err != nil {
		return nil, err
	}
	p.MRTD = m[:]
	for _, s := range md.Sections {
		p.MRTDEvents = append(p.MRTDEvents, fmt.Sprintf("%s (%s ordering)", s, in.Profile.Ordering))
	}

	// RTMR0: firmware configuration.
	if in.Platform != nil {
		if in.Platform.CPUs != in.CPUs || in.Platform.MemoryMiB != in.MemoryMiB {
			return nil, fmt.Errorf("%w: capture taken with %d vCPUs and %d MiB, predicting %d vCPUs and %d MiB",
				ErrPlatform, in.Platform.CPUs, in.Platform.MemoryMiB, in.CPUs, in.MemoryMiB)
		}
		hobSec, err := md.TDHOB()
		if err != nil {
			return nil, err
		}
		var accepted []Range
		for _, s := range md.AcceptedRanges() {
			accepted = append(accepted, Range{s.MemoryAddress, s.End()})
		}
		hob, err := TDHOB(hobSec.MemoryAddress, in.MemoryMiB<<20, accepted)
		if err != nil {
			return nil, err
		}
		cfv, err := md.CFV(in.Firmware)
		if err != nil {
			return nil, err
		}
		p.Events = append(p.Events, RTMR0Events(hob, cfv, in.Platform)...)
		p.Known[0] = true
	}

	// RTMR1: the kernel as OVMF loads it.
	qp := qemukernel.Params{QEMUVersion: in.Profile.QEMU, Machine: qemukernel.MachineQ35, MemoryMiB: in.MemoryMiB,
		InitrdSize: uint64(len(in.Initrd)), Cmdline: in.Cmdline, TDX: true}
	patched, err := qemukernel.Patch(in.Kernel, qp)
	if err != nil {
		return nil, err
	}
	if p.KernelFields, err = qemukernel.Fields(in.Kernel, qp); err != nil {
		return nil, err
	}
	if p.KernelSource, err = qemukernel.KernelSource(in.Kernel, qp); err != nil {
		return nil, err
	}
	kd, err := authenticode.Digest(patched, crypto.SHA384)
	if err != nil {
		return nil, err
	}
	p.Events = append(p.Events, RTMR1Events(kd, "("+p.KernelSource.String()+")")...)
	p.Known[1] = true

	// RTMR2: what the EFI stub measures.
	p.LoadOptions = qemukernel.LoadOptions(qp)
	p.Events = append(p.Events, RTMR2Events(crypto.SHA384, 2, p.LoadOptions, in.Initrd)...)
	p.Known[2] = true

	// RTMR3: the init's runtime events.
	if err := in.Runtime.Validate(); err != nil {
		return nil, err
	}
	p.Events = append(p.Events, in.Runtime.Events(crypto.SHA384)...)
	p.Known[3] = true

	b, err := register.Replay(crypto.SHA384, 4, p.Events)
	if err != nil {
		return nil, err
	}
	for i := range p.RTMR {
		if p.Known[i] {
			p.RTMR[i] = b.Regs[i]
		}
	}
	return p, nil
}
