package gpu_test

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
	"github.com/cocoon-appliance/cocoon/guest/gpu/gputest"
)

// TestOpenSSLCrossCheck checks our reading of the evidence with an
// independent implementation: openssl verifies the report signature over
// the bytes SignedData names (converted to a DER ECDSA-Sig-Value), and the
// recorded chain against the pinned root file. Skipped without openssl.
func TestOpenSSLCrossCheck(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	openssl := func(args ...string) (string, error) {
		out, err := exec.Command("openssl", args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	verifySig := func(name string, report []byte, leaf *x509.Certificate, tamper bool) {
		t.Helper()
		rep, err := gpu.ParseReport(report)
		if err != nil {
			t.Fatal(err)
		}
		data, err := rep.SignedData()
		if err != nil {
			t.Fatal(err)
		}
		if tamper {
			data[len(data)-1] ^= 1
		}
		sig := rep.Response.Signature
		der, err := asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(sig[:gpu.SignatureSize/2]), new(big.Int).SetBytes(sig[gpu.SignatureSize/2:]),
		})
		if err != nil {
			t.Fatal(err)
		}
		spki, err := x509.MarshalPKIXPublicKey(leaf.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pub := write(name+".pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
		out, err := openssl("dgst", "-sha384", "-verify", pub, "-signature", write(name+".sig", der), write(name+".data", data))
		if ok := err == nil && out == "Verified OK"; ok == tamper {
			t.Errorf("%s (tampered %v): openssl says %q, %v", name, tamper, out, err)
		}
	}

	for _, s := range samples {
		report, chain, _ := s.load(t)
		certs, err := gpu.ParseCertChain(chain)
		if err != nil {
			t.Fatal(err)
		}
		verifySig(s.name, report, certs[0], false)
		verifySig(s.name, report, certs[0], true)

		var inter []byte
		for _, c := range certs[1 : len(certs)-1] {
			inter = append(inter, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		leaf := write(s.name+".leaf.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw}))
		out, err := openssl("verify", "-attime", fmt.Sprint(recordedNow.Unix()),
			"-CAfile", "nvidia_device_identity_ca.pem", "-untrusted", write(s.name+".inter.pem", inter), leaf)
		if err != nil || !strings.HasSuffix(out, ": OK") {
			t.Errorf("%s: openssl verify: %q, %v", s.name, out, err)
		}
	}

	// The synthetic signer makes standard signatures too.
	synth, err := gputest.NewSynthetic(rand.Reader, recordedNow)
	if err != nil {
		t.Fatal(err)
	}
	report, err := synth.Report([gpu.NonceSize]byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	verifySig("synthetic", report, synth.Chain[0], false)
}
