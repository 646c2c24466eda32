//go:build cgo && linux

package nvml

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
)

// The recorded H100 evidence of guest/gpu/testdata/nvtrust (see its README).
const (
	recordedNonce  = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
	recordedDriver = "550.90.07"
	recordedVBIOS  = "96.00.9F.00.01"
)

var recordedNow = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mockH100 is go-nvml's mock NVML answering, through the real C struct
// layouts, with the recorded H100 evidence: a driver in CC production mode
// with one GPU.
type mockH100 struct {
	lib    *mock.Interface
	dev    *mock.Device
	ready  uint32
	nonces [][gpu.NonceSize]byte
}

func newMockH100(t *testing.T) *mockH100 {
	report, err := hex.DecodeString(strings.TrimSpace(string(readTestdata(t, "nvtrust/hopperAttestationReport.txt"))))
	if err != nil {
		t.Fatal(err)
	}
	chain := readTestdata(t, "nvtrust/hopperCertChain.txt")
	m := &mockH100{}
	m.dev = &mock.Device{
		GetUUIDFunc: func() (string, gonvml.Return) { return "GPU-00000000-0000-0000-0000-000000000001", gonvml.SUCCESS },
		GetNameFunc: func() (string, gonvml.Return) { return "NVIDIA H100 80GB HBM3", gonvml.SUCCESS },
		GetPciInfoFunc: func() (gonvml.PciInfo, gonvml.Return) {
			var p gonvml.PciInfo
			copy(p.BusId[:], "00000000:3B:00.0")
			copy(p.BusIdLegacy[:], "0000:3B:00.0")
			return p, gonvml.SUCCESS
		},
		GetVbiosVersionFunc: func() (string, gonvml.Return) { return recordedVBIOS, gonvml.SUCCESS },
		GetConfComputeGpuAttestationReportFunc: func(r *gonvml.ConfComputeGpuAttestationReport) gonvml.Return {
			m.nonces = append(m.nonces, r.Nonce)
			r.AttestationReportSize = uint32(copy(r.AttestationReport[:], report))
			return gonvml.SUCCESS
		},
		GetConfComputeGpuCertificateFunc: func() (gonvml.ConfComputeGpuCertificate, gonvml.Return) {
			var c gonvml.ConfComputeGpuCertificate
			c.AttestationCertChainSize = uint32(copy(c.AttestationCertChain[:], chain))
			return c, gonvml.SUCCESS
		},
	}
	m.lib = &mock.Interface{
		InitFunc:     func() gonvml.Return { return gonvml.SUCCESS },
		ShutdownFunc: func() gonvml.Return { return gonvml.SUCCESS },
		SystemGetConfComputeStateFunc: func() (gonvml.ConfComputeSystemState, gonvml.Return) {
			return gonvml.ConfComputeSystemState{
				Environment: gonvml.CC_SYSTEM_ENVIRONMENT_PROD, CcFeature: gonvml.CC_SYSTEM_FEATURE_ENABLED, DevToolsMode: gonvml.CC_SYSTEM_DEVTOOLS_MODE_OFF,
			}, gonvml.SUCCESS
		},
		SystemGetDriverVersionFunc: func() (string, gonvml.Return) { return recordedDriver, gonvml.SUCCESS },
		DeviceGetCountFunc:         func() (int, gonvml.Return) { return 1, gonvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (gonvml.Device, gonvml.Return) {
			if i != 0 {
				return nil, gonvml.ERROR_INVALID_ARGUMENT
			}
			return m.dev, gonvml.SUCCESS
		},
		SystemGetConfComputeGpusReadyStateFunc: func() (uint32, gonvml.Return) { return m.ready, gonvml.SUCCESS },
		SystemSetConfComputeGpusReadyStateFunc: func(v uint32) gonvml.Return { m.ready = v; return gonvml.SUCCESS },
	}
	return m
}

// TestGateThroughAdapter runs the gate over the adapter and go-nvml's mock:
// the canonical result must be byte for byte the one the pure-Go gate
// produced from the same evidence (guest/gpu/testdata).
func TestGateThroughAdapter(t *testing.T) {
	m := newMockH100(t)
	lib, err := open(m.lib)
	if err != nil {
		t.Fatal(err)
	}
	nonce, _ := hex.DecodeString(recordedNonce)
	res, err := gpu.Gate(context.Background(), lib, bytes.NewReader(nonce), nil, recordedNow)
	if err != nil {
		t.Fatal(err)
	}
	got, err := res.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if want := readTestdata(t, "result-hopper-550.json"); !bytes.Equal(got, want) {
		t.Errorf("result through the adapter differs from the golden result:\n%s", got)
	}
	if len(m.nonces) != 1 || hex.EncodeToString(m.nonces[0][:]) != recordedNonce {
		t.Errorf("NVML was asked for nonces %x", m.nonces)
	}
	if m.ready != gonvml.CC_ACCEPTING_CLIENT_REQUESTS_TRUE {
		t.Errorf("ready state %d, want accepting", m.ready)
	}
	if err := lib.Close(); err != nil || len(m.lib.ShutdownCalls()) != 1 {
		t.Errorf("Close: %v, %d nvmlShutdown calls", err, len(m.lib.ShutdownCalls()))
	}
	if err := lib.Close(); err != nil || len(m.lib.ShutdownCalls()) != 1 {
		t.Error("second Close called nvmlShutdown again")
	}
}

func TestOpen(t *testing.T) {
	cases := []struct {
		ret    gonvml.Return
		noDrv  bool
		wantOK bool
	}{
		{gonvml.SUCCESS, false, true},
		{gonvml.ERROR_LIBRARY_NOT_FOUND, true, false},
		{gonvml.ERROR_DRIVER_NOT_LOADED, true, false},
		{gonvml.ERROR_NO_PERMISSION, false, false},
	}
	for _, c := range cases {
		t.Run(c.ret.Error(), func(t *testing.T) {
			_, err := open(&mock.Interface{InitFunc: func() gonvml.Return { return c.ret }})
			if (err == nil) != c.wantOK || errors.Is(err, gpu.ErrNoDriver) != c.noDrv {
				t.Fatalf("err = %v", err)
			}
			if err != nil && !errors.Is(err, c.ret) {
				t.Errorf("%v does not wrap %v", err, c.ret)
			}
		})
	}
}

// TestOpenWithoutDriver loads the real library: on a machine without the
// NVIDIA driver the error must say so.
func TestOpenWithoutDriver(t *testing.T) {
	lib, err := Open()
	if err == nil {
		lib.Close()
		t.Skip("libnvidia-ml.so.1 is installed here")
	}
	if !errors.Is(err, gpu.ErrNoDriver) {
		t.Fatalf("err = %v, want ErrNoDriver", err)
	}
}

func TestCCStateMapping(t *testing.T) {
	cases := []struct {
		in   gonvml.ConfComputeSystemState
		want gpu.CCState
	}{
		{gonvml.ConfComputeSystemState{Environment: 2, CcFeature: 1, DevToolsMode: 0}, gpu.CCState{Environment: gpu.EnvProd, Feature: true}},
		{gonvml.ConfComputeSystemState{Environment: 1, CcFeature: 1, DevToolsMode: 1}, gpu.CCState{Environment: gpu.EnvSim, Feature: true, DevToolsMode: true}},
		{gonvml.ConfComputeSystemState{Environment: 0, CcFeature: 0, DevToolsMode: 0}, gpu.CCState{}},
		// Undocumented values count against the gate.
		{gonvml.ConfComputeSystemState{Environment: 2, CcFeature: 2, DevToolsMode: 7}, gpu.CCState{Environment: gpu.EnvProd, DevToolsMode: true}},
	}
	for _, c := range cases {
		lib, err := open(&mock.Interface{
			InitFunc: func() gonvml.Return { return gonvml.SUCCESS },
			SystemGetConfComputeStateFunc: func() (gonvml.ConfComputeSystemState, gonvml.Return) {
				return c.in, gonvml.SUCCESS
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := lib.CCState(); err != nil || got != c.want {
			t.Errorf("%+v -> %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestAdapterErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(*mockH100)
		call func(*Library) error
		want error
	}{
		{"CC state not supported", func(m *mockH100) {
			m.lib.SystemGetConfComputeStateFunc = func() (gonvml.ConfComputeSystemState, gonvml.Return) {
				return gonvml.ConfComputeSystemState{}, gonvml.ERROR_NOT_SUPPORTED
			}
		}, func(l *Library) error { _, err := l.CCState(); return err }, gonvml.ERROR_NOT_SUPPORTED},
		{"report size beyond the buffer", func(m *mockH100) {
			m.dev.GetConfComputeGpuAttestationReportFunc = func(r *gonvml.ConfComputeGpuAttestationReport) gonvml.Return {
				r.AttestationReportSize = gonvml.CC_GPU_ATTESTATION_REPORT_SIZE + 1
				return gonvml.SUCCESS
			}
		}, attest, nil},
		{"CEC size beyond the buffer", func(m *mockH100) {
			m.dev.GetConfComputeGpuAttestationReportFunc = func(r *gonvml.ConfComputeGpuAttestationReport) gonvml.Return {
				r.AttestationReportSize = 10
				r.IsCecAttestationReportPresent = gonvml.CC_CEC_ATTESTATION_REPORT_PRESENT
				r.CecAttestationReportSize = gonvml.CC_GPU_CEC_ATTESTATION_REPORT_SIZE + 1
				return gonvml.SUCCESS
			}
		}, attest, nil},
		{"report function missing in an old driver", func(m *mockH100) {
			m.dev.GetConfComputeGpuAttestationReportFunc = func(*gonvml.ConfComputeGpuAttestationReport) gonvml.Return {
				return gonvml.ERROR_FUNCTION_NOT_FOUND
			}
		}, attest, gonvml.ERROR_FUNCTION_NOT_FOUND},
		{"chain size beyond the buffer", func(m *mockH100) {
			m.dev.GetConfComputeGpuCertificateFunc = func() (gonvml.ConfComputeGpuCertificate, gonvml.Return) {
				return gonvml.ConfComputeGpuCertificate{AttestationCertChainSize: gonvml.GPU_ATTESTATION_CERT_CHAIN_SIZE + 1}, gonvml.SUCCESS
			}
		}, func(l *Library) error { d, _ := l.Device(0); _, err := d.Certificates(); return err }, nil},
		{"no such device", nil, func(l *Library) error { _, err := l.Device(3); return err }, gonvml.ERROR_INVALID_ARGUMENT},
		{"ready state not permitted", func(m *mockH100) {
			m.lib.SystemSetConfComputeGpusReadyStateFunc = func(uint32) gonvml.Return { return gonvml.ERROR_NO_PERMISSION }
		}, func(l *Library) error { return l.SetReadyState(true) }, gonvml.ERROR_NO_PERMISSION},
		{"shutdown fails", func(m *mockH100) {
			m.lib.ShutdownFunc = func() gonvml.Return { return gonvml.ERROR_UNINITIALIZED }
		}, func(l *Library) error { return l.Close() }, gonvml.ERROR_UNINITIALIZED},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMockH100(t)
			if c.edit != nil {
				c.edit(m)
			}
			lib, err := open(m.lib)
			if err != nil {
				t.Fatal(err)
			}
			err = c.call(lib)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func attest(l *Library) error {
	d, err := l.Device(0)
	if err != nil {
		return err
	}
	_, err = d.AttestationReport([gpu.NonceSize]byte{})
	return err
}

// TestCECReport: a CEC report NVML marks present is passed on.
func TestCECReport(t *testing.T) {
	m := newMockH100(t)
	inner := m.dev.GetConfComputeGpuAttestationReportFunc
	m.dev.GetConfComputeGpuAttestationReportFunc = func(r *gonvml.ConfComputeGpuAttestationReport) gonvml.Return {
		ret := inner(r)
		r.IsCecAttestationReportPresent = gonvml.CC_CEC_ATTESTATION_REPORT_PRESENT
		r.CecAttestationReportSize = uint32(copy(r.CecAttestationReport[:], "CEC"))
		return ret
	}
	lib, err := open(m.lib)
	if err != nil {
		t.Fatal(err)
	}
	d, err := lib.Device(0)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := d.AttestationReport([gpu.NonceSize]byte{})
	if err != nil || string(rep.CEC) != "CEC" || len(rep.Report) != 4117 {
		t.Fatalf("CEC %q, report of %d bytes, %v", rep.CEC, len(rep.Report), err)
	}
}
