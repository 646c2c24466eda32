package gpu_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
	"github.com/cocoon-appliance/cocoon/guest/gpu/gputest"
)

func TestVerifyRecorded(t *testing.T) {
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			report, chain, nonce := s.load(t)
			// Roots nil: the pinned NVIDIA Device Identity CA.
			v, err := gpu.Verify(gpu.Evidence{Report: report, CertChain: chain}, s.expect(nonce))
			if err != nil {
				t.Fatal(err)
			}
			if len(v.Chain) != 5 || v.Chain[0].Subject.CommonName != "GH100 A01 GSP FMC LF" || v.Chain[4].Subject.CommonName != "NVIDIA Device Identity CA" {
				t.Errorf("chain %v ... %v", v.Chain[0].Subject, v.Chain[len(v.Chain)-1].Subject)
			}
			if hex.EncodeToString(v.FWID) != s.fwid {
				t.Errorf("FWID %x, want %s", v.FWID, s.fwid)
			}
			if v.DriverVersion != s.driver {
				t.Errorf("driver %q, want %q", v.DriverVersion, s.driver)
			}
			// Both leaves carry an FWID; only the newer report does.
			fwid, _, ok, err := gpu.CertFWID(v.Chain[0])
			if err != nil || !ok {
				t.Fatalf("leaf FWID: %v %v", ok, err)
			}
			if s.fwid != "" && !bytes.Equal(fwid, v.FWID) {
				t.Errorf("leaf FWID %x, report %x", fwid, v.FWID)
			}
		})
	}
}

