package sim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/quote"
)

// Offsets in a simulated quote (Quote Format v4; QE auth data is 32 bytes).
const (
	offBody     = 0x30
	offSig      = 0x27C
	offAK       = 0x2BC
	offQEReport = 0x302
	offQESig    = 0x482
	offQEAuth   = 0x4C4
	offChain    = 0x4EA
)

func TestVerifyGood(t *testing.T) {
	s := newSim(t, Options{})
	data := rd("good")
	q, err := Verify(mustQuote(t, s, data), s.Root())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q.GetTdQuoteBody().GetReportData(), data[:]) {
		t.Error("report data lost")
	}
}

// TestVerifyTampered flips single bytes in every part of a good quote and
// expects the check that covers that part to refuse it.
func TestVerifyTampered(t *testing.T) {
	s := newSim(t, Options{})
	good := mustQuote(t, s, rd("tamper"))
	other := newSim(t, Options{Seed: testSeed(7)})

	// A letter inside the PEM leaf's base64, to change the DER and keep the PEM valid.
	letter := offChain + 200
	for !('a' <= good[letter] && good[letter] <= 'z') {
		letter++
	}
	flip := func(off int) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x01; return b }
	}
	for _, c := range []struct {
		name   string
		edit   func([]byte) []byte
		root   *Simulator
		want   error
		inText string
	}{
		{"version", flip(0), nil, ErrMalformed, "version"},
		{"TEE type", flip(4), nil, ErrMalformed, "TEE type"},
		{"QE vendor ID", flip(0x0C), nil, ErrSignature, "attestation key"},
		{"header user data", flip(0x1C), nil, ErrSignature, "attestation key"},
		{"TEE_TCB_SVN", flip(offBody), nil, ErrSignature, "attestation key"},
		{"TDATTRIBUTES debug bit", flip(offBody + 0x78), nil, ErrSignature, "attestation key"},
		{"MRTD", flip(offBody + 0x88), nil, ErrSignature, "attestation key"},
		{"MRCONFIGID", flip(offBody + 0xB8), nil, ErrSignature, "attestation key"},
		{"RTMR3", flip(offBody + 0x1D8 + 47), nil, ErrSignature, "attestation key"},
		{"REPORTDATA", flip(offBody + 0x208), nil, ErrSignature, "attestation key"},
		{"signature r", flip(offSig), nil, ErrSignature, "attestation key"},
		{"signature s", flip(offSig + 63), nil, ErrSignature, "attestation key"},
		{"attestation key", flip(offAK + 10), nil, ErrSignature, "attestation key"},
		{"QE report MRSIGNER", flip(offQEReport + 0x80), nil, ErrSignature, "QE report signature"},
		{"QE report data", flip(offQEReport + 0x140), nil, ErrSignature, "QE report signature"},
		{"QE report signature", flip(offQESig + 5), nil, ErrSignature, "QE report signature"},
		{"QE auth data", flip(offQEAuth), nil, ErrSignature, "QE report data"},
		{"PCK leaf", func(b []byte) []byte { b[letter] ^= 0x20; return b }, nil, ErrCertificate, "certificate 0"},
		{"signed data size", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[0x278:], binary.LittleEndian.Uint32(b[0x278:])+1)
			return b
		}, nil, ErrMalformed, "signed data size"},
		{"certification data type 5", flip(offChain - 6), nil, ErrMalformed, ""},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, nil, ErrMalformed, "after the signed data"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, nil, ErrMalformed, ""},
		{"empty", func([]byte) []byte { return nil }, nil, ErrMalformed, ""},
		{"another simulator's root", func(b []byte) []byte { return b }, other, ErrCertificate, "not the pinned simulator root"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := s.Root()
			if c.root != nil {
				root = c.root.Root()
			}
			_, err := Verify(c.edit(bytes.Clone(good)), root)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.inText) {
				t.Fatalf("Verify = %v, want %v containing %q", err, c.want, c.inText)
			}
		})
	}
	if _, err := Verify(good, nil); !errors.Is(err, ErrCertificate) {
		t.Errorf("nil root: %v", err)
	}
}

