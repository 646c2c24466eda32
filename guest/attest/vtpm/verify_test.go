package vtpm

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/cocoon-appliance/cocoon/guest/attest"
)

// recording is evidence recorded from swtpm by TestRecord (testdata/README.md).
type recording struct {
	Comment    string          `json:"comment"`
	ReportData string          `json:"report_data"`
	Evidence   attest.Evidence `json:"evidence"`
	// OtherAKPublic is an AK of the same algorithm from another swtpm.
	OtherAKPublic []byte `json:"other_ak_public"`
}

func loadRecording(t testing.TB, name string) (*attest.Evidence, [attest.ReportDataSize]byte, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var rec recording
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	var rd [attest.ReportDataSize]byte
	if n, err := hex.Decode(rd[:], []byte(rec.ReportData)); err != nil || n != len(rd) {
		t.Fatalf("report data %q: %v", rec.ReportData, err)
	}
	return &rec.Evidence, rd, rec.OtherAKPublic
}

var recordings = []string{"swtpm-ecc-p256.json", "swtpm-rsa-2048.json"}

func cloneEvidence(ev *attest.Evidence) *attest.Evidence {
	c := *ev
	c.Quote = bytes.Clone(ev.Quote)
	c.Signature = bytes.Clone(ev.Signature)
	c.AKPublic = bytes.Clone(ev.AKPublic)
	c.PCRs = maps.Clone(ev.PCRs)
	for i, v := range c.PCRs {
		c.PCRs[i] = bytes.Clone(v)
	}
	return &c
}

// TestVerifyRecorded: the recorded swtpm evidence verifies with what the
// recording says, and the tampering table fails as it should, with no TPM.
func TestVerifyRecorded(t *testing.T) {
	for _, name := range recordings {
		t.Run(name, func(t *testing.T) {
			ev, rd, other := loadRecording(t, name)
			v, err := Verify(ev, rd)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(v.Selection, DefaultPCRs) || v.Hierarchy != tpm2.TPMRHEndorsement {
				t.Errorf("selection %v hierarchy %#x", v.Selection, v.Hierarchy)
			}
			if len(v.AKName) != 34 || v.AKName[0] != 0 || v.AKName[1] != byte(tpm2.TPMAlgSHA256) {
				t.Errorf("AK name %x, want a SHA-256 name", v.AKName)
			}
			if v.PCRs[0] == nil || bytes.Equal(v.PCRs[0], make([]byte, 32)) {
				t.Errorf("PCR 0 = %x; the recording extends PCRs 0-9", v.PCRs[0])
			}
			runTamperCases(t, ev, rd, other)
		})
	}
}

// runTamperCases changes one thing in good evidence at a time and checks
// the error Verify gives. TPMT_PUBLIC offsets: type (2), nameAlg (2), then
// objectAttributes big endian (4): byte 5 holds bits 16-23 (restricted =
// bit 16, decrypt = 17), byte 7 bits 0-7 (fixedTPM = bit 1).
func runTamperCases(t *testing.T, good *attest.Evidence, rd [attest.ReportDataSize]byte, otherAK []byte) {
	t.Helper()
	if _, err := Verify(good, rd); err != nil {
		t.Fatalf("untouched evidence: %v", err)
	}
	last := func(b []byte) { b[len(b)-1] ^= 1 }
	cases := []struct {
		name string
		mut  func(ev *attest.Evidence, rd *[attest.ReportDataSize]byte)
		want []error
	}{
		{"report data flipped", func(_ *attest.Evidence, rd *[attest.ReportDataSize]byte) { rd[63] ^= 0x80 }, []error{ErrNonce}},
		{"PCR 15 altered", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.PCRs[15][0] ^= 1 }, []error{ErrPCRDigest}},
		{"PCR 0 altered", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { last(ev.PCRs[0]) }, []error{ErrPCRDigest}},
		{"PCRs 3 and 4 swapped", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) {
			ev.PCRs[3], ev.PCRs[4] = ev.PCRs[4], ev.PCRs[3]
		}, []error{ErrPCRDigest}},
		{"signature last byte flipped", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { last(ev.Signature) }, []error{ErrSignature}},
		{"signature byte 10 flipped", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.Signature[10] ^= 0x40 }, []error{ErrSignature}},
		{"signature with a trailing byte", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.Signature = append(ev.Signature, 0) }, []error{ErrSignature, attest.ErrEvidence}},
		{"signature truncated", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) {
			ev.Signature = ev.Signature[:len(ev.Signature)-1]
		}, []error{ErrSignature, attest.ErrEvidence}},
		{"no signature", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.Signature = nil }, []error{ErrSignature}},
		{"quote last byte flipped", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { last(ev.Quote) }, []error{ErrSignature}},
		{"quote extraData flipped", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.Quote[6+2+34+2] ^= 1 }, []error{ErrSignature}},
		{"quote with a trailing byte", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.Quote = append(ev.Quote, 0) }, []error{ErrSignature}},
		{"no quote", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.Quote = nil }, []error{attest.ErrEvidence}},
		{"AK from another TPM", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.AKPublic = bytes.Clone(otherAK) }, []error{ErrSignature}},
		{"AK not restricted", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.AKPublic[5] &^= 0x01 }, []error{ErrAK}},
		{"AK can decrypt", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.AKPublic[5] |= 0x02 }, []error{ErrAK}},
		{"AK not fixedTPM", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.AKPublic[7] &^= 0x02 }, []error{ErrAK}},
		{"AK truncated", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) {
			ev.AKPublic = ev.AKPublic[:len(ev.AKPublic)-1]
		}, []error{ErrAK, attest.ErrEvidence}},
		{"AK with a trailing byte", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.AKPublic = append(ev.AKPublic, 0) }, []error{ErrAK, attest.ErrEvidence}},
		{"no AK", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.AKPublic = nil }, []error{ErrAK}},
		{"PCR 0 missing", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { delete(ev.PCRs, 0) }, []error{attest.ErrEvidence}},
		{"PCR 16 not quoted", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.PCRs[16] = make([]byte, 32) }, []error{attest.ErrEvidence}},
		{"PCR 1 short", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.PCRs[1] = ev.PCRs[1][:31] }, []error{attest.ErrEvidence}},
		{"PCR 1 SHA-384 sized", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.PCRs[1] = make([]byte, 48) }, []error{attest.ErrEvidence}},
		{"no PCRs", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.PCRs = nil }, []error{attest.ErrEvidence}},
		{"kind tdx", func(ev *attest.Evidence, _ *[attest.ReportDataSize]byte) { ev.Kind = attest.TDX }, []error{attest.ErrEvidence}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, r := cloneEvidence(good), rd
			tc.mut(ev, &r)
			v, err := Verify(ev, r)
			if v != nil || err == nil {
				t.Fatalf("verified: %+v", v)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q is not %q", err, w)
				}
			}
		})
	}
	if _, err := Verify(nil, rd); !errors.Is(err, attest.ErrEvidence) {
		t.Errorf("nil evidence: %v", err)
	}
	if _, err := Verify(good, rd); err != nil {
		t.Fatalf("the cases changed the evidence they were given: %v", err)
	}
}
