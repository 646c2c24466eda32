package gpu_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
	"github.com/cocoon-appliance/cocoon/guest/gpu/gputest"
)

// TestFWIDBinding re-issues the synthetic leaf with well-formed, malformed
// and mismatched 2.23.133.5.4.1 extensions.
func TestFWIDBinding(t *testing.T) {
	sha384 := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	sha256OID := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	var nonce [gpu.NonceSize]byte
	cases := []struct {
		name     string
		ext      func(s *gputest.SyntheticGPU) *pkix.Extension
		noReport bool // the report carries no FWID
		want     error
	}{
		{"well formed", func(s *gputest.SyntheticGPU) *pkix.Extension {
			return ext(t, 1, s.Chain[1].RawSubjectPublicKeyInfo, sha384, s.FWID)
		}, false, nil},
		{"leaf without extension, report with FWID", func(*gputest.SyntheticGPU) *pkix.Extension { return nil }, false, gpu.ErrChain},
		{"neither has one", func(*gputest.SyntheticGPU) *pkix.Extension { return nil }, true, nil},
		{"device ID is not the issuer's key", func(s *gputest.SyntheticGPU) *pkix.Extension {
			return ext(t, 1, s.Chain[2].RawSubjectPublicKeyInfo, sha384, s.FWID)
		}, false, gpu.ErrChain},
		{"device ID checked without FWID in report", func(s *gputest.SyntheticGPU) *pkix.Extension {
			return ext(t, 1, s.Chain[2].RawSubjectPublicKeyInfo, sha384, s.FWID)
		}, true, gpu.ErrChain},
		{"version 2", func(s *gputest.SyntheticGPU) *pkix.Extension {
			return ext(t, 2, s.Chain[1].RawSubjectPublicKeyInfo, sha384, s.FWID)
		}, false, gpu.ErrChain},
		{"SHA-256 FWID", func(s *gputest.SyntheticGPU) *pkix.Extension {
			d := sha256.Sum256(s.FWID)
			return ext(t, 1, s.Chain[1].RawSubjectPublicKeyInfo, sha256OID, d[:])
		}, false, gpu.ErrChain},
		{"trailing bytes", func(s *gputest.SyntheticGPU) *pkix.Extension {
			e := ext(t, 1, s.Chain[1].RawSubjectPublicKeyInfo, sha384, s.FWID)
			e.Value = append(e.Value, 0)
			return e
		}, false, gpu.ErrChain},
		{"DiceTcbInfo-like content", func(*gputest.SyntheticGPU) *pkix.Extension {
			v, _ := asn1.Marshal(struct{ Vendor string }{"NVIDIA"})
			return &pkix.Extension{Id: asn1.ObjectIdentifier{2, 23, 133, 5, 4, 1}, Value: v}
		}, false, gpu.ErrChain},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := gputest.NewSynthetic(rand.Reader, recordedNow)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.ReissueLeaf(c.ext(s)); err != nil {
				t.Fatal(err)
			}
			if c.noReport {
				s.FWID = nil
			}
			report, err := s.Report(nonce)
			if err != nil {
				t.Fatal(err)
			}
			v, err := gpu.Verify(gpu.Evidence{Report: report, CertChain: s.ChainPEM},
				gpu.Expect{Nonce: nonce, Roots: s.Roots, Now: recordedNow})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if err == nil && !bytes.Equal(v.FWID, s.FWID) {
				t.Errorf("FWID %x, want %x", v.FWID, s.FWID)
			}
		})
	}
}

func ext(t *testing.T, version int, deviceID []byte, alg asn1.ObjectIdentifier, fwid []byte) *pkix.Extension {
	t.Helper()
	e, err := gputest.FWIDExtension(version, deviceID, alg, fwid)
	if err != nil {
		t.Fatal(err)
	}
	return &e
}
