package imagehash

import (
	"crypto/sha256"
	"errors"
	"fmt"

	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// DomainSeparator starts every preimage; see the package documentation.
const DomainSeparator = "cocoon-image-hash/v1\x00"

// PreimageSize is the length of the buffer that is hashed.
const PreimageSize = len(DomainSeparator) + 8 + 8 + 48 + 4*48

// Measurements are the TD report fields the image hash covers, as the raw
// bytes of the report (TDATTRIBUTES and XFAM little-endian, as the TDX
// module writes them).
type Measurements struct {
	TDAttributes, XFAM [8]byte
	MRTD               [48]byte
	RTMR               [4][48]byte
}

// ErrQuote reports a quote whose TD quote body lacks a field, or has one of
// the wrong length.
var ErrQuote = errors.New("imagehash: malformed TD quote body")

// Preimage returns the exact bytes that ImageHash hashes (layout in the
// package documentation).
func (m Measurements) Preimage() []byte {
	b := make([]byte, 0, PreimageSize)
	b = append(b, DomainSeparator...)
	b = append(b, m.TDAttributes[:]...)
	b = append(b, m.XFAM[:]...)
	b = append(b, m.MRTD[:]...)
	for i := range m.RTMR {
		b = append(b, m.RTMR[i][:]...)
	}
	return b
}

// ImageHash returns SHA-256 of the preimage.
func (m Measurements) ImageHash() [32]byte {
	return sha256.Sum256(m.Preimage())
}

// FromQuote copies the measured fields out of a parsed quote (go-tdx-guest's
// abi.QuoteToProto, or measure/quote.Verify). It does not verify the quote:
// an image hash from an unverified quote proves nothing.
func FromQuote(q *pb.QuoteV4) (Measurements, error) {
	var m Measurements
	b := q.GetTdQuoteBody()
	if b == nil {
		return m, fmt.Errorf("%w: no TD quote body", ErrQuote)
	}
	if err := copyField(m.TDAttributes[:], b.GetTdAttributes(), "TDATTRIBUTES"); err != nil {
		return m, err
	}
	if err := copyField(m.XFAM[:], b.GetXfam(), "XFAM"); err != nil {
		return m, err
	}
	if err := copyField(m.MRTD[:], b.GetMrTd(), "MRTD"); err != nil {
		return m, err
	}
	rtmrs := b.GetRtmrs()
	if len(rtmrs) != len(m.RTMR) {
		return m, fmt.Errorf("%w: %d RTMRs, want %d", ErrQuote, len(rtmrs), len(m.RTMR))
	}
	for i := range m.RTMR {
		if err := copyField(m.RTMR[i][:], rtmrs[i], fmt.Sprintf("RTMR%d", i)); err != nil {
			return m, err
		}
	}
	return m, nil
}

func copyField(dst, src []byte, name string) error {
	if len(src) != len(dst) {
		return fmt.Errorf("%w: %s is %d bytes, want %d", ErrQuote, name, len(src), len(dst))
	}
	copy(dst, src)
	return nil
}
