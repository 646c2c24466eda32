// Package gputest holds test stand-ins for the GPU gate: a fake NVML and
// SYNTHETIC attestation evidence. The evidence is correctly structured
// (SPDM 1.1 GET_MEASUREMENTS + MEASUREMENTS, NVIDIA opaque fields, a P-384
// certificate chain with the FWID extension) but signed by a test CA
// generated at run time, never by NVIDIA: it verifies only against
// SyntheticGPU.Roots, never against the pinned NVIDIA root. Real recorded
// evidence lives in guest/gpu/testdata/nvtrust.
package gputest

import (
	"fmt"
	"sync"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
)

// Fake implements gpu.NVML in memory.
type Fake struct {
	mu      sync.Mutex
	State   gpu.CCState
	Driver  string
	Devices []*Device
	Ready   bool
	// ReadyStuck makes SetReadyState succeed without changing the state.
	ReadyStuck bool
	// Err fails the named method: "CCState", "DriverVersion",
	// "DeviceCount", "Device", "ReadyState", "SetReadyState".
	Err map[string]error
	// SetReadyCalls records every SetReadyState argument.
	SetReadyCalls []bool
}

var _ gpu.NVML = (*Fake)(nil)

// CCOn is the state the gate accepts.
var CCOn = gpu.CCState{Feature: true, Environment: gpu.EnvProd}

func (f *Fake) err(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Err[name]
}

// CCState implements gpu.NVML.
func (f *Fake) CCState() (gpu.CCState, error) {
	if err := f.err("CCState"); err != nil {
		return gpu.CCState{}, err
	}
	return f.State, nil
}

// DriverVersion implements gpu.NVML.
func (f *Fake) DriverVersion() (string, error) {
	if err := f.err("DriverVersion"); err != nil {
		return "", err
	}
	return f.Driver, nil
}

// DeviceCount implements gpu.NVML.
func (f *Fake) DeviceCount() (int, error) {
	if err := f.err("DeviceCount"); err != nil {
		return 0, err
	}
	return len(f.Devices), nil
}

// Device implements gpu.NVML.
func (f *Fake) Device(i int) (gpu.Device, error) {
	if err := f.err("Device"); err != nil {
		return nil, err
	}
	if i < 0 || i >= len(f.Devices) {
		return nil, fmt.Errorf("gputest: no device %d", i)
	}
	return f.Devices[i], nil
}

// ReadyState implements gpu.NVML.
func (f *Fake) ReadyState() (bool, error) {
	if err := f.err("ReadyState"); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Ready, nil
}

// SetReadyState implements gpu.NVML.
func (f *Fake) SetReadyState(ready bool) error {
	f.mu.Lock()
	f.SetReadyCalls = append(f.SetReadyCalls, ready)
	f.mu.Unlock()
	if err := f.err("SetReadyState"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ReadyStuck {
		f.Ready = ready
	}
	return nil
}

// Device implements gpu.Device in memory.
type Device struct {
	Info  gpu.DeviceInfo
	VBIOS string
	// Attest answers AttestationReport.
	Attest func(nonce [gpu.NonceSize]byte) (gpu.AttestationReport, error)
	Certs  gpu.Certificates
	// Err fails the named method: "UUID", "Name", "PCIBusID",
	// "VBIOSVersion", "Certificates".
	Err map[string]error
	// Nonces records the nonces AttestationReport was asked for.
	Nonces [][gpu.NonceSize]byte
}

var _ gpu.Device = (*Device)(nil)

// UUID implements gpu.Device.
func (d *Device) UUID() (string, error) { return d.Info.UUID, d.Err["UUID"] }

// Name implements gpu.Device.
func (d *Device) Name() (string, error) { return d.Info.Name, d.Err["Name"] }

// PCIBusID implements gpu.Device.
func (d *Device) PCIBusID() (string, error) { return d.Info.PCIBusID, d.Err["PCIBusID"] }

// VBIOSVersion implements gpu.Device.
func (d *Device) VBIOSVersion() (string, error) { return d.VBIOS, d.Err["VBIOSVersion"] }

// AttestationReport implements gpu.Device.
func (d *Device) AttestationReport(nonce [gpu.NonceSize]byte) (gpu.AttestationReport, error) {
	d.Nonces = append(d.Nonces, nonce)
	if d.Attest == nil {
		return gpu.AttestationReport{}, fmt.Errorf("gputest: device %s has no evidence", d.Info.UUID)
	}
	return d.Attest(nonce)
}

// Certificates implements gpu.Device.
func (d *Device) Certificates() (gpu.Certificates, error) {
	return d.Certs, d.Err["Certificates"]
}

// Recorded is a device that answers every nonce with the same recorded
// report, as a replaying attacker would; only the nonce it was made for
// passes the gate.
func Recorded(info gpu.DeviceInfo, vbios string, report, chainPEM []byte) *Device {
	return &Device{
		Info:  info,
		VBIOS: vbios,
		Attest: func([gpu.NonceSize]byte) (gpu.AttestationReport, error) {
			return gpu.AttestationReport{Report: report}, nil
		},
		Certs: gpu.Certificates{AttestationCertChain: chainPEM},
	}
}
