package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
	"github.com/cocoon-appliance/cocoon/guest/gpu/gputest"
)

// The recorded H100 evidence and the canonical result the gate makes of it
// (guest/gpu/testdata).
var testdata = filepath.Join("..", "..", "guest", "gpu", "testdata")

const recordedNonce = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func recordedH100(t *testing.T) *gputest.Fake {
	report, err := hex.DecodeString(strings.TrimSpace(string(read(t, "nvtrust/hopperAttestationReport.txt"))))
	if err != nil {
		t.Fatal(err)
	}
	info := gpu.DeviceInfo{UUID: "GPU-00000000-0000-0000-0000-000000000001", Name: "NVIDIA H100 80GB HBM3", PCIBusID: "00000000:3B:00.0"}
	return &gputest.Fake{
		State:   gputest.CCOn,
		Driver:  "550.90.07",
		Devices: []*gputest.Device{gputest.Recorded(info, "96.00.9F.00.01", report, read(t, "nvtrust/hopperCertChain.txt"))},
	}
}

func TestRun(t *testing.T) {
	nonce, _ := hex.DecodeString(recordedNonce)
	boom := errors.New("nvmlShutdown failed")
	cases := []struct {
		name       string
		args       []string
		fake       func(*gputest.Fake)
		openErr    error
		closeErr   error
		rand       []byte
		wantExit   int
		wantOut    bool
		wantStderr string
	}{
		{name: "ready", wantExit: exitReady, wantOut: true, wantStderr: "attested"},
		{name: "argument", args: []string{"-x"}, wantExit: exitUsage, wantStderr: "usage"},
		{name: "CC off", fake: func(f *gputest.Fake) { f.State.Feature = false }, wantExit: exitRefused, wantStderr: "confidential computing is off"},
		{name: "devtools", fake: func(f *gputest.Fake) { f.State.DevToolsMode = true }, wantExit: exitRefused, wantStderr: "devtools"},
		{name: "replayed report", rand: bytes.Repeat([]byte{7}, 32), wantExit: exitRefused, wantStderr: "nonce mismatch"},
		{name: "no GPU", fake: func(f *gputest.Fake) { f.Devices = nil }, wantExit: exitNoGPU, wantStderr: "no NVIDIA GPU"},
		{name: "no driver", openErr: fmt.Errorf("%w: libnvidia-ml.so.1 not found", gpu.ErrNoDriver), wantExit: exitNoGPU, wantStderr: "no NVIDIA driver"},
		{name: "no cgo", openErr: errors.New("built without cgo"), wantExit: exitRefused, wantStderr: "built without cgo"},
		{name: "shutdown fails", closeErr: boom, wantExit: exitRefused, wantStderr: boom.Error()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake := recordedH100(t)
			if c.fake != nil {
				c.fake(fake)
			}
			r := c.rand
			if r == nil {
				r = nonce
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), c.args, env{
				open: func() (gpu.NVML, func() error, error) {
					if c.openErr != nil {
						return nil, nil, c.openErr
					}
					return fake, func() error { return c.closeErr }, nil
				},
				rand:   bytes.NewReader(r),
				now:    func() time.Time { return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) },
				stdout: &stdout,
				stderr: &stderr,
			})
			if code != c.wantExit || !strings.Contains(stderr.String(), c.wantStderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), c.wantExit, c.wantStderr)
			}
			if !c.wantOut {
				if stdout.Len() != 0 {
					t.Errorf("stdout %q on failure", stdout.String())
				}
				return
			}
			// stdout is exactly the canonical result: what the init measures.
			if want := read(t, "result-hopper-550.json"); !bytes.Equal(stdout.Bytes(), want) {
				t.Errorf("stdout differs from the canonical result:\n%s", stdout.Bytes())
			}
		})
	}
}

// TestRunFreshNonces: the program draws its nonces from the randomness it
// is given, so a real run never reuses the recorded one.
func TestRunFreshNonces(t *testing.T) {
	fake := recordedH100(t)
	var stderr bytes.Buffer
	code := run(context.Background(), nil, env{
		open:   func() (gpu.NVML, func() error, error) { return fake, func() error { return nil }, nil },
		rand:   rand.Reader,
		now:    time.Now,
		stdout: &bytes.Buffer{},
		stderr: &stderr,
	})
	if code != exitRefused || len(fake.Devices[0].Nonces) != 1 || hex.EncodeToString(fake.Devices[0].Nonces[0][:]) == recordedNonce {
		t.Fatalf("exit %d, nonces %x", code, fake.Devices[0].Nonces)
	}
}
