//go:build cgo && linux

package nvml

import (
	"bytes"
	"fmt"
	"sync"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
)

// Library is an initialised NVML. Close it when done.
type Library struct {
	lib    gonvml.Interface
	mu     sync.Mutex
	closed bool
}

var _ gpu.NVML = (*Library)(nil)

// Open loads libnvidia-ml.so.1 and calls nvmlInit. Without the library, or
// with the kernel driver not loaded, the error wraps gpu.ErrNoDriver.
func Open() (*Library, error) { return open(gonvml.New()) }

func open(lib gonvml.Interface) (*Library, error) {
	switch ret := lib.Init(); ret {
	case gonvml.SUCCESS:
		return &Library{lib: lib}, nil
	case gonvml.ERROR_LIBRARY_NOT_FOUND:
		return nil, fmt.Errorf("%w: libnvidia-ml.so.1 not found: nvmlInit: %w", gpu.ErrNoDriver, ret)
	case gonvml.ERROR_DRIVER_NOT_LOADED:
		return nil, fmt.Errorf("%w: the nvidia kernel module is not loaded: nvmlInit: %w", gpu.ErrNoDriver, ret)
	default:
		return nil, fmt.Errorf("nvml: nvmlInit: %w", ret)
	}
}

// Close calls nvmlShutdown once.
func (l *Library) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if ret := l.lib.Shutdown(); ret != gonvml.SUCCESS {
		return fmt.Errorf("nvml: nvmlShutdown: %w", ret)
	}
	return nil
}

// check turns an NVML return code into an error that wraps it, so that
// callers can test errors.Is(err, gonvml.ERROR_NOT_SUPPORTED).
func check(op string, ret gonvml.Return) error {
	if ret == gonvml.SUCCESS {
		return nil
	}
	return fmt.Errorf("nvml: %s: %w", op, ret)
}

// CCState implements gpu.NVML with nvmlSystemGetConfComputeState. Values
// other than the documented ones count against the gate: feature on only
// for NVML_CC_SYSTEM_FEATURE_ENABLED, devtools off only for
// NVML_CC_SYSTEM_DEVTOOLS_MODE_OFF.
func (l *Library) CCState() (gpu.CCState, error) {
	s, ret := l.lib.SystemGetConfComputeState()
	if err := check("nvmlSystemGetConfComputeState", ret); err != nil {
		return gpu.CCState{}, err
	}
	return gpu.CCState{
		Environment:  gpu.Environment(s.Environment),
		Feature:      s.CcFeature == gonvml.CC_SYSTEM_FEATURE_ENABLED,
		DevToolsMode: s.DevToolsMode != gonvml.CC_SYSTEM_DEVTOOLS_MODE_OFF,
	}, nil
}

// DriverVersion implements gpu.NVML.
func (l *Library) DriverVersion() (string, error) {
	v, ret := l.lib.SystemGetDriverVersion()
	return v, check("nvmlSystemGetDriverVersion", ret)
}

// DeviceCount implements gpu.NVML.
func (l *Library) DeviceCount() (int, error) {
	n, ret := l.lib.DeviceGetCount()
	return n, check("nvmlDeviceGetCount", ret)
}

// Device implements gpu.NVML.
func (l *Library) Device(i int) (gpu.Device, error) {
	d, ret := l.lib.DeviceGetHandleByIndex(i)
	if err := check(fmt.Sprintf("nvmlDeviceGetHandleByIndex(%d)", i), ret); err != nil {
		return nil, err
	}
	return device{d}, nil
}

// ReadyState implements gpu.NVML.
func (l *Library) ReadyState() (bool, error) {
	v, ret := l.lib.SystemGetConfComputeGpusReadyState()
	if err := check("nvmlSystemGetConfComputeGpusReadyState", ret); err != nil {
		return false, err
	}
	return v == gonvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE, nil
}

// SetReadyState implements gpu.NVML.
func (l *Library) SetReadyState(ready bool) error {
	v := uint32(gonvml.CC_ACCEPTING_CLIENT_REQUESTS_FALSE)
	if ready {
		v = gonvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE
	}
	return check("nvmlSystemSetConfComputeGpusReadyState", l.lib.SystemSetConfComputeGpusReadyState(v))
}

type device struct{ d gonvml.Device }

func (d device) UUID() (string, error) {
	v, ret := d.d.GetUUID()
	return v, check("nvmlDeviceGetUUID", ret)
}

func (d device) Name() (string, error) {
	v, ret := d.d.GetName()
	return v, check("nvmlDeviceGetName", ret)
}

// PCIBusID is nvmlPciInfo_t.busId, a NUL-terminated string in a 32-byte
// array.
func (d device) PCIBusID() (string, error) {
	p, ret := d.d.GetPciInfo()
	if err := check("nvmlDeviceGetPciInfo", ret); err != nil {
		return "", err
	}
	id := p.BusId[:]
	if i := bytes.IndexByte(id, 0); i >= 0 {
		id = id[:i]
	}
	return string(id), nil
}

func (d device) VBIOSVersion() (string, error) {
	v, ret := d.d.GetVbiosVersion()
	return v, check("nvmlDeviceGetVbiosVersion", ret)
}

// AttestationReport fills nvmlConfComputeGpuAttestationReport_t.nonce and
// copies out the sizes the driver returned, refusing sizes beyond the
// buffers.
func (d device) AttestationReport(nonce [gpu.NonceSize]byte) (gpu.AttestationReport, error) {
	r := new(gonvml.ConfComputeGpuAttestationReport)
	r.Nonce = nonce
	const op = "nvmlDeviceGetConfComputeGpuAttestationReport"
	if err := check(op, d.d.GetConfComputeGpuAttestationReport(r)); err != nil {
		return gpu.AttestationReport{}, err
	}
	rep, err := trimmed(op+" attestationReport", r.AttestationReport[:], r.AttestationReportSize)
	if err != nil {
		return gpu.AttestationReport{}, err
	}
	out := gpu.AttestationReport{Report: rep}
	if r.IsCecAttestationReportPresent == gonvml.CC_CEC_ATTESTATION_REPORT_PRESENT {
		if out.CEC, err = trimmed(op+" cecAttestationReport", r.CecAttestationReport[:], r.CecAttestationReportSize); err != nil {
			return gpu.AttestationReport{}, err
		}
	}
	return out, nil
}

func (d device) Certificates() (gpu.Certificates, error) {
	const op = "nvmlDeviceGetConfComputeGpuCertificate"
	c, ret := d.d.GetConfComputeGpuCertificate()
	if err := check(op, ret); err != nil {
		return gpu.Certificates{}, err
	}
	chain, err := trimmed(op+" certChain", c.CertChain[:], c.CertChainSize)
	if err != nil {
		return gpu.Certificates{}, err
	}
	att, err := trimmed(op+" attestationCertChain", c.AttestationCertChain[:], c.AttestationCertChainSize)
	if err != nil {
		return gpu.Certificates{}, err
	}
	return gpu.Certificates{CertChain: chain, AttestationCertChain: att}, nil
}

// trimmed copies the first size bytes of an NVML output buffer. An empty
// output is left for the verifier to refuse.
func trimmed(what string, buf []byte, size uint32) ([]byte, error) {
	if uint64(size) > uint64(len(buf)) {
		return nil, fmt.Errorf("nvml: %s: size %d, buffer holds %d", what, size, len(buf))
	}
	return bytes.Clone(buf[:size]), nil
}
