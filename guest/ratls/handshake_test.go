package ratls

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/measure/policy"
)

type sides struct {
	client, server       tls.ConnectionState
	clientErr, serverErr error
}

// handshake runs a TLS handshake over net.Pipe and, when it succeeds,
// sends one message from the server to the client. The server writes and
// the client reads because in TLS 1.3 the client's handshake ends before
// the server has checked the client's certificate: a refusal then arrives
// as an alert the client reads (net.Pipe is unbuffered, so two writers
// would wait on each other).
func handshake(t *testing.T, server, client *tls.Config) sides {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	// A safety net against a hung test, not a timing assertion.
	deadline := time.Now().Add(time.Minute)
	_ = c1.SetDeadline(deadline)
	_ = c2.SetDeadline(deadline)
	srv, cli := tls.Server(c1, server), tls.Client(c2, client)
	done := make(chan error, 1)
	go func() {
		err := srv.HandshakeContext(context.Background())
		if err == nil {
			_, err = srv.Write([]byte("ping"))
		}
		if err != nil {
			c1.Close()
		}
		done <- err
	}()
	var s sides
	if s.clientErr = cli.HandshakeContext(context.Background()); s.clientErr == nil {
		b := make([]byte, 4)
		if _, s.clientErr = io.ReadFull(cli, b); s.clientErr == nil && string(b) != "ping" {
			t.Fatalf("client read %q, want ping", b)
		}
	}
	if s.clientErr != nil {
		c2.Close()
	}
	s.serverErr = <-done
	s.client, s.server = cli.ConnectionState(), srv.ConnectionState()
	return s
}

// TestHandshake: a client that verifies RA-TLS talks to a simulated
// worker over TLS 1.3; the second connection is verified from the cache.
func TestHandshake(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	v := f.verifier(f.dev)
	s := handshake(t, ServerConfig(f.cert, nil), ClientConfig(v))
	if s.clientErr != nil || s.serverErr != nil {
		t.Fatalf("handshake: client %v, server %v", s.clientErr, s.serverErr)
	}
	if s.client.Version != tls.VersionTLS13 {
		t.Errorf("version %#x, want TLS 1.3", s.client.Version)
	}
	if st := v.CacheStats(); st.Hits != 0 || st.Misses != 1 || st.Entries != 1 {
		t.Errorf("after one handshake: %+v", st)
	}
	s = handshake(t, ServerConfig(f.cert, nil), ClientConfig(v))
	if s.clientErr != nil || s.serverErr != nil {
		t.Fatalf("second handshake: client %v, server %v", s.clientErr, s.serverErr)
	}
	if st := v.CacheStats(); st.Hits != 1 || st.Misses != 1 {
		t.Errorf("after two handshakes: %+v, want the second from the cache", st)
	}
	if s.client.DidResume {
		t.Error("the second connection resumed a session instead of verifying")
	}
	r, err := v.Peer(s.client)
	if err != nil {
		t.Fatal(err)
	}
	if r.Claims.WorkerID != "w-1" || r.Attested.Kind != attest.Sim {
		t.Errorf("peer = %+v", r.Claims)
	}
}

// TestHandshakeMutual: both ends present and verify RA-TLS certificates,
// each from its own simulator.
func TestHandshakeMutual(t *testing.T) {
	worker := newFixture(t, fixtureOptions{})
	client := newFixture(t, fixtureOptions{seed: 3, keyTag: 1})
	sv, cv := client.verifier(client.dev), worker.verifier(worker.dev)
	s := handshake(t, ServerConfig(worker.cert, sv), ClientConfig(cv, client.cert))
	if s.clientErr != nil || s.serverErr != nil {
		t.Fatalf("handshake: client %v, server %v", s.clientErr, s.serverErr)
	}
	if r, err := sv.Peer(s.server); err != nil || r.Claims.WorkerID != "w-1" {
		t.Errorf("server's view of the client: %+v, %v", r, err)
	}
	// A client without a certificate, or with one the server's verifier
	// refuses, does not get in.
	s = handshake(t, ServerConfig(worker.cert, sv), ClientConfig(cv))
	if s.serverErr == nil {
		t.Error("server accepted a client without a certificate")
	}
	s = handshake(t, ServerConfig(worker.cert, worker.verifier(worker.dev)), ClientConfig(cv, client.cert))
	if !errors.Is(s.serverErr, ErrQuote) {
		t.Errorf("client from an unpinned simulator: server %v, want ErrQuote", s.serverErr)
	}
}

func TestHandshakeRefused(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	s := handshake(t, ServerConfig(f.cert, nil), ClientConfig(f.verifier(f.prod)))
	if !errors.Is(s.clientErr, ErrPolicy) || !errors.Is(s.clientErr, policy.ErrSimulated) {
		t.Errorf("production policy: client %v, want ErrPolicy and policy.ErrSimulated", s.clientErr)
	}
	if s.serverErr == nil {
		t.Error("server finished a handshake the client refused")
	}
	// TLS 1.2 is refused by both configurations.
	old := ClientConfig(f.verifier(f.dev))
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if s := handshake(t, ServerConfig(f.cert, nil), old); s.clientErr == nil {
		t.Error("TLS 1.2 handshake succeeded")
	}
}

// benchHandshake measures RA-TLS handshakes over loopback TCP: TLS 1.3 with
// an Ed25519 certificate, plus the verification of the simulated quote
// inside (PCK chain, attestation key and QE report signatures, policy).
func benchHandshake(b *testing.B, cold bool) {
	f := newFixture(b, fixtureOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Skipf("no loopback: %v", err)
	}
	defer ln.Close()
	cfg := ServerConfig(f.cert, nil)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					_, _ = io.Copy(io.Discard, tc)
				}
			}()
		}
	}()
	addr := ln.Addr().String()
	shared := f.verifier(f.dev)
	if _, err := shared.Verify(f.der()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		v := shared
		if cold {
			v = f.verifier(f.dev)
		}
		c, err := tls.Dial("tcp", addr, ClientConfig(v))
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	if st := shared.CacheStats(); !cold && st.Misses != 1 {
		b.Fatalf("cached benchmark verified %d times", st.Misses)
	}
}

// BenchmarkHandshakeCold: a new Verifier per connection, so every
// handshake verifies the certificate and its quote in full.
func BenchmarkHandshakeCold(b *testing.B) { benchHandshake(b, true) }

// BenchmarkHandshakeCached: one Verifier; the certificate is verified once
// and every handshake after that finds it in the cache.
func BenchmarkHandshakeCached(b *testing.B) { benchHandshake(b, false) }
