package quote

import (
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"sync"
)

// intelRootPEM is Intel's SGX Root CA, the trust anchor of every PCK
// certificate chain and of the collateral signing chains. Published at
// https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.pem;
// the same certificate as go-tdx-guest v0.3.1 verify/trusted_root.pem.
// SHA-256 fingerprint of the DER:
// 44:A0:19:6B:2B:99:F8:89:B8:E1:49:E9:5B:80:7A:35:0E:74:24:96:43:99:E8:85:A7:CB:B8:CC:FA:B6:74:D3
// Valid 2018-05-21 to 2049-12-31.
//
//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// We pass the root to go-tdx-guest ourselves instead of relying on its
// embedded copy: the anchor is then pinned in our tree, and go-tdx-guest
// does not log a warning to stdout on every verification.
var intelRoot = sync.OnceValue(func() *x509.Certificate {
	b, _ := pem.Decode(intelRootPEM)
	if b == nil {
		panic("quote: embedded Intel SGX root CA is not PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		panic("quote: embedded Intel SGX root CA: " + err.Error())
	}
	return c
})

var intelRoots = sync.OnceValue(func() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(intelRoot())
	return p
})
