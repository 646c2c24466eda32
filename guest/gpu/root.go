package gpu

import (
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"sync"
)

// nvidiaRootPEM is NVIDIA's device identity root, the trust anchor of every
// GPU attestation certificate chain: "CN=NVIDIA Device Identity CA,
// O=NVIDIA", ECDSA P-384, valid 2021-11-05 to 9999-12-31.
//
// Source: github.com/NVIDIA/nvtrust,
// guest_tools/gpu_verifiers/local_gpu_verifier/src/verifier/certs/verifier_device_root.pem
// (commit b75351ab108ff098076954e1a20e9479b51dabb7); the same certificate
// ends both recorded Hopper chains in testdata/nvtrust.
//
//go:embed nvidia_device_identity_ca.pem
var nvidiaRootPEM []byte

// NVIDIARootSHA256 pins the root: SHA-256 of its DER encoding
// (openssl x509 -noout -fingerprint -sha256).
const NVIDIARootSHA256 = "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48"

var nvidiaRoot = sync.OnceValues(func() (*x509.Certificate, error) {
	blk, rest := pem.Decode(nvidiaRootPEM)
	if blk == nil || len(rest) != 0 {
		return nil, fmt.Errorf("gpu: embedded NVIDIA root is not one PEM block")
	}
	if sum := sha256.Sum256(blk.Bytes); hex.EncodeToString(sum[:]) != NVIDIARootSHA256 {
		return nil, fmt.Errorf("gpu: embedded NVIDIA root has SHA-256 %x, pinned %s", sum, NVIDIARootSHA256)
	}
	return x509.ParseCertificate(blk.Bytes)
})

// NVIDIARoots returns a pool holding only the pinned NVIDIA Device Identity
// CA.
func NVIDIARoots() (*x509.CertPool, error) {
	c, err := nvidiaRoot()
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	p.AddCert(c)
	return p, nil
}
