package gpu_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
)

// recorded is a real H100 attestation report with its certificate chain,
// from NVIDIA's nvtrust repository (testdata/nvtrust/README.md). The nonce
// is the one each was made with; driver and VBIOS are as NVML prints them
// for that GPU.
type recorded struct {
	name          string
	report, chain string
	nonce         string
	driver, vbios string
	fwid          string
}

var samples = []recorded{
	{
		name:   "hopper-550",
		report: "hopperAttestationReport.txt", chain: "hopperCertChain.txt",
		nonce:  "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb",
		driver: "550.90.07", vbios: "96.00.9F.00.01",
		fwid: "f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d",
	},
	{
		// NVIDIA's verifier test mode uses this pair with its default nonce
		// (config.py BaseSettings.NONCE).
		name:   "hopper-545",
		report: "attestationReport.txt", chain: "gpuAkCertChain.txt",
		nonce:  "4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e",
		driver: "545.00", vbios: "96.00.5E.00.01",
	},
}

// recordedNow is inside every recorded certificate's validity (all run to
// 9999-12-31; the latest NotBefore is 2022-03-01).
var recordedNow = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func (s recorded) load(t testing.TB) (report, chain []byte, nonce [gpu.NonceSize]byte) {
	t.Helper()
	h, err := os.ReadFile(filepath.Join("testdata", "nvtrust", s.report))
	if err != nil {
		t.Fatal(err)
	}
	report, err = hex.DecodeString(strings.TrimSpace(string(h)))
	if err != nil {
		t.Fatal(err)
	}
	chain, err = os.ReadFile(filepath.Join("testdata", "nvtrust", s.chain))
	if err != nil {
		t.Fatal(err)
	}
	n, err := hex.DecodeString(s.nonce)
	if err != nil || len(n) != gpu.NonceSize {
		t.Fatalf("nonce %q: %v", s.nonce, err)
	}
	copy(nonce[:], n)
	return report, chain, nonce
}

func (s recorded) expect(nonce [gpu.NonceSize]byte) gpu.Expect {
	return gpu.Expect{Nonce: nonce, Now: recordedNow, DriverVersion: s.driver, VBIOSVersion: s.vbios}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
