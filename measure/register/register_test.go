package register

import (
	"crypto"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"testing"
)

// TestExtendRule checks the extend rule against a value computed by hand:
// SHA384(48 zero bytes || SHA384("abc")).
func TestExtendRule(t *testing.T) {
	d := sha512.Sum384([]byte("abc"))
	b := NewBank(crypto.SHA384, 4)
	if err := b.Extend(Event{Index: 2, Digest: d[:]}); err != nil {
		t.Fatal(err)
	}
	var buf [96]byte
	copy(buf[48:], d[:])
	want := sha512.Sum384(buf[:])
	if hex.EncodeToString(b.Regs[2]) != hex.EncodeToString(want[:]) {
		t.Fatalf("rtmr2 = %x, want %x", b.Regs[2], want)
	}
	for _, i := range []int{0, 1, 3} {
		if hex.EncodeToString(b.Regs[i]) != hex.EncodeToString(make([]byte, 48)) {
			t.Fatalf("register %d changed", i)
		}
	}
	if err := b.Extend(Event{Index: 0, Digest: d[:32]}); !errors.Is(err, ErrDigest) {
		t.Fatalf("short digest: %v", err)
	}
	if err := b.Extend(Event{Index: 4, Digest: d[:]}); !errors.Is(err, ErrDigest) {
		t.Fatalf("index 4: %v", err)
	}
}

func TestReplayAndCompare(t *testing.T) {
	d := Digest(crypto.SHA256, []byte("x"))
	b, err := Replay(crypto.SHA256, 24, []Event{{Index: 4, Digest: d}, {Index: 4, Digest: d}})
	if err != nil {
		t.Fatal(err)
	}
	once := NewBank(crypto.SHA256, 24)
	once.Extend(Event{Index: 4, Digest: d})
	want := make([][]byte, 24)
	want[4] = once.Regs[4]
	ms := Compare(b, want)
	if len(ms) != 1 || ms[0].Index != 4 {
		t.Fatalf("mismatches %v", ms)
	}
	want[4] = b.Regs[4]
	if ms := Compare(b, want); len(ms) != 0 {
		t.Fatalf("mismatches %v", ms)
	}
	if TypeName(EvSeparator) != "EV_SEPARATOR" || TypeName(0x1234) != "0x00001234" {
		t.Fatal("TypeName")
	}
}
