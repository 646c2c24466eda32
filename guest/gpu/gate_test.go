package gpu_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
	"github.com/cocoon-appliance/cocoon/guest/gpu/gputest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// hopperInfo is what NVML would say about the recorded GPU. The UUID and
// bus id are made up (the recording does not include them); name, driver
// and VBIOS are those the report states.
var hopperInfo = gpu.DeviceInfo{UUID: "GPU-00000000-0000-0000-0000-000000000001", Name: "NVIDIA H100 80GB HBM3", PCIBusID: "00000000:3B:00.0"}

func recordedFake(t *testing.T, s recorded) (*gputest.Fake, [gpu.NonceSize]byte) {
	report, chain, nonce := s.load(t)
	return &gputest.Fake{
		State:   gputest.CCOn,
		Driver:  s.driver,
		Devices: []*gputest.Device{gputest.Recorded(hopperInfo, s.vbios, report, chain)},
	}, nonce
}

// TestGateRecorded runs the whole gate on real H100 evidence, verified
// against the pinned NVIDIA root: the randomness hands out the nonce the
// report was made with.
func TestGateRecorded(t *testing.T) {
	fake, nonce := recordedFake(t, samples[0])
	res, err := gpu.Gate(context.Background(), fake, bytes.NewReader(nonce[:]), nil, recordedNow)
	if err != nil {
		t.Fatal(err)
	}
	if !fake.Ready || !slices.Equal(fake.SetReadyCalls, []bool{true}) {
		t.Errorf("ready %v after calls %v, want set once", fake.Ready, fake.SetReadyCalls)
	}
	got, err := res.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "result-hopper-550.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("canonical result differs from %s:\n%s", golden, got)
	}
	back, err := gpu.DecodeResult(got)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := back.Canonical(); !bytes.Equal(again, got) {
		t.Error("DecodeResult/Canonical do not round-trip")
	}
	g := res.GPUs[0]
	// 64 blocks; 26 are not all zero (counted from the hex independently),
	// the others are left out.
	if len(g.Measurements) != 26 || g.Measurements[0].Index != 2 {
		t.Errorf("%d measurements starting at %d", len(g.Measurements), g.Measurements[0].Index)
	}
}

// TestGateReplay: the recorded report answers any nonce the same way, as a
// replay would; with a fresh nonce the gate refuses and clears the ready
// state.
func TestGateReplay(t *testing.T) {
	fake, _ := recordedFake(t, samples[0])
	fake.Ready = true
	_, err := gpu.Gate(context.Background(), fake, rand.Reader, nil, recordedNow)
	if !errors.Is(err, gpu.ErrNonce) {
		t.Fatalf("err = %v, want ErrNonce", err)
	}
	if fake.Ready || !slices.Equal(fake.SetReadyCalls, []bool{false}) {
		t.Errorf("ready %v after calls %v, want cleared", fake.Ready, fake.SetReadyCalls)
	}
}

func TestGateCCState(t *testing.T) {
	cases := []struct {
		name  string
		state gpu.CCState
		want  error
	}{
		{"off", gpu.CCState{Environment: gpu.EnvProd}, gpu.ErrCCOff},
		{"devtools", gpu.CCState{Feature: true, DevToolsMode: true, Environment: gpu.EnvProd}, gpu.ErrDevTools},
		{"simulated", gpu.CCState{Feature: true, Environment: gpu.EnvSim}, gpu.ErrNotProduction},
		{"unavailable", gpu.CCState{Feature: true, Environment: gpu.EnvUnavailable}, gpu.ErrNotProduction},
		{"unknown environment", gpu.CCState{Feature: true, Environment: 7}, gpu.ErrNotProduction},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake, nonce := recordedFake(t, samples[0])
			fake.State = c.state
			_, err := gpu.Gate(context.Background(), fake, bytes.NewReader(nonce[:]), nil, recordedNow)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if len(fake.Devices[0].Nonces) != 0 || fake.Ready {
				t.Error("the gate went on after refusing the CC state")
			}
		})
	}
}

var synthNow = time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)

// synthFake is a system of synthetic GPUs, listed out of bus order.
func synthFake(t *testing.T, buses ...string) (*gputest.Fake, *gputest.SyntheticGPU) {
	t.Helper()
	s, err := gputest.NewSynthetic(rand.Reader, synthNow)
	if err != nil {
		t.Fatal(err)
	}
	f := &gputest.Fake{State: gputest.CCOn, Driver: s.Driver}
	for i, bus := range buses {
		g := s
		if i > 0 { // every GPU its own identity
			if g, err = gputest.NewSynthetic(rand.Reader, synthNow); err != nil {
				t.Fatal(err)
			}
			s.Roots.AddCert(g.Chain[len(g.Chain)-1])
		}
		f.Devices = append(f.Devices, g.Device(gpu.DeviceInfo{UUID: "GPU-synthetic-" + bus, Name: "SYNTHETIC", PCIBusID: bus}))
	}
	return f, s
}

