package ratls

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
)

// tlv is one DER element, written by hand (ITU-T X.690 §8.1: identifier,
// definite length in the short form below 128, long form 0x81 nn below 256).
func tlv(tag byte, content ...[]byte) []byte {
	c := bytes.Join(content, nil)
	out := []byte{tag}
	if len(c) < 128 {
		out = append(out, byte(len(c)))
	} else {
		out = append(out, 0x81, byte(len(c)))
	}
	return append(out, c...)
}

func rep(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func katClaims() Claims {
	h := [32]byte(rep(0x33, 32))
	return Claims{
		PublicKey:  rep(0x11, 32),
		IssuedAt:   time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC),
		ConfigHash: [32]byte(rep(0x22, 32)),
		WorkerID:   "w-1",
		ImageHash:  &h,
		Nonce:      []byte("abc"),
	}
}

// katFields are the claims' fields as X.690 writes them, built without
// encoding/asn1: the known answer for Marshal.
func katFields() [][]byte {
	return [][]byte{
		tlv(0x02, []byte{1}),                 // version INTEGER 1
		tlv(0x04, rep(0x11, 32)),             // publicKey OCTET STRING
		tlv(0x18, []byte("20260601120000Z")), // issuedAt GeneralizedTime
		tlv(0x04, rep(0x22, 32)),             // configHash OCTET STRING
		tlv(0x0c, []byte("w-1")),             // workerID UTF8String
		tlv(0x80, rep(0x33, 32)),             // imageHash [0] IMPLICIT OCTET STRING
		tlv(0x81, []byte("abc")),             // nonce [1] IMPLICIT OCTET STRING
	}
}

func TestClaimsKnownAnswer(t *testing.T) {
	want := tlv(0x30, katFields()...)
	c := katClaims()
	got, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Marshal =\n%x\nwant\n%x", got, want)
	}
	back, err := ParseClaims(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("ParseClaims = %+v, want %+v", back, c)
	}
	// Without the optional fields, neither is written.
	c.ImageHash, c.Nonce = nil, nil
	got, err = c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := tlv(0x30, katFields()[:5]...); !bytes.Equal(got, want) {
		t.Fatalf("Marshal without options =\n%x\nwant\n%x", got, want)
	}
	// A time in another zone is written in UTC.
	c.IssuedAt = c.IssuedAt.In(time.FixedZone("X", 3600))
	if again, _ := c.Marshal(); !bytes.Equal(again, got) {
		t.Fatal("issue time not written in UTC")
	}
}

// TestClaimsNotCanonical: other encodings of the same claims, and
// malformed ones, are refused: the bytes hashed are the only encoding.
func TestClaimsNotCanonical(t *testing.T) {
	f := katFields()
	with := func(i int, field []byte) []byte {
		g := append([][]byte(nil), f...)
		g[i] = field
		return tlv(0x30, g...)
	}
	for _, c := range []struct {
		name string
		der  []byte
	}{
		{"UTCTime", with(2, tlv(0x17, []byte("260601120000Z")))},
		{"fractional seconds", with(2, tlv(0x18, []byte("20260601120000.5Z")))},
		{"time with +0000", with(2, tlv(0x18, []byte("20260601120000+0000")))},
		{"PrintableString worker ID", with(4, tlv(0x13, []byte("w-1")))},
		{"long-form length", with(4, []byte{0x0c, 0x81, 0x03, 'w', '-', '1'})},
		{"empty nonce", with(6, tlv(0x81))},
		{"version 2", with(0, tlv(0x02, []byte{2}))},
		{"31-byte image hash", with(5, tlv(0x80, rep(0x33, 31)))},
		{"31-byte config hash", with(3, tlv(0x04, rep(0x22, 31)))},
		{"33-byte key", with(1, tlv(0x04, rep(0x11, 33)))},
		{"options swapped", tlv(0x30, f[0], f[1], f[2], f[3], f[4], f[6], f[5])},
		{"trailing byte", append(tlv(0x30, f...), 0)},
		{"trailing field", tlv(0x30, append(append([][]byte(nil), f...), tlv(0x82, []byte{1}))...)},
		{"not a sequence", tlv(0x31, f...)},
		{"empty", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseClaims(c.der); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseClaims = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestClaimsValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Claims)
		text string
	}{
		{"short key", func(c *Claims) { c.PublicKey = c.PublicKey[:31] }, "public key"},
		{"zero time", func(c *Claims) { c.IssuedAt = time.Time{} }, "issue time"},
		{"fractional time", func(c *Claims) { c.IssuedAt = c.IssuedAt.Add(time.Millisecond) }, "issue time"},
		{"empty worker ID", func(c *Claims) { c.WorkerID = "" }, "worker ID"},
		{"long worker ID", func(c *Claims) { c.WorkerID = strings.Repeat("w", MaxWorkerID+1) }, "worker ID"},
		{"invalid UTF-8", func(c *Claims) { c.WorkerID = "\xff" }, "worker ID"},
		{"empty nonce", func(c *Claims) { c.Nonce = []byte{} }, "nonce"},
		{"long nonce", func(c *Claims) { c.Nonce = rep(1, MaxNonce+1) }, "nonce"},
	} {
		cl := katClaims()
		c.edit(&cl)
		if _, err := cl.Marshal(); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: Marshal = %v, want ErrMalformed about %s", c.name, err, c.text)
		}
	}
}

