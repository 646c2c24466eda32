package boot

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/init/measured"
	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

func withPolicy(p string) *State {
	var log bytes.Buffer
	return &State{Config: &config.Config{Static: config.Static{Policy: p}}, Log: &log}
}

func none() (measured.Registers, error) { return nil, measured.ErrNotSupported }

func TestCheckMeasuredWithoutDevice(t *testing.T) {
	s := withPolicy(DevPolicy)
	if err := (CheckMeasured{Open: none}).Run(context.Background(), s); err != nil {
		t.Fatalf("dev policy: %v", err)
	}
	if !strings.Contains(s.Log.(*bytes.Buffer).String(), "UNMEASURED") {
		t.Fatalf("no warning on the console: %q", s.Log)
	}
	s = withPolicy("production")
	if err := (CheckMeasured{Open: none}).Run(context.Background(), s); !errors.Is(err, ErrUnmeasured) {
		t.Fatalf("production policy without a device: %v", err)
	}
}

// gceFake is a TDX device holding the real GCE TDX event log and the RTMRs
// that VM quoted (measure/eventlog/testdata).
func gceFake(t *testing.T) *measured.Fake {
	raw, err := os.ReadFile("../../measure/eventlog/testdata/gce-tdx-cos113.ccel")
	if err != nil {
		t.Fatal(err)
	}
	f := measured.NewFake(eventlog.CCEL)
	f.Log = raw
	for i, h := range []string{
		"3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6",
		"f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1",
		"4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1",
	} {
		f.Regs[i], _ = hex.DecodeString(h)
	}
	return f
}

func TestCheckMeasuredReplaysTheLog(t *testing.T) {
	f := gceFake(t)
	s := withPolicy("production")
	if err := (CheckMeasured{Open: func() (measured.Registers, error) { return f, nil }}).Run(context.Background(), s); err != nil {
		t.Fatalf("matching log: %v", err)
	}
	if s.Registers != f {
		t.Fatal("device not kept for the extend step")
	}
	f.Regs[1][0] ^= 1
	s = withPolicy(DevPolicy) // even the dev policy does not excuse a mismatch
	if err := (CheckMeasured{Open: func() (measured.Registers, error) { return f, nil }}).Run(context.Background(), s); err == nil || !strings.Contains(err.Error(), "RTMR1") {
		t.Fatalf("tampered RTMR1: %v", err)
	}
}

func TestCheckMeasuredExpectations(t *testing.T) {
	f := gceFake(t)
	open := func() (measured.Registers, error) { return f, nil }
	rtmrs := func(mod func(m map[string]string)) *State {
		s := withPolicy("production")
		s.Config.Static.Expect = map[string]string{}
		for i := 0; i < 3; i++ {
			s.Config.Static.Expect[fmt.Sprintf("rtmr%d", i)] = hex.EncodeToString(f.Regs[i])
		}
		if mod != nil {
			mod(s.Config.Static.Expect)
		}
		return s
	}
	s := rtmrs(nil)
	if err := (CheckMeasured{Open: open}).Run(context.Background(), s); err != nil {
		t.Fatalf("expected registers: %v", err)
	}
	if !strings.Contains(s.Log.(*bytes.Buffer).String(), "3 boot registers equal the config's expectations") {
		t.Errorf("console: %q", s.Log)
	}
	// An initrd other than the one the deployment was made for: the log
	// still replays (the firmware measured what it loaded), RTMR2 differs.
	s = rtmrs(func(m map[string]string) { m["rtmr2"] = strings.Repeat("00", 48) })
	err := (CheckMeasured{Open: open}).Run(context.Background(), s)
	if !errors.Is(err, measured.ErrUnexpected) || !strings.Contains(err.Error(), "RTMR2 = 4969684d") || !strings.Contains(err.Error(), "initrd") {
		t.Fatalf("unexpected RTMR2: %v", err)
	}
	if s.Registers != nil {
		t.Error("device kept after a failed check")
	}
	s = withPolicy("production")
	s.Config.Static.Expect = map[string]string{"pcr4": strings.Repeat("00", 32)}
	if err := (CheckMeasured{Open: open}).Run(context.Background(), s); !errors.Is(err, ErrExpectKind) {
		t.Fatalf("PCRs expected in a TD: %v", err)
	}
	// No device: expectations cannot be met, even under the dev policy.
	s = withPolicy(DevPolicy)
	s.Config.Static.Expect = map[string]string{"pcr4": strings.Repeat("00", 32)}
	if err := (CheckMeasured{Open: none}).Run(context.Background(), s); !errors.Is(err, ErrUnmeasured) {
		t.Fatalf("expectations without a device: %v", err)
	}
}

func TestMeasureConfig(t *testing.T) {
	f := measured.NewFake(eventlog.TPM)
	s := withPolicy("production")
	s.Registers, s.StaticConfig = f, []byte(`{"model":"m","gpu_required":false,"policy":"production"}`)
	logPath := filepath.Join(t.TempDir(), "run", "runtime.log")
	if err := (MeasureConfig{LogPath: logPath}).Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	want := runtime.Log{{Kind: runtime.KindStaticConfig, Payload: s.StaticConfig}, {Kind: runtime.KindBootComplete}}
	if !bytes.Equal(f.Regs[runtime.PCR], want.Replay(crypto.SHA256)) {
		t.Fatalf("PCR 15 %x, want %x", f.Regs[runtime.PCR], want.Replay(crypto.SHA256))
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := runtime.Parse(bytes.NewReader(b))
	if err != nil || !bytes.Equal(got.Replay(crypto.SHA256), f.Regs[runtime.PCR]) {
		t.Fatalf("runtime log does not replay to PCR 15: %v", err)
	}
	console := s.Log.(*bytes.Buffer).String()
	if !strings.Contains(console, "cocoon-init: registers pcr4=") || !strings.Contains(console, " pcr15="+hex.EncodeToString(f.Regs[runtime.PCR])) {
		t.Fatalf("console: %q", console)
	}

	s = withPolicy(DevPolicy)
	if err := (MeasureConfig{LogPath: logPath}).Run(context.Background(), s); err != nil || !strings.Contains(s.Log.(*bytes.Buffer).String(), "NOT measured") {
		t.Fatalf("without a device: %v %q", err, s.Log)
	}
}

// The GPU gate's result is measured between the static config and the
// boot-complete marker.
func TestMeasureConfigGPU(t *testing.T) {
	f := measured.NewFake(eventlog.TPM)
	s := withPolicy("production")
	s.Registers, s.StaticConfig = f, []byte(`{"model":"m","gpu_required":true,"policy":"production"}`)
	s.GPUAttestation = []byte(`{"v":"cocoon-gpu-attestation/v1"}`)
	logPath := filepath.Join(t.TempDir(), "runtime.log")
	if err := (MeasureConfig{LogPath: logPath}).Run(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(logPath)
	got, err := runtime.Parse(bytes.NewReader(b))
	if err != nil || len(got) != 3 || got[1].Kind != runtime.KindGPUAttestation || !bytes.Equal(got[1].Payload, s.GPUAttestation) {
		t.Fatalf("runtime log %+v, %v", got, err)
	}
	if !bytes.Equal(f.Regs[runtime.PCR], got.Replay(crypto.SHA256)) {
		t.Error("PCR 15 does not replay the log")
	}
}
