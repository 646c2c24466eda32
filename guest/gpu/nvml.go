package gpu

import "fmt"

// NVML is what the gate needs from the NVIDIA Management Library, system
// wide. guest/gpu/nvml implements it with go-nvml; guest/gpu/gputest fakes
// it.
type NVML interface {
	// CCState is nvmlSystemGetConfComputeState.
	CCState() (CCState, error)
	// DriverVersion is nvmlSystemGetDriverVersion ("550.90.07").
	DriverVersion() (string, error)
	// DeviceCount is nvmlDeviceGetCount.
	DeviceCount() (int, error)
	// Device is nvmlDeviceGetHandleByIndex, 0 <= i < DeviceCount().
	Device(i int) (Device, error)
	// ReadyState is nvmlSystemGetConfComputeGpusReadyState: whether the GPUs
	// accept work (NVML_CC_ACCEPTING_CLIENT_REQUESTS_TRUE).
	ReadyState() (bool, error)
	// SetReadyState is nvmlSystemSetConfComputeGpusReadyState. In CC mode the
	// driver refuses work until it is set: it is the gate's output.
	SetReadyState(ready bool) error
}

// Device is one GPU as NVML sees it.
type Device interface {
	// UUID is nvmlDeviceGetUUID ("GPU-xxxxxxxx-...").
	UUID() (string, error)
	// Name is nvmlDeviceGetName ("NVIDIA H100 80GB HBM3").
	Name() (string, error)
	// PCIBusID is nvmlPciInfo_t.busId from nvmlDeviceGetPciInfo
	// ("00000000:3B:00.0").
	PCIBusID() (string, error)
	// VBIOSVersion is nvmlDeviceGetVbiosVersion ("96.00.9F.00.01").
	VBIOSVersion() (string, error)
	// AttestationReport is nvmlDeviceGetConfComputeGpuAttestationReport with
	// nonce as input.
	AttestationReport(nonce [NonceSize]byte) (AttestationReport, error)
	// Certificates is nvmlDeviceGetConfComputeGpuCertificate.
	Certificates() (Certificates, error)
}

// AttestationReport is the output of
// nvmlDeviceGetConfComputeGpuAttestationReport, trimmed to the sizes NVML
// returned.
type AttestationReport struct {
	// Report is the SPDM GET_MEASUREMENTS request followed by the
	// MEASUREMENTS response (attestationReport[attestationReportSize]).
	Report []byte
	// CEC is the CEC attestation report when NVML marks one present
	// (isCecAttestationReportPresent); nil otherwise. Recorded by digest
	// only: its format is not published.
	CEC []byte
}

// Certificates is the output of nvmlDeviceGetConfComputeGpuCertificate.
type Certificates struct {
	// CertChain is certChain[certChainSize]: the device certificate chain
	// as the driver provisioned it. Not used by the gate.
	CertChain []byte
	// AttestationCertChain is attestationCertChain[attestationCertChainSize]:
	// PEM certificates, the attestation (leaf) certificate first and NVIDIA's
	// root last. Its leaf key signs the attestation report.
	AttestationCertChain []byte
}

// CCState is nvmlConfComputeSystemState_t. The numeric values are NVML's
// (nvml.h NVML_CC_SYSTEM_*), kept so that an unknown value is reported as
// itself.
type CCState struct {
	Environment  Environment
	Feature      bool // ccFeature == NVML_CC_SYSTEM_FEATURE_ENABLED
	DevToolsMode bool // devToolsMode == NVML_CC_SYSTEM_DEVTOOLS_MODE_ON
}

// Environment is NVML_CC_SYSTEM_ENVIRONMENT_*.
type Environment uint32

// Environments (nvml.h).
const (
	EnvUnavailable Environment = 0 // NVML_CC_SYSTEM_ENVIRONMENT_UNAVAILABLE
	EnvSim         Environment = 1 // NVML_CC_SYSTEM_ENVIRONMENT_SIM
	EnvProd        Environment = 2 // NVML_CC_SYSTEM_ENVIRONMENT_PROD
)

func (e Environment) String() string {
	switch e {
	case EnvUnavailable:
		return "unavailable"
	case EnvSim:
		return "sim"
	case EnvProd:
		return "production"
	}
	return fmt.Sprintf("environment(%d)", uint32(e))
}

// Check applies the gate's first rule to the system CC state: feature on,
// devtools off, production environment.
func (s CCState) Check() error {
	if !s.Feature {
		return fmt.Errorf("%w: ccFeature disabled, want enabled (nvidia-smi conf-compute -f on the host)", ErrCCOff)
	}
	if s.DevToolsMode {
		return fmt.Errorf("%w: devToolsMode on, want off", ErrDevTools)
	}
	if s.Environment != EnvProd {
		return fmt.Errorf("%w: environment %s, want production", ErrNotProduction, s.Environment)
	}
	return nil
}
