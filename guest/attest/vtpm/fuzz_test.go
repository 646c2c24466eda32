package vtpm

import (
	"bytes"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/cocoon-appliance/cocoon/guest/attest"
)

// FuzzParseAttest: ParseAttest never panics, fails only with ErrAttest, and
// agrees with go-tpm's independent decoder on everything it accepts: the
// same fields, and go-tpm writes back exactly the input bytes.
func FuzzParseAttest(f *testing.F) {
	for _, name := range recordings {
		ev, rd, _ := loadRecording(f, name)
		f.Add(ev.Quote)
		f.Add(ev.Quote[:len(ev.Quote)-1])
		f.Add(newForgery(rd).evidence(f).Quote)
	}
	f.Add([]byte{0xff, 0x54, 0x43, 0x47, 0x80, 0x18})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAttest(b)
		if err != nil {
			if !errors.Is(err, ErrAttest) || !errors.Is(err, attest.ErrEvidence) {
				t.Fatalf("error without ErrAttest: %v", err)
			}
			return
		}
		g, err := unmarshal[tpm2.TPMSAttest](b)
		if err != nil {
			t.Fatalf("ParseAttest accepted what go-tpm does not: %v", err)
		}
		q, err := g.Attested.Quote()
		if err != nil {
			t.Fatal(err)
		}
		var sel []Selection
		for _, s := range q.PCRSelect.PCRSelections {
			var pcrs []int
			for i, v := range s.PCRSelect {
				for bit := range 8 {
					if v&(1<<bit) != 0 {
						pcrs = append(pcrs, 8*i+bit)
					}
				}
			}
			sel = append(sel, Selection{Hash: s.Hash, PCRs: pcrs})
		}
		want := &Attest{
			QualifiedSigner: g.QualifiedSigner.Buffer, ExtraData: g.ExtraData.Buffer,
			Clock: g.ClockInfo.Clock, ResetCount: g.ClockInfo.ResetCount, RestartCount: g.ClockInfo.RestartCount,
			Safe: bool(g.ClockInfo.Safe), FirmwareVersion: g.FirmwareVersion,
			Selection: sel, PCRDigest: q.PCRDigest.Buffer,
		}
		if !reflect.DeepEqual(a, want) {
			t.Fatalf("ParseAttest %+v\ngo-tpm      %+v", a, want)
		}
	})
}

// FuzzVerify: Verify never panics, and mutated evidence never verifies as
// anything but the recorded evidence: if it verifies, the quote, the AK,
// the PCR values and the report data are the recorded ones. The PCR map is
// encoded as records of an index byte and a 32-byte value (the last one may
// be short).
func FuzzVerify(f *testing.F) {
	type good struct {
		ev *attest.Evidence
		rd [attest.ReportDataSize]byte
	}
	var goods []good
	for _, name := range recordings {
		ev, rd, other := loadRecording(f, name)
		goods = append(goods, good{ev, rd})
		pcrs := encodePCRs(ev.PCRs)
		f.Add(ev.Quote, ev.Signature, ev.AKPublic, pcrs, rd[:])
		f.Add(ev.Quote, ev.Signature, other, pcrs, rd[:])
		f.Add(ev.Quote, ev.Signature, ev.AKPublic, pcrs[:len(pcrs)-1], rd[:])
	}
	f.Fuzz(func(t *testing.T, quote, sig, ak, pcrs, rdb []byte) {
		var rd [attest.ReportDataSize]byte
		copy(rd[:], rdb)
		ev := &attest.Evidence{Kind: attest.VTPM, Quote: quote, Signature: sig, AKPublic: ak, PCRs: decodePCRs(pcrs)}
		v, err := Verify(ev, rd)
		if err != nil {
			if v != nil {
				t.Fatal("result with an error")
			}
			return
		}
		for _, g := range goods {
			if bytes.Equal(quote, g.ev.Quote) && bytes.Equal(ak, g.ev.AKPublic) && rd == g.rd &&
				maps.EqualFunc(ev.PCRs, g.ev.PCRs, bytes.Equal) {
				return
			}
		}
		t.Fatalf("mutated evidence verified: PCRs %v", slices.Sorted(maps.Keys(v.PCRs)))
	})
}

func encodePCRs(m map[int][]byte) []byte {
	var b []byte
	for _, i := range slices.Sorted(maps.Keys(m)) {
		b = append(append(b, byte(i)), m[i]...)
	}
	return b
}

func decodePCRs(b []byte) map[int][]byte {
	m := map[int][]byte{}
	for len(b) > 0 {
		n := min(len(b)-1, 32)
		m[int(b[0])] = b[1 : 1+n]
		b = b[1+n:]
	}
	return m
}
