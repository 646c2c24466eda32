package quote

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"
	"github.com/google/go-tdx-guest/verify/trust"
)

// Options says how to verify. The zero value is not usable: Now is required.
type Options struct {
	// Now is the time certificates and collateral must be valid at. It is
	// never read from the system clock here; pass time.Now() explicitly if
	// that is what you mean.
	Now time.Time
	// Collateral, when set, is checked offline: go-tdx-guest reads it
	// through a getter that only serves these bytes, and Getter is not used.
	Collateral *Collateral
	// Getter fetches collateral from Intel's PCS when Collateral is nil. Nil
	// means offline: the quote's signatures and certificate chain are checked,
	// and there is no TCB or revocation check.
	Getter trust.HTTPSGetter

	// lenientCollateral lets tests feed go-tdx-guest collateral with
	// unsigned members (to compare it with Verifier on edited values).
	lenientCollateral bool
}

var errNoClock = errors.New("quote: Options.Now is zero; pass the verification time")

// Parse decodes a raw quote without verifying it, for tools and for evidence
// that cannot be verified (the simulator). Errors are ErrMalformed.
func Parse(raw []byte) (*pb.QuoteV4, error) {
	if len(raw) < headerSize {
		return nil, fmt.Errorf("quote: %w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(raw), headerSize)
	}
	if v := binary.LittleEndian.Uint16(raw[0:2]); v != version4 {
		return nil, fmt.Errorf("quote: %w: version %d, want %d (TDX DCAP quote v4)", ErrMalformed, v, version4)
	}
	if t := binary.LittleEndian.Uint32(raw[4:8]); t != teeTypeTDX {
		return nil, fmt.Errorf("quote: %w: TEE type %#x, want %#x (TDX)", ErrMalformed, t, teeTypeTDX)
	}
	if err := checkLayout(raw); err != nil {
		return nil, fmt.Errorf("quote: %w: %w", ErrMalformed, err)
	}
	a, err := quoteToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("quote: %w: %w", ErrMalformed, err)
	}
	q, ok := a.(*pb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("quote: %w: parsed as %T, want a v4 quote", ErrMalformed, a)
	}
	return q, nil
}

// quoteToProto is abi.QuoteToProto, with a panic turned into an error:
// quotes come from machines we do not trust, and checkLayout may not cover
// every path through go-tdx-guest's parser.
func quoteToProto(raw []byte) (q any, err error) {
	defer func() {
		if r := recover(); r != nil {
			q, err = nil, fmt.Errorf("go-tdx-guest parser panicked: %v", r)
		}
	}()
	return abi.QuoteToProto(raw)
}

// Verify parses raw and checks that it is genuine (see the package
// documentation for what that covers and for the errors). The returned
// quote's measurements can then be validated against a policy. Verify is
// safe for concurrent use.
func Verify(raw []byte, o Options) (*pb.QuoteV4, error) {
	if o.Now.IsZero() {
		return nil, errNoClock
	}
	q, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	// A fresh verify.Options per call: go-tdx-guest stores its working
	// state (chain, collateral) in it.
	vo := &verify.Options{Now: o.Now, TrustedRoots: intelRoots()}
	var strict *strictGetter
	switch {
	case o.Collateral != nil:
		g, err := o.Collateral.getter()
		if err != nil {
			return nil, err
		}
		if !o.lenientCollateral {
			if err := checkSignedMembers(o.Collateral.TCBInfo, "tcbInfo", "signature"); err != nil {
				return nil, fmt.Errorf("Collateral.TCBInfo: %w", err)
			}
			if err := checkSignedMembers(o.Collateral.QEIdentity, "enclaveIdentity", "signature"); err != nil {
				return nil, fmt.Errorf("Collateral.QEIdentity: %w", err)
			}
		}
		vo.GetCollateral = true
		vo.CheckRevocations = g.crls
		vo.Getter = g
	case o.Getter != nil:
		vo.GetCollateral = true
		vo.CheckRevocations = true
		vo.Getter = o.Getter
		if !o.lenientCollateral {
			strict = &strictGetter{inner: o.Getter}
			vo.Getter = strict
		}
	}
	if err := verify.TdxQuote(q, vo); err != nil {
		if strict != nil && strict.err != nil {
			return nil, strict.err
		}
		return nil, classify(err, o.Now)
	}
	if !vo.GetCollateral {
		if err := checkQE(q); err != nil {
			return nil, err
		}
	}
	q.ExtraBytes = nil
	return q, nil
}

// Intel's TD quoting enclave, as Intel's QE identity (PCS
// /tdx/certification/v4/qe/identity, "id": "TD_QE") describes it.
var intelQEMRSigner, _ = hex.DecodeString("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5")

const (
	intelTDQEProdID = 2
	sgxAttrDebug    = 0x02 // SGX enclave ATTRIBUTES.DEBUG
)

// checkQE pins the quoting enclave when there is no QE identity collateral:
// the PCK key certifies the report of any enclave the platform lets ask for
// it (on Flexible Launch Control platforms the owner decides which), so
// without this a genuine platform could run its own "quoting enclave" and
// sign any TD report. With collateral, go-tdx-guest compares the QE report
// with Intel's signed QE identity instead (and this pin would only get in
// the way of a future QE signer that the collateral announces).
func checkQE(q *pb.QuoteV4) error {
	r := q.GetSignedData().GetCertificationData().GetQeReportCertificationData().GetQeReport()
	if got := r.GetMrSigner(); !bytes.Equal(got, intelQEMRSigner) {
		return fmt.Errorf("quote: %w: QE report mrsigner = %x, want %x (Intel's TD quoting enclave)", ErrSignature, got, intelQEMRSigner)
	}
	if got := r.GetIsvProdId(); got != intelTDQEProdID {
		return fmt.Errorf("quote: %w: QE report isvprodid = %d, want %d (TD_QE)", ErrSignature, got, intelTDQEProdID)
	}
	if a := r.GetAttributes(); len(a) == 0 || a[0]&sgxAttrDebug != 0 {
		return fmt.Errorf("quote: %w: QE report attributes = %x, want DEBUG (bit 1) clear", ErrSignature, a)
	}
	return nil
}
