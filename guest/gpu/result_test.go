package gpu_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
)

func goldenResult(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "result-hopper-550.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeResultRejects(t *testing.T) {
	golden := string(goldenResult(t))
	repl := func(old, new string) string {
		if !strings.Contains(golden, old) {
			t.Fatalf("golden result lacks %q", old)
		}
		return strings.Replace(golden, old, new, 1)
	}
	cases := []struct {
		name string
		b    string
	}{
		{"trailing newline", golden + "\n"},
		{"indented", strings.Replace(golden, `{"version"`, "{\n \"version\"", 1)},
		{"members reordered", repl(`"uuid":"GPU-00000000-0000-0000-0000-000000000001","name":"NVIDIA H100 80GB HBM3"`, `"name":"NVIDIA H100 80GB HBM3","uuid":"GPU-00000000-0000-0000-0000-000000000001"`)},
		{"unknown member", repl(`"version":`, `"extra":1,"version":`)},
		{"member name case", repl(`"version":`, `"Version":`)},
		{"duplicate member", repl(`"version":"cocoon-gpu-attestation/v1"`, `"version":"x","version":"cocoon-gpu-attestation/v1"`)},
		{"other version", repl(`cocoon-gpu-attestation/v1`, `cocoon-gpu-attestation/v2`)},
		{"uppercase hex", repl(`"nonce":"931d8dd0`, `"nonce":"931D8DD0`)},
		{"short nonce", repl(`"nonce":"931d8dd0`, `"nonce":"`)},
		{"measurements out of order", repl(`{"index":2,`, `{"index":99,`)},
		{"zero measurement", repl(`"value":"8048dfd18fe229bf16eb9d30cca0f11a24dafe6eb731de1462984645a0b189b77c4e4e17de727a5e19e3d07de51da338"`, `"value":"`+strings.Repeat("0", 96)+`"`)},
		{"no gpus", golden[:strings.Index(golden, `"gpus":`)] + `"gpus":[]}`},
		{"two objects", golden + golden},
		{"not JSON", "{"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := gpu.DecodeResult([]byte(c.b)); !errors.Is(err, gpu.ErrResult) {
				t.Fatalf("err = %v, want ErrResult", err)
			}
		})
	}
}

func FuzzDecodeResult(f *testing.F) {
	f.Add(goldenResult(f))
	f.Add([]byte(`{"version":"cocoon-gpu-attestation/v1","gpus":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := gpu.DecodeResult(b)
		if err != nil {
			if !errors.Is(err, gpu.ErrResult) {
				t.Fatalf("error %v does not wrap ErrResult", err)
			}
			return
		}
		c, err := r.Canonical()
		if err != nil || !bytes.Equal(c, b) {
			t.Fatalf("Canonical(DecodeResult(b)) != b (err %v)", err)
		}
	})
}

func FuzzParseCertChain(f *testing.F) {
	for _, s := range samples {
		_, chain, _ := s.load(f)
		f.Add(chain)
		f.Add(chain[:len(chain)/2])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := gpu.ParseCertChain(b)
		if err != nil {
			if !errors.Is(err, gpu.ErrChain) {
				t.Fatalf("error %v does not wrap ErrChain", err)
			}
			return
		}
		if len(certs) < 2 {
			t.Fatalf("%d certificates accepted", len(certs))
		}
		for _, c := range certs {
			_, _, _, _ = gpu.CertFWID(c)
		}
		_ = gpu.VerifyCertChain(certs, nil, recordedNow)
	})
}
