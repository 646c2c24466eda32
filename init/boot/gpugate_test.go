package boot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cocoon-appliance/cocoon/init/config"
)

// pciTree is a fake /sys/bus/pci/devices: a virtio NIC, an NVIDIA function
// that is not a GPU (class 0680, "other bridge"), and with withGPU an H100
// (class 0302, 3D controller).
func pciTree(withGPU bool) fstest.MapFS {
	m := fstest.MapFS{
		"0000:00:02.0/vendor": {Data: []byte("0x1af4\n")},
		"0000:00:02.0/class":  {Data: []byte("0x020000\n")},
		"0000:00:04.0/vendor": {Data: []byte("0x10de\n")},
		"0000:00:04.0/class":  {Data: []byte("0x068000\n")},
	}
	if withGPU {
		m["0000:01:00.0/vendor"] = &fstest.MapFile{Data: []byte("0x10de\n")}
		m["0000:01:00.0/class"] = &fstest.MapFile{Data: []byte("0x030200\n")}
	}
	return m
}

func TestGPUGate(t *testing.T) {
	ccOK := func(context.Context, []string) ([]byte, error) {
		return []byte(`{"v":"cocoon-gpu-attestation/v1"}`), nil
	}
	ccOff := func(context.Context, []string) ([]byte, error) { return nil, errors.New("CC mode off") }
	for _, tc := range []struct {
		name     string
		gpu      bool
		required bool
		cc       func(context.Context, []string) ([]byte, error)
		want     error  // nil: the boot goes on
		console  string // substring of the console line
	}{
		{"no gpu, none required", false, false, nil, nil, "no NVIDIA GPU, none required"},
		{"no gpu, required", false, true, ccOK, ErrNoGPU, ""},
		{"gpu, no check, required", true, true, nil, ErrNoGPUCheck, ""},
		{"gpu, no check, not required", true, false, nil, nil, "0000:01:00.0 not checked"},
		{"gpu in cc mode", true, true, ccOK, nil, "0000:01:00.0 in confidential-computing mode, attestation verified"},
		{"gpu not in cc mode, required", true, true, ccOff, ErrGPUNotCC, ""},
		{"gpu not in cc mode, not required", true, false, ccOff, nil, "WARNING: GPU is not in confidential-computing mode: CC mode off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			s := &State{Config: &config.Config{Static: config.Static{GPURequired: tc.required}}, Log: &log}
			err := GPUGate{PCI: pciTree(tc.gpu), CC: tc.cc}.Run(context.Background(), s)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(log.String(), tc.console) {
				t.Errorf("console %q lacks %q", log.String(), tc.console)
			}
			if ok := tc.want == nil && strings.Contains(tc.console, "confidential-computing mode,"); ok != (s.GPUAttestation != nil) {
				t.Errorf("attestation result kept: %q", s.GPUAttestation)
			}
		})
	}
}

func TestNVIDIAGPUs(t *testing.T) {
	m := pciTree(true)
	m["0000:02:00.0/vendor"] = &fstest.MapFile{Data: []byte("0x10de\n")}
	m["0000:02:00.0/class"] = &fstest.MapFile{Data: []byte("0x030000\n")}
	got, err := NVIDIAGPUs(m)
	if err != nil || strings.Join(got, ",") != "0000:01:00.0,0000:02:00.0" {
		t.Fatalf("got %q, %v", got, err)
	}
	delete(m, "0000:02:00.0/class")
	if _, err := NVIDIAGPUs(m); err == nil {
		t.Error("NVIDIA device without a class accepted")
	}
}

func TestExecGPUCheck(t *testing.T) {
	if ExecGPUCheck("/nonexistent/cocoon-gpucheck", nil) != nil {
		t.Error("a missing program gave a check")
	}
	self, _ := os.Executable()
	cc := ExecGPUCheck(self, func(_ context.Context, p string) ([]byte, []byte, error) {
		return []byte("{}"), nil, nil
	})
	if out, err := cc(context.Background(), nil); err != nil || string(out) != "{}" {
		t.Errorf("ready: %q %v", out, err)
	}
	cc = ExecGPUCheck(self, func(context.Context, string) ([]byte, []byte, error) {
		return nil, []byte("cocoon-gpucheck: CC mode is off\n"), errors.New("exit status 1")
	})
	if _, err := cc(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "CC mode is off") {
		t.Errorf("refused: %v", err)
	}
	cc = ExecGPUCheck(self, func(context.Context, string) ([]byte, []byte, error) { return nil, nil, nil })
	if _, err := cc(context.Background(), nil); err == nil {
		t.Error("empty result accepted")
	}
}
