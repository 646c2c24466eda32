// Package tpm predicts the vTPM PCRs of the development boot path (QEMU TCG,
// OVMF, swtpm, direct kernel boot) that depend on the image: PCR 4 (the
// kernel as loaded) and PCR 9 (what the kernel's EFI stub measures: command
// line and initrd), in the SHA-256 bank. The firmware's own PCRs (0-3, 5-7)
// depend on OVMF's configuration, not on our image, and are not predicted.
//
// The events are those of TDX RTMR1/RTMR2 (measure/tdx) in the TPM's bank:
// OVMF's TryRunningQemuKernel loads the kernel (measured by
// DxeTpm2MeasureBootLib: EV_EFI_BOOT_SERVICES_APPLICATION, Authenticode
// SHA-256), then signals ReadyToBoot, where Tcg2Dxe logs "Calling EFI
// Application from Boot Option" and the separators of PCRs 0-7; the EFI stub
// then measures the load options and the initrd into PCR 9
// (EV_EVENT_TAG).
package tpm

import (
	"crypto"
	"fmt"

	"github.com/cocoon-appliance/cocoon/measure/register"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/measure/tdx"
)

// PCRs the prediction covers.
const (
	PCRKernel = 4
	PCRLinux  = 9
)

// Inputs of a dev-path prediction.
type Inputs struct {
	// KernelAuthenticode is the SHA-256 Authenticode digest of the kernel
	// image as QEMU patched it (measure/qemukernel + measure/authenticode).
	KernelAuthenticode []byte
	// Cmdline is the command line as the kernel receives it
	// (qemukernel.LoadOptions for an OVMF direct boot).
	Cmdline string
	Initrd  []byte
	// Runtime are the events the init extends into PCR 15.
	Runtime runtime.Log
}

// Prediction is the predicted PCRs and the events behind them.
type Prediction struct {
	PCR    map[int][]byte
	Events []register.Event
}

// Predict computes PCR 4, 9 and (when runtime events are given) 15.
func Predict(in Inputs) (*Prediction, error) {
	h := crypto.SHA256
	if len(in.KernelAuthenticode) != h.Size() {
		return nil, fmt.Errorf("tpm: kernel Authenticode digest of %d bytes, want SHA-256", len(in.KernelAuthenticode))
	}
	es := tdx.KernelLoadEvents(h, PCRKernel, in.KernelAuthenticode, "SHA-256 as QEMU patched it")
	es = append(es, tdx.RTMR2Events(h, PCRLinux, in.Cmdline, in.Initrd)...)
	es = append(es, in.Runtime.Events(h)...)
	b, err := register.Replay(h, 24, es)
	if err != nil {
		return nil, err
	}
	p := &Prediction{PCR: map[int][]byte{PCRKernel: b.Regs[PCRKernel], PCRLinux: b.Regs[PCRLinux]}, Events: es}
	if len(in.Runtime) > 0 {
		p.PCR[runtime.PCR] = b.Regs[runtime.PCR]
	}
	return p, nil
}