func TestEvidenceKnownAnswer(t *testing.T) {
	e := &attest.Evidence{Kind: attest.Sim, Quote: []byte("q"), PCRs: map[int][]byte{7: []byte("b"), 0: []byte("a")}, RuntimeLog: []byte("r")}
	want := tlv(0x30,
		tlv(0x02, []byte{1}),
		tlv(0x0c, []byte("sim")),
		tlv(0x04, []byte("q")),
		tlv(0xa2, // pcrs [2] IMPLICIT SEQUENCE OF, ascending
			tlv(0x30, tlv(0x02, []byte{0}), tlv(0x04, []byte("a"))),
			tlv(0x30, tlv(0x02, []byte{7}), tlv(0x04, []byte("b")))),
		tlv(0x84, []byte("r")), // runtimeLog [4]
	)
	got, err := MarshalEvidence(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalEvidence =\n%x\nwant\n%x", got, want)
	}
	back, err := ParseEvidence(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Fatalf("ParseEvidence = %+v, want %+v", back, e)
	}
}

func TestEvidenceInvalid(t *testing.T) {
	pcr := func(i byte, d string) []byte { return tlv(0x30, tlv(0x02, []byte{i}), tlv(0x04, []byte(d))) }
	head := [][]byte{tlv(0x02, []byte{1}), tlv(0x0c, []byte("tdx")), tlv(0x04, []byte("q"))}
	seq := func(more ...[]byte) []byte { return tlv(0x30, append(append([][]byte(nil), head...), more...)...) }
	for _, c := range []struct {
		name string
		der  []byte
	}{
		{"PCRs out of order", seq(tlv(0xa2, pcr(7, "b"), pcr(0, "a")))},
		{"PCR repeated", seq(tlv(0xa2, pcr(1, "b"), pcr(1, "a")))},
		{"PCR 24", seq(tlv(0xa2, pcr(24, "b")))},
		{"empty PCR digest", seq(tlv(0xa2, pcr(1, "")))},
		{"empty PCR list", seq(tlv(0xa2))},
		{"empty event log", seq(tlv(0x83))},
		{"empty quote", tlv(0x30, head[0], head[1], tlv(0x04))},
		{"empty kind", tlv(0x30, head[0], tlv(0x0c), head[2])},
		{"version 2", tlv(0x30, tlv(0x02, []byte{2}), head[1], head[2])},
		{"trailing byte", append(seq(), 0)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseEvidence(c.der); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseEvidence = %v, want ErrMalformed", err)
			}
		})
	}
	if _, err := MarshalEvidence(nil); !errors.Is(err, ErrNoEvidence) {
		t.Errorf("MarshalEvidence(nil) = %v", err)
	}
}

func FuzzClaims(f *testing.F) {
	kat := katClaims()
	der, _ := kat.Marshal()
	f.Add(der)
	kat.ImageHash, kat.Nonce = nil, nil
	der, _ = kat.Marshal()
	f.Add(der)
	f.Add(tlv(0x30, katFields()[:4]...))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := ParseClaims(der)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		// Read, write, read: the same bytes and the same claims.
		again, err := c.Marshal()
		if err != nil || !bytes.Equal(again, der) {
			t.Fatalf("accepted claims do not re-encode to their bytes: %v", err)
		}
		c2, err := ParseClaims(again)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip: %+v, %+v, %v", c, c2, err)
		}
	})
}

func FuzzEvidence(f *testing.F) {
	fx := newFixture(f, fixtureOptions{})
	_, ev := fx.parts(f)
	f.Add(ev)
	vt, _ := MarshalEvidence(&attest.Evidence{Kind: attest.VTPM, Quote: []byte("attest"), Signature: []byte("sig"),
		AKPublic: []byte("ak"), PCRs: map[int][]byte{0: rep(1, 32), 15: rep(2, 32)}, EventLog: []byte("log")})
	f.Add(vt)
	f.Fuzz(func(t *testing.T, der []byte) {
		e, err := ParseEvidence(der)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		again, err := MarshalEvidence(e)
		if err != nil || !bytes.Equal(again, der) {
			t.Fatalf("accepted evidence does not re-encode to its bytes: %v", err)
		}
	})
}