func TestVerifyRecordedFailures(t *testing.T) {
	hopper, other := samples[0], samples[1]
	report, chain, nonce := hopper.load(t)
	otherReport, otherChain, _ := other.load(t)
	certs, err := gpu.ParseCertChain(chain)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(cs ...*x509.Certificate) []byte {
		var b []byte
		for _, c := range cs {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		return b
	}
	synth, err := gputest.NewSynthetic(rand.Reader, recordedNow)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(off int) []byte {
		b := bytes.Clone(report)
		if off < 0 {
			off += len(b)
		}
		b[off] ^= 0x01
		return b
	}
	opaqueOff := 45 + 3520 + gpu.NonceSize + 2
	cases := []struct {
		name   string
		ev     gpu.Evidence
		expect func(*gpu.Expect)
		want   error
	}{
		{"other nonce", gpu.Evidence{Report: report, CertChain: chain}, func(e *gpu.Expect) { e.Nonce[0] ^= 1 }, gpu.ErrNonce},
		{"request nonce flipped", gpu.Evidence{Report: flip(4), CertChain: chain}, nil, gpu.ErrNonce},
		{"measurement flipped", gpu.Evidence{Report: flip(45 + 7 + 10), CertChain: chain}, nil, gpu.ErrSignature},
		{"responder nonce flipped", gpu.Evidence{Report: flip(45 + 3520), CertChain: chain}, nil, gpu.ErrSignature},
		{"opaque flipped", gpu.Evidence{Report: flip(opaqueOff + 10), CertChain: chain}, nil, gpu.ErrSignature},
		{"signature r flipped", gpu.Evidence{Report: flip(-gpu.SignatureSize + 3), CertChain: chain}, nil, gpu.ErrSignature},
		{"signature s flipped", gpu.Evidence{Report: flip(-1), CertChain: chain}, nil, gpu.ErrSignature},
		{"another GPU's chain", gpu.Evidence{Report: report, CertChain: otherChain}, nil, gpu.ErrSignature},
		{"another GPU's report", gpu.Evidence{Report: otherReport, CertChain: chain}, func(e *gpu.Expect) {
			copy(e.Nonce[:], mustHex(t, other.nonce))
		}, gpu.ErrSignature},
		{"synthetic roots", gpu.Evidence{Report: report, CertChain: chain}, func(e *gpu.Expect) { e.Roots = synth.Roots }, gpu.ErrChain},
		{"before the root's validity", gpu.Evidence{Report: report, CertChain: chain}, func(e *gpu.Expect) {
			e.Now = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
		}, gpu.ErrChain},
		{"no time", gpu.Evidence{Report: report, CertChain: chain}, func(e *gpu.Expect) { e.Now = time.Time{} }, gpu.ErrChain},
		{"root left out", gpu.Evidence{Report: report, CertChain: pemOf(certs[:4]...)}, nil, gpu.ErrChain},
		{"intermediate left out", gpu.Evidence{Report: report, CertChain: pemOf(certs[0], certs[2], certs[3], certs[4])}, nil, gpu.ErrChain},
		{"intermediates swapped", gpu.Evidence{Report: report, CertChain: pemOf(certs[0], certs[1], certs[3], certs[2], certs[4])}, nil, gpu.ErrChain},
		{"leaf only", gpu.Evidence{Report: report, CertChain: pemOf(certs[0])}, nil, gpu.ErrChain},
		{"root appended twice", gpu.Evidence{Report: report, CertChain: pemOf(append(certs, certs[4])...)}, nil, gpu.ErrChain},
		{"junk before the chain", gpu.Evidence{Report: report, CertChain: append([]byte("x\n"), chain...)}, nil, gpu.ErrChain},
		{"junk after the chain", gpu.Evidence{Report: report, CertChain: append(bytes.Clone(chain), "x"...)}, nil, gpu.ErrChain},
		{"private key block", gpu.Evidence{Report: report, CertChain: append(bytes.Clone(chain), "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"...)}, nil, gpu.ErrChain},
		{"driver differs", gpu.Evidence{Report: report, CertChain: chain}, func(e *gpu.Expect) { e.DriverVersion = "550.90.08" }, gpu.ErrVersionMismatch},
		{"VBIOS differs", gpu.Evidence{Report: report, CertChain: chain}, func(e *gpu.Expect) { e.VBIOSVersion = "96.00.9F.00.02" }, gpu.ErrVersionMismatch},
		{"report truncated", gpu.Evidence{Report: report[:100], CertChain: chain}, nil, gpu.ErrReport},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := hopper.expect(nonce)
			if c.expect != nil {
				c.expect(&want)
			}
			_, err := gpu.Verify(c.ev, want)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// TestVerifyNVMLBuffer: NVML returns the chain in a fixed buffer; NUL
// padding after the last certificate is not an error.
func TestVerifyNVMLBuffer(t *testing.T) {
	report, chain, nonce := samples[0].load(t)
	padded := append(bytes.Clone(chain), make([]byte, 100)...)
	if _, err := gpu.Verify(gpu.Evidence{Report: report, CertChain: padded}, samples[0].expect(nonce)); err != nil {
		t.Fatal(err)
	}
}

func TestVerifySynthetic(t *testing.T) {
	now := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	var nonce [gpu.NonceSize]byte
	copy(nonce[:], "SYNTHETIC nonce for the gputest.")
	cases := []struct {
		name string
		edit func(*gputest.SyntheticGPU, *gpu.Expect)
		want error
	}{
		{"valid", func(*gputest.SyntheticGPU, *gpu.Expect) {}, nil},
		{"pinned NVIDIA root refuses it", func(_ *gputest.SyntheticGPU, e *gpu.Expect) { e.Roots = nil }, gpu.ErrChain},
		{"no FWID in report", func(s *gputest.SyntheticGPU, _ *gpu.Expect) { s.FWID = nil }, nil},
		{"FWID differs from leaf", func(s *gputest.SyntheticGPU, _ *gpu.Expect) {
			s.FWID = bytes.Repeat([]byte{0xab}, gpu.DigestSize)
		}, gpu.ErrChain},
		{"expired", func(_ *gputest.SyntheticGPU, e *gpu.Expect) { e.Now = now.Add(400 * 24 * time.Hour) }, gpu.ErrChain},
		{"SHA-256 sized measurement", func(s *gputest.SyntheticGPU, _ *gpu.Expect) {
			s.Blocks[0].Value = make([]byte, 32)
		}, gpu.ErrReport},
		{"signed other nonce", func(s *gputest.SyntheticGPU, _ *gpu.Expect) {
			s.Mutate = func(r *gpu.Report) { r.Request.Nonce[31] ^= 0xff }
		}, gpu.ErrNonce},
		{"VBIOS differs", func(s *gputest.SyntheticGPU, _ *gpu.Expect) { s.VBIOS = "96.00.9f.00.02" }, gpu.ErrVersionMismatch},
		{"no driver version", func(s *gputest.SyntheticGPU, _ *gpu.Expect) {
			s.Mutate = func(r *gpu.Report) {
				op, _ := gpu.ParseOpaque(r.Response.Opaque)
				r.Response.Opaque = op[1:].Marshal()
			}
		}, gpu.ErrReport},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := gputest.NewSynthetic(rand.Reader, now)
			if err != nil {
				t.Fatal(err)
			}
			want := gpu.Expect{Nonce: nonce, Roots: s.Roots, Now: now, DriverVersion: "550.90.07", VBIOSVersion: "96.00.9F.00.01"}
			c.edit(s, &want)
			report, err := s.Report(nonce)
			if err != nil {
				t.Fatal(err)
			}
			_, err = gpu.Verify(gpu.Evidence{Report: report, CertChain: s.ChainPEM}, want)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestNVIDIARoot(t *testing.T) {
	roots, err := gpu.NVIDIARoots()
	if err != nil {
		t.Fatal(err)
	}
	// The pinned root is the last certificate of both recorded chains, and
	// verifies itself.
	for _, s := range samples {
		_, chain, _ := s.load(t)
		certs, err := gpu.ParseCertChain(chain)
		if err != nil {
			t.Fatal(err)
		}
		root := certs[len(certs)-1]
		if _, err := root.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: recordedNow}); err != nil {
			t.Errorf("%s: root not in the pinned pool: %v", s.name, err)
		}
		if sum := gpu.ChainSHA256(certs[len(certs)-1:]); hex.EncodeToString(sum[:]) != gpu.NVIDIARootSHA256 {
			t.Errorf("%s: root SHA-256 %x, pinned %s", s.name, sum, gpu.NVIDIARootSHA256)
		}
	}
}
