package boot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
)

// Errors of the GPU gate.
var (
	// ErrNoGPU: the config requires a GPU and the guest has none.
	ErrNoGPU = errors.New("gpu_required, but no NVIDIA GPU is attached")
	// ErrNoGPUCheck: a GPU is attached and required, but this image has no
	// way to check its confidential-computing mode.
	ErrNoGPUCheck = errors.New("gpu_required, but this image has no GPU confidential-computing check")
	// ErrGPUNotCC: the check ran and the GPU is not in CC mode (or its
	// attestation failed).
	ErrGPUNotCC = errors.New("GPU is not in confidential-computing mode")
)

// nvidiaVendor is NVIDIA's PCI vendor ID.
const nvidiaVendor = "0x10de"

// GPUGate keeps the worker from starting on a GPU that is not in
// confidential-computing mode when the static (measured) config requires
// one: with CC mode off, the GPU's memory and the PCIe traffic to it are
// readable by the host, so prompts would leave the trust boundary.
//
// The check itself (NVML: CC mode on, GPU attestation report verified)
// needs cgo and NVIDIA's driver, so it is a separate program
// (cmd/cocoon-gpucheck, guest/gpu); CC is the hook that runs it (ExecGPUCheck).
// A nil CC means this image carries no check: a required GPU then stops
// the boot rather than run unchecked. The check's result is kept in
// State.GPUAttestation and measured (gpu-attestation runtime event) by
// MeasureConfig, so a remote verifier sees which GPUs were attested.
type GPUGate struct {
	PCI fs.FS // /sys/bus/pci/devices
	// CC checks every attached GPU and returns its canonical result; nil
	// error means all are in CC mode with a verified attestation.
	CC func(ctx context.Context, addrs []string) ([]byte, error)
}

func (GPUGate) String() string {
	return "lspci -d 10de: && nvidia-smi conf-compute -grs (when gpu_required)"
}

// Run implements Step.
func (g GPUGate) Run(ctx context.Context, s *State) error {
	required := s.Config != nil && s.Config.Static.GPURequired
	gpus, err := NVIDIAGPUs(g.PCI)
	if err != nil {
		if required {
			return err
		}
		fmt.Fprintf(s.Log, "cocoon-init: GPU gate: %v (no GPU required)\n", err)
		return nil
	}
	switch {
	case len(gpus) == 0 && required:
		return ErrNoGPU
	case len(gpus) == 0:
		fmt.Fprintln(s.Log, "cocoon-init: GPU gate: no NVIDIA GPU, none required")
		return nil
	case g.CC == nil && required:
		return fmt.Errorf("%w (GPUs %s)", ErrNoGPUCheck, strings.Join(gpus, " "))
	case g.CC == nil:
		fmt.Fprintf(s.Log, "cocoon-init: GPU gate: WARNING: GPUs %s not checked for CC mode (not required by the config)\n", strings.Join(gpus, " "))
		return nil
	}
	result, err := g.CC(ctx, gpus)
	if err != nil {
		if required {
			return fmt.Errorf("%w: %v", ErrGPUNotCC, err)
		}
		fmt.Fprintf(s.Log, "cocoon-init: GPU gate: WARNING: %v: %v (not required by the config)\n", ErrGPUNotCC, err)
		return nil
	}
	s.GPUAttestation = result
	fmt.Fprintf(s.Log, "cocoon-init: GPU gate: %s in confidential-computing mode, attestation verified (%d bytes of result)\n", strings.Join(gpus, " "), len(result))
	return nil
}

// ExecGPUCheck returns a GPUGate.CC that runs the cocoon-gpucheck program
// at path (exit 0: ready, its stdout the canonical result; anything else:
// refused, its stderr says why), or nil when path does not exist.
func ExecGPUCheck(path string, run func(ctx context.Context, path string) (stdout, stderr []byte, err error)) func(context.Context, []string) ([]byte, error) {
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	return func(ctx context.Context, _ []string) ([]byte, error) {
		out, errOut, err := run(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %s", path, err, strings.TrimSpace(string(errOut)))
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: exit 0 with no result", path)
		}
		return out, nil
	}
}

// NVIDIAGPUs lists the PCI addresses of NVIDIA display controllers (PCI
// class 03: VGA 0300 or 3D 0302, which is how H100/H200 enumerate) in
// sysfs's /sys/bus/pci/devices, sorted.
func NVIDIAGPUs(pci fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(pci, ".")
	if err != nil {
		return nil, fmt.Errorf("list PCI devices: %w", err)
	}
	var out []string
	for _, e := range entries {
		vendor, err := fs.ReadFile(pci, e.Name()+"/vendor")
		if err != nil || strings.TrimSpace(string(vendor)) != nvidiaVendor {
			continue
		}
		class, err := fs.ReadFile(pci, e.Name()+"/class")
		if err != nil {
			return nil, fmt.Errorf("PCI device %s: %w", e.Name(), err)
		}
		if strings.HasPrefix(strings.TrimSpace(string(class)), "0x03") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}
