package ratls

import "crypto/tls"

// ServerConfig is a TLS 1.3-only server configuration presenting cert (from
// NewCertificate). With a clientVerifier the server requires an RA-TLS
// certificate from the client too (mutual RA-TLS), and verifies it with
// clientVerifier; with nil it asks for none.
//
// RequireAnyClientCert rather than RequireAndVerifyClientCert: the latter
// builds a chain to ClientCAs, which a self-signed RA-TLS certificate never
// has; the client's key is checked by TLS (CertificateVerify) and its
// certificate by clientVerifier.VerifyPeerCertificate, which fails the
// handshake on any error. Session tickets are off so that no connection
// resumes past a certificate that was not verified in it (or past its
// expiry). To rotate the certificate before it expires, set GetCertificate
// on the result.
func ServerConfig(cert tls.Certificate, clientVerifier *Verifier) *tls.Config {
	c := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		SessionTicketsDisabled: true,
	}
	if clientVerifier != nil {
		c.ClientAuth = tls.RequireAnyClientCert
		c.VerifyPeerCertificate = clientVerifier.VerifyPeerCertificate
	}
	return c
}

// ClientConfig is a TLS 1.3-only client configuration that accepts a server
// only if v accepts its RA-TLS certificate. clientCert, when given, is
// presented to a server that asks (mutual RA-TLS).
//
// InsecureSkipVerify is set, and it is safe here: it turns off Go's
// web-PKI verification (chain to a system root, host name), which a
// self-signed RA-TLS certificate cannot pass and which would prove nothing
// about the TD; Go still calls VerifyPeerCertificate with the server's
// certificate, and v's verification there (self-signature, validity,
// critical extensions, quote, policy, binding of the quote to this key)
// decides. TLS 1.3 itself still checks the server's CertificateVerify
// signature with the certificate's key, so the peer holds the attested
// key. No session cache is set, so every connection sees a certificate.
func ClientConfig(v *Verifier, clientCert ...tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		MaxVersion:            tls.VersionTLS13,
		InsecureSkipVerify:    true, // verification is v.VerifyPeerCertificate's; see above
		VerifyPeerCertificate: v.VerifyPeerCertificate,
		Certificates:          clientCert,
	}
}