func TestGateSyntheticMultiGPU(t *testing.T) {
	fake, s := synthFake(t, "00000000:C1:00.0", "00000000:1A:00.0", "00000000:3B:00.0")
	res, err := gpu.Gate(context.Background(), fake, rand.Reader, s.Roots, synthNow)
	if err != nil {
		t.Fatal(err)
	}
	var buses []string
	seen := map[string]bool{}
	for _, g := range res.GPUs {
		buses = append(buses, g.PCIBusID)
		if seen[g.Nonce] {
			t.Errorf("nonce %s used twice", g.Nonce)
		}
		seen[g.Nonce] = true
		for _, m := range g.Measurements {
			if m.Index == 9 {
				t.Error("zero measurement 9 recorded")
			}
		}
		if len(g.Measurements) != 11 {
			t.Errorf("%d measurements, want 11", len(g.Measurements))
		}
	}
	if !slices.IsSorted(buses) || len(buses) != 3 {
		t.Errorf("GPUs in order %v", buses)
	}
	b, err := res.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gpu.DecodeResult(b); err != nil {
		t.Fatal(err)
	}
	if !fake.Ready {
		t.Error("ready state not set")
	}
}

func TestGateFailures(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name string
		edit func(*gputest.Fake, *gputest.SyntheticGPU)
		want error
	}{
		{"no GPU", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.Devices = nil }, gpu.ErrNoGPU},
		{"CC state unreadable", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.Err = map[string]error{"CCState": boom} }, boom},
		{"driver version unreadable", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.Err = map[string]error{"DriverVersion": boom} }, boom},
		{"count fails", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.Err = map[string]error{"DeviceCount": boom} }, boom},
		{"UUID fails", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.Devices[1].Err = map[string]error{"UUID": boom} }, boom},
		{"certificates fail", func(f *gputest.Fake, _ *gputest.SyntheticGPU) {
			f.Devices[1].Err = map[string]error{"Certificates": boom}
		}, boom},
		{"report fails", func(f *gputest.Fake, _ *gputest.SyntheticGPU) {
			f.Devices[0].Attest = func([gpu.NonceSize]byte) (gpu.AttestationReport, error) { return gpu.AttestationReport{}, boom }
		}, boom},
		{"same GPU twice", func(f *gputest.Fake, _ *gputest.SyntheticGPU) {
			d := *f.Devices[0]
			d.Info.PCIBusID = "00000000:99:00.0"
			f.Devices[1] = &d
		}, gpu.ErrChain},
		{"driver differs from report", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.Driver = "550.54.15" }, gpu.ErrVersionMismatch},
		{"VBIOS differs from report", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.Devices[1].VBIOS = "96.00.9F.00.04" }, gpu.ErrVersionMismatch},
		{"NVML driver version empty", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.Driver = "" }, gpu.ErrVersionMismatch},
		{"NVML VBIOS version empty", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.Devices[0].VBIOS = "" }, gpu.ErrVersionMismatch},
		{"set ready fails", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.Err = map[string]error{"SetReadyState": boom} }, gpu.ErrReadyState},
		{"ready state stuck", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.ReadyStuck = true }, gpu.ErrReadyState},
		{"ready state unreadable", func(f *gputest.Fake, _ *gputest.SyntheticGPU) { f.Err = map[string]error{"ReadyState": boom} }, gpu.ErrReadyState},
		{"report tampered after signing", func(f *gputest.Fake, s *gputest.SyntheticGPU) {
			f.Devices[0].Attest = func(n [gpu.NonceSize]byte) (gpu.AttestationReport, error) {
				r, err := s.Report(n)
				r[110] ^= 1 // inside measurement 2's digest
				return gpu.AttestationReport{Report: r}, err
			}
		}, gpu.ErrSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake, s := synthFake(t, "00000000:1A:00.0", "00000000:3B:00.0")
			c.edit(fake, s)
			_, err := gpu.Gate(context.Background(), fake, rand.Reader, s.Roots, synthNow)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if fake.Ready {
				t.Error("ready state set after a failure")
			}
		})
	}
}

func TestGateCanceled(t *testing.T) {
	fake, s := synthFake(t, "00000000:1A:00.0")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := gpu.Gate(ctx, fake, rand.Reader, s.Roots, synthNow); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestGateShortRandomness(t *testing.T) {
	fake, s := synthFake(t, "00000000:1A:00.0", "00000000:3B:00.0")
	// Enough for one nonce only.
	_, err := gpu.Gate(context.Background(), fake, bytes.NewReader(make([]byte, gpu.NonceSize)), s.Roots, synthNow)
	if err == nil || fake.Ready {
		t.Fatalf("err = %v, ready %v; want a failure", err, fake.Ready)
	}
}
