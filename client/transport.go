package client

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/ratls"
)

// HTTPClient is an http.Client that reaches worker w only: every
// connection dials w's listed endpoint and completes its TLS 1.3 handshake
// only if the peer's RA-TLS certificate passes this client's verification
// AND carries the key verified from the listing. Use it with
// WorkerURL(w, path). The registry chose the endpoint, so the pin is what
// makes the endpoint harmless: whoever answers there must hold the
// attested key.
func (c *Client) HTTPClient(w *Checked) (*http.Client, error) {
	t, err := c.transport(w)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t, CheckRedirect: noRedirect}, nil
}

// WorkerURL is the URL of path on worker w.
func WorkerURL(w *Checked, path string) string {
	return "https://" + w.Info.Endpoint + path
}

// noRedirect: a worker's redirect would send the request, prompt and all,
// to a URL of its choosing, past the pin; the gateway sends none.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (c *Client) transport(w *Checked) (*http.Transport, error) {
	if !w.Verified() {
		return nil, fmt.Errorf("%w: worker %s is not verified: %w", ErrRefused, short(w.Info.ID), w.Err)
	}
	if _, _, err := net.SplitHostPort(w.Info.Endpoint); err != nil {
		return nil, fmt.Errorf("%w: worker %s: endpoint %q: %w", ErrWorker, short(w.Info.ID), w.Info.Endpoint, err)
	}
	pin := w.Result.Claims.PublicKey
	key := w.Info.ID + "\x00" + w.Info.Endpoint
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.transports[key]; t != nil {
		return t, nil
	}
	dial := c.Dial
	if dial == nil {
		timeout := c.DialTimeout
		if timeout <= 0 {
			timeout = DefaultDialTimeout
		}
		dial = (&net.Dialer{Timeout: timeout}).DialContext
	}
	hs := c.HandshakeTimeout
	if hs <= 0 {
		hs = DefaultHandshakeTimeout
	}
	t := &http.Transport{
		// Never an environment proxy: the connection goes to the listed
		// endpoint (TLS would still hold end to end, but a proxy sees
		// who talks to which worker).
		Proxy:               nil,
		DialContext:         dial,
		TLSClientConfig:     c.tlsConfig(pin),
		TLSHandshakeTimeout: hs,
		// Streams must pass as they come: no transparent gzip.
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	if c.transports == nil {
		c.transports = map[string]*http.Transport{}
	}
	c.transports[key] = t
	return t, nil
}

// tlsConfig is ratls.ClientConfig with the verifier replaced by the pin
// plus this client's whole check (verifyDER: ratls under the local policy
// and the local image allowlist). The worker renews its certificate at
// half its validity, so the certificate in the handshake may be newer than
// the listed one; it is verified in full, and its key must be the pinned
// one. The pin is checked first: it is cheap, and a swapped endpoint is
// then refused for what it is.
func (c *Client) tlsConfig(pin ed25519.PublicKey) *tls.Config {
	c.init()
	cfg := ratls.ClientConfig(c.ver)
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) != 1 {
			return fmt.Errorf("%w: the peer sent %d certificates, want 1", ratls.ErrCertificate, len(raw))
		}
		cert, err := ratls.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		got, ok := cert.Leaf.PublicKey.(ed25519.PublicKey)
		if !ok || !got.Equal(pin) {
			return fmt.Errorf("%w: the peer's certificate has key %s, the listing's verified key is %s", ErrPinned, keyHex(cert.Leaf.PublicKey), short(fmt.Sprintf("%x", []byte(pin))))
		}
		_, _, err = c.verifyDER(raw[0])
		return err
	}
	return cfg
}

func keyHex(k any) string {
	if pub, ok := k.(ed25519.PublicKey); ok {
		return short(fmt.Sprintf("%x", []byte(pub)))
	}
	return fmt.Sprintf("%T", k)
}
