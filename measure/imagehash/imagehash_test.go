package imagehash

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	pb "github.com/google/go-tdx-guest/proto/tdx"
)

func fill(b byte) (r [48]byte) {
	for i := range r {
		r[i] = b
	}
	return r
}

// kat is the known-answer input: SEPT_VE_DISABLE set (TDATTRIBUTES bit 28),
// XFAM 0x618e7, MRTD all 0x11, RTMR0-3 all 0xa0, 0xa1, 0xa2, 0xa3.
var kat = Measurements{
	TDAttributes: [8]byte{0x00, 0x00, 0x00, 0x10},
	XFAM:         [8]byte{0xe7, 0x18, 0x06},
	MRTD:         fill(0x11),
	RTMR:         [4][48]byte{fill(0xa0), fill(0xa1), fill(0xa2), fill(0xa3)},
}

// katHash was computed independently of this package with:
//
//	{ printf 'cocoon-image-hash/v1\0'
//	  printf '\000\000\000\020\000\000\000\000'    # TDATTRIBUTES
//	  printf '\347\030\006\000\000\000\000\000'    # XFAM
//	  for o in 021 240 241 242 243; do             # MRTD, RTMR0..3
//	    head -c 48 /dev/zero | tr '\000' "\\$o"; done; } | sha256sum
const katHash = "5b27d01d72803c54580552b936e25b531221b643d0c11a6237c51246d776dbeb"

func TestImageHashKnownAnswer(t *testing.T) {
	h := kat.ImageHash()
	if got := hex.EncodeToString(h[:]); got != katHash {
		t.Fatalf("ImageHash() = %s, want %s", got, katHash)
	}
}

func TestPreimageLayout(t *testing.T) {
	p := kat.Preimage()
	if len(p) != PreimageSize || PreimageSize != 277 {
		t.Fatalf("preimage is %d bytes (PreimageSize %d), want 277", len(p), PreimageSize)
	}
	// Offsets as in the table of doc.go.
	for _, f := range []struct {
		name     string
		off, len int
		want     []byte
	}{
		{"separator", 0, 21, []byte(DomainSeparator)},
		{"TDATTRIBUTES", 21, 8, kat.TDAttributes[:]},
		{"XFAM", 29, 8, kat.XFAM[:]},
		{"MRTD", 37, 48, kat.MRTD[:]},
		{"RTMR0", 85, 48, kat.RTMR[0][:]},
		{"RTMR1", 133, 48, kat.RTMR[1][:]},
		{"RTMR2", 181, 48, kat.RTMR[2][:]},
		{"RTMR3", 229, 48, kat.RTMR[3][:]},
	} {
		if got := p[f.off : f.off+f.len]; !bytes.Equal(got, f.want) {
			t.Errorf("%s at %d = %x, want %x", f.name, f.off, got, f.want)
		}
	}
}

// Every covered byte must change the hash; spot-check the last byte of each
// field (a field dropped or truncated in Preimage would not).
func TestEveryFieldCounts(t *testing.T) {
	base := kat.ImageHash()
	mods := map[string]func(m *Measurements){
		"TDAttributes": func(m *Measurements) { m.TDAttributes[7] ^= 1 },
		"XFAM":         func(m *Measurements) { m.XFAM[7] ^= 1 },
		"MRTD":         func(m *Measurements) { m.MRTD[47] ^= 1 },
		"RTMR0":        func(m *Measurements) { m.RTMR[0][47] ^= 1 },
		"RTMR1":        func(m *Measurements) { m.RTMR[1][47] ^= 1 },
		"RTMR2":        func(m *Measurements) { m.RTMR[2][47] ^= 1 },
		"RTMR3":        func(m *Measurements) { m.RTMR[3][47] ^= 1 },
	}
	for name, mod := range mods {
		m := kat
		mod(&m)
		if m.ImageHash() == base {
			t.Errorf("changing %s left the image hash unchanged", name)
		}
	}
}

func body(m Measurements) *pb.TDQuoteBody {
	b := &pb.TDQuoteBody{
		TdAttributes:  bytes.Clone(m.TDAttributes[:]),
		Xfam:          bytes.Clone(m.XFAM[:]),
		MrTd:          bytes.Clone(m.MRTD[:]),
		MrConfigId:    make([]byte, 48),
		MrOwner:       make([]byte, 48),
		MrOwnerConfig: make([]byte, 48),
		ReportData:    make([]byte, 64),
	}
	for i := range m.RTMR {
		b.Rtmrs = append(b.Rtmrs, bytes.Clone(m.RTMR[i][:]))
	}
	return b
}

func TestFromQuote(t *testing.T) {
	q := &pb.QuoteV4{TdQuoteBody: body(kat)}
	m, err := FromQuote(q)
	if err != nil {
		t.Fatal(err)
	}
	if m != kat {
		t.Fatalf("FromQuote = %+v, want %+v", m, kat)
	}
	// Owner-set fields and report data do not reach the hash.
	q.TdQuoteBody.MrOwner[0] = 1
	q.TdQuoteBody.MrConfigId[0] = 1
	q.TdQuoteBody.MrOwnerConfig[0] = 1
	q.TdQuoteBody.ReportData[0] = 1
	m2, err := FromQuote(q)
	if err != nil {
		t.Fatal(err)
	}
	if m2.ImageHash() != kat.ImageHash() {
		t.Error("MROWNER/MRCONFIGID/MROWNERCONFIG/REPORTDATA changed the image hash")
	}
}

func TestFromQuoteMalformed(t *testing.T) {
	for name, mod := range map[string]func(b *pb.TDQuoteBody){
		"short MRTD":      func(b *pb.TDQuoteBody) { b.MrTd = b.MrTd[:47] },
		"long XFAM":       func(b *pb.TDQuoteBody) { b.Xfam = append(b.Xfam, 0) },
		"no TDATTRIBUTES": func(b *pb.TDQuoteBody) { b.TdAttributes = nil },
		"three RTMRs":     func(b *pb.TDQuoteBody) { b.Rtmrs = b.Rtmrs[:3] },
		"short RTMR2":     func(b *pb.TDQuoteBody) { b.Rtmrs[2] = b.Rtmrs[2][:1] },
	} {
		b := body(kat)
		mod(b)
		if _, err := FromQuote(&pb.QuoteV4{TdQuoteBody: b}); !errors.Is(err, ErrQuote) {
			t.Errorf("%s: FromQuote error = %v, want ErrQuote", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	for _, q := range []*pb.QuoteV4{nil, {}} {
		if _, err := FromQuote(q); !errors.Is(err, ErrQuote) {
			t.Errorf("FromQuote(%v) error = %v, want ErrQuote", q, err)
		}
	}
}
