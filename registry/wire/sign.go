package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Signature domains: the worker's key also signs its RA-TLS certificate
// and its receipts, so each kind of message gets a prefix no other can
// start with.
const (
	RegisterDomain  = "cocoon-register/v1\x00"
	HeartbeatDomain = "cocoon-heartbeat/v1\x00"
)

// MaxClockSkew is how far a signed request's "at" may be from the
// registry's clock, either way: it bounds how long a captured request
// can be replayed.
const MaxClockSkew = 2 * time.Minute

// WorkerID is a worker's ID: hex SHA-256 of its Ed25519 public key.
func WorkerID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:])
}

// SignedMessage is domain || JSON(v), what a worker signs and the
// registry verifies.
func SignedMessage(domain string, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte(domain), j...), nil
}

// SignRegistration signs reg with the worker's key.
func SignRegistration(reg Registration, key ed25519.PrivateKey) (RegisterRequest, error) {
	m, err := SignedMessage(RegisterDomain, reg)
	if err != nil {
		return RegisterRequest{}, err
	}
	return RegisterRequest{Registration: reg, Sig: hex.EncodeToString(ed25519.Sign(key, m))}, nil
}

// SignHeartbeat signs hb with the worker's key.
func SignHeartbeat(hb Heartbeat, key ed25519.PrivateKey) (HeartbeatRequest, error) {
	m, err := SignedMessage(HeartbeatDomain, hb)
	if err != nil {
		return HeartbeatRequest{}, err
	}
	return HeartbeatRequest{Heartbeat: hb, Sig: hex.EncodeToString(ed25519.Sign(key, m))}, nil
}

// MaxEndpoint bounds a registered endpoint: a 255-byte host name, ':' and
// a port.
const MaxEndpoint = 261

// CheckEndpoint wants host:port with a host and a port in 1..65535: what
// the registry admits as a worker's endpoint, and what a worker checks in
// its config before it asks.
func CheckEndpoint(ep string) error {
	if len(ep) > MaxEndpoint {
		return fmt.Errorf("longer than %d bytes", MaxEndpoint)
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("no host")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q, want 1..65535", port)
	}
	return nil
}