// TestVerifyForgeries builds quotes that are consistent everywhere but one
// link of the chain of trust.
func TestVerifyForgeries(t *testing.T) {
	s := newSim(t, Options{})
	other := newSim(t, Options{Seed: testSeed(7)})
	good := mustQuote(t, s, rd("forge"))

	t.Run("attestation key substituted", func(t *testing.T) {
		// Header and body signed by another key that the QE never
		// certified: only the QE report data can tell.
		b := bytes.Clone(good)
		sig, err := sign(other.k.ak, b[:signedSizeOff])
		if err != nil {
			t.Fatal(err)
		}
		copy(b[offSig:], sig[:])
		copy(b[offAK:], other.k.akPublic[:])
		_, err = Verify(b, s.Root())
		if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "QE report data") {
			t.Fatalf("Verify = %v, want ErrSignature on the QE report data", err)
		}
	})
	t.Run("certification data of another simulator", func(t *testing.T) {
		// Our AK signature, the other simulator's QE report, signature,
		// auth data and chain: its chain is sound, but for its root, and its
		// QE report binds its own attestation key.
		var sig, ak [64]byte
		copy(sig[:], good[offSig:])
		copy(ak[:], good[offAK:])
		b, err := assemble(good[:signedSizeOff], sig, ak, other.k.qeReport, other.k.qeReportS, other.k.qeAuth, other.k.chainPEM)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(b, s.Root()); !errors.Is(err, ErrCertificate) {
			t.Errorf("with our root: %v, want ErrCertificate", err)
		}
		if _, err := Verify(b, other.Root()); !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "QE report data") {
			t.Errorf("with its root: %v, want ErrSignature on the QE report data", err)
		}
	})
	t.Run("real Intel quote", func(t *testing.T) {
		raw := intelSample(t)
		n := binary.LittleEndian.Uint32(raw[signedSizeOff:])
		raw = raw[:signedDataOff+int(n)] // without go-tdx-guest's 39 test bytes
		if _, err := Verify(raw, s.Root()); !errors.Is(err, ErrCertificate) {
			t.Errorf("Verify = %v, want ErrCertificate", err)
		}
	})
	// QE identity: reports that the PCK key did sign, for an enclave that
	// is not the simulated QE.
	for _, c := range []struct {
		name string
		edit func(*qeReport)
		text string
	}{
		{"debug QE", func(r *qeReport) { r.Attributes[0] |= 0x02 }, "DEBUG"},
		{"other MRSIGNER", func(r *qeReport) { r.MRSigner = [32]byte{1} }, "MRSIGNER"},
		{"other ISVPRODID", func(r *qeReport) { r.ISVProdID = 1 }, "ISVPRODID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newSim(t, Options{})
			r := qeReport{CPUSVN: simCPUSVN, MREnclave: QEMREnclave, MRSigner: QEMRSigner, ISVProdID: QEProdID}
			copy(r.ReportData[:], f.k.qeReport[qeReportSize-64:])
			c.edit(&r)
			f.k.qeReport = r.marshal()
			var err error
			if f.k.qeReportS, err = sign(f.k.pck, f.k.qeReport); err != nil {
				t.Fatal(err)
			}
			_, err = Verify(mustQuote(t, f, rd("qe")), f.Root())
			if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("Verify = %v, want ErrSignature about %s", err, c.text)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	s := newSim(f, Options{})
	good := mustQuote(f, s, rd("fuzz"))
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0))
	f.Add(good[:offChain])
	f.Add(intelSample(f))
	f.Add([]byte{})
	f.Add(make([]byte, 0x3FC))
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := Verify(raw, s.Root())
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrCertificate) && !errors.Is(err, ErrSignature) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		// Anything accepted was signed by the simulator's attestation key:
		// the signed bytes are ones the simulator made, and the parse
		// agrees with measure/quote.
		if !bytes.Equal(raw[:signedSizeOff], good[:signedSizeOff]) {
			t.Fatalf("accepted a header and body the simulator never signed")
		}
		p, err := quote.Parse(raw)
		if err != nil || !bytes.Equal(p.GetTdQuoteBody().GetReportData(), q.GetTdQuoteBody().GetReportData()) {
			t.Fatalf("accepted quote does not parse the same: %v", err)
		}
	})
}
