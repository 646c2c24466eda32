package wire

import (
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"
)

// A signature is over the domain and the object's JSON, fields in
// declaration order: the bytes the registry rebuilds to verify.
func TestSignRegistration(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	reg := Registration{Certificate: []byte{1, 2}, Payout: "p", Endpoint: "w:1", Models: []string{"m"}, Price: 7, At: 42}
	req, err := SignRegistration(reg, key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := SignedMessage(RegisterDomain, reg)
	if err != nil {
		t.Fatal(err)
	}
	const want = "cocoon-register/v1\x00" + `{"certificate":"AQI=","payout":"p","endpoint":"w:1","models":["m"],"price":7,"min_payout":0,"payout_every_s":0,"at":42}`
	if string(m) != want {
		t.Fatalf("signed message %q, want %q", m, want)
	}
	sig, err := hex.DecodeString(req.Sig)
	if err != nil || !ed25519.Verify(key.Public().(ed25519.PublicKey), m, sig) {
		t.Fatalf("sig %q does not verify over %q (%v)", req.Sig, m, err)
	}
}

func TestSignHeartbeatDomain(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	hb := Heartbeat{At: 1, Served: 2}
	req, err := SignHeartbeat(hb, key)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := hex.DecodeString(req.Sig)
	pub := key.Public().(ed25519.PublicKey)
	// The same object under the other domain must not verify.
	other, _ := SignedMessage(RegisterDomain, hb)
	if ed25519.Verify(pub, other, sig) {
		t.Fatal("a heartbeat signature verifies under the registration domain")
	}
	m, _ := SignedMessage(HeartbeatDomain, hb)
	if !ed25519.Verify(pub, m, sig) {
		t.Fatalf("sig does not verify over %q", m)
	}
	if id := WorkerID(pub); len(id) != 64 || strings.ToLower(id) != id {
		t.Fatalf("WorkerID %q, want 64 lower-case hex digits", id)
	}
}
