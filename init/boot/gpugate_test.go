package boot

import (
	"bytes"
	"context"
	"errors"
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
	ccOK := func(context.Context, []string) error { return nil }
	ccOff := func(context.Context, []string) error { return errors.New("CC mode off") }
	for _, tc := range []struct {
		name     string
		gpu      bool
		required bool
		cc       func(context.Context, []string) error
		want     error  // nil: the boot goes on
		console  string // substring of the console line
	}{
		{"no gpu, none required", false, false, nil, nil, "no NVIDIA GPU, none required"},
		{"no gpu, required", false, true, ccOK, ErrNoGPU, ""},
		{"gpu, no check, required", true, true, nil, ErrNoGPUCheck, ""},
		{"gpu, no check, not required", true, false, nil, nil, "0000:01:00.0 not checked"},
		{"gpu in cc mode", true, true, ccOK, nil, "0000:01:00.0 in confidential-computing mode"},
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
