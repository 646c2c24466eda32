package gpu

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"
)

// Gate decides whether the worker may use the GPUs nv lists (see the
// package comment for the checks). rand supplies the nonces, roots the
// trust anchors (nil: the pinned NVIDIA root), now the certificate
// validity time. On success the GPUs' CC ready state is set and the Result
// describes what was verified; on failure it is cleared again.
func Gate(ctx context.Context, nv NVML, rand io.Reader, roots *x509.CertPool, now time.Time) (*Result, error) {
	state, err := nv.CCState()
	if err != nil {
		return nil, fmt.Errorf("gpu: reading CC state: %w", err)
	}
	if err := state.Check(); err != nil {
		return nil, err
	}
	res, err := attestAll(ctx, nv, rand, roots, now)
	if err == nil {
		err = setReady(nv)
	}
	if err != nil {
		// Fail closed: whatever set the ready state before, it is off now.
		if cerr := nv.SetReadyState(false); cerr != nil {
			err = errors.Join(err, fmt.Errorf("gpu: clearing the ready state: %w", cerr))
		}
		return nil, err
	}
	return res, nil
}

func attestAll(ctx context.Context, nv NVML, rand io.Reader, roots *x509.CertPool, now time.Time) (*Result, error) {
	driver, err := nv.DriverVersion()
	if err != nil {
		return nil, fmt.Errorf("gpu: reading driver version: %w", err)
	}
	if driver == "" {
		// Verify skips empty versions; the gate always compares.
		return nil, fmt.Errorf("%w: NVML reports an empty driver version", ErrVersionMismatch)
	}
	n, err := nv.DeviceCount()
	if err != nil {
		return nil, fmt.Errorf("gpu: counting devices: %w", err)
	}
	if n <= 0 {
		return nil, fmt.Errorf("%w: NVML lists %d devices", ErrNoGPU, n)
	}
	res := &Result{
		Version:       ResultVersion,
		CC:            CCResult{Feature: "on", Environment: EnvProd.String(), DevTools: "off"},
		DriverVersion: driver,
	}
	chains := map[string]int{}
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		g, err := attestOne(nv, i, rand, roots, now, driver)
		if err != nil {
			return nil, fmt.Errorf("gpu %d: %w", i, err)
		}
		if j, dup := chains[g.CertChainSHA256]; dup {
			return nil, fmt.Errorf("%w: GPUs %d and %d present the same certificate chain", ErrChain, j, i)
		}
		chains[g.CertChainSHA256] = i
		res.GPUs = append(res.GPUs, g)
	}
	sortGPUs(res.GPUs)
	return res, nil
}

func attestOne(nv NVML, i int, rand io.Reader, roots *x509.CertPool, now time.Time, driver string) (GPUResult, error) {
	dev, err := nv.Device(i)
	if err != nil {
		return GPUResult{}, fmt.Errorf("opening device: %w", err)
	}
	var info DeviceInfo
	if info.UUID, err = dev.UUID(); err != nil {
		return GPUResult{}, fmt.Errorf("reading UUID: %w", err)
	}
	if info.Name, err = dev.Name(); err != nil {
		return GPUResult{}, fmt.Errorf("%s: reading name: %w", info.UUID, err)
	}
	if info.PCIBusID, err = dev.PCIBusID(); err != nil {
		return GPUResult{}, fmt.Errorf("%s: reading PCI bus id: %w", info.UUID, err)
	}
	vbios, err := dev.VBIOSVersion()
	if err != nil {
		return GPUResult{}, fmt.Errorf("%s: reading VBIOS version: %w", info.UUID, err)
	}
	if vbios == "" {
		return GPUResult{}, fmt.Errorf("%w: %s: NVML reports an empty VBIOS version", ErrVersionMismatch, info.UUID)
	}
	var nonce [NonceSize]byte
	if _, err := io.ReadFull(rand, nonce[:]); err != nil {
		return GPUResult{}, fmt.Errorf("%s: drawing nonce: %w", info.UUID, err)
	}
	rep, err := dev.AttestationReport(nonce)
	if err != nil {
		return GPUResult{}, fmt.Errorf("%s: fetching attestation report: %w", info.UUID, err)
	}
	certs, err := dev.Certificates()
	if err != nil {
		return GPUResult{}, fmt.Errorf("%s: fetching certificates: %w", info.UUID, err)
	}
	ev := Evidence{Report: rep.Report, CertChain: certs.AttestationCertChain}
	v, err := Verify(ev, Expect{Nonce: nonce, Roots: roots, Now: now, DriverVersion: driver, VBIOSVersion: vbios})
	if err != nil {
		return GPUResult{}, fmt.Errorf("%s (%s): %w", info.UUID, info.PCIBusID, err)
	}
	return NewGPUResult(info, nonce, ev, rep.CEC, v), nil
}

// setReady sets the CC ready state and reads it back.
func setReady(nv NVML) error {
	if err := nv.SetReadyState(true); err != nil {
		return fmt.Errorf("%w: %w", ErrReadyState, err)
	}
	ready, err := nv.ReadyState()
	if err != nil {
		return fmt.Errorf("%w: reading it back: %w", ErrReadyState, err)
	}
	if !ready {
		return fmt.Errorf("%w: set to accepting, reads not accepting", ErrReadyState)
	}
	return nil
}
