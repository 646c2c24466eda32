package sim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"fmt"
	"io"
	"sync"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/init/measured"
	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/imagehash"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// TDATTRIBUTES bits (TDX module ABI spec, "TD Attributes Definition"; the
// same bit numbers as Linux's arch/x86/include/asm/shared/tdx.h).
const (
	AttrDebug          uint64 = 1 << 0  // TUD.DEBUG: the host can read the TD
	AttrSEPTVEDisable  uint64 = 1 << 28 // SEC.SEPT_VE_DISABLE: Linux requires it outside debug
	AttrPKS            uint64 = 1 << 30 // SEC.PKS
	AttrPerfmon        uint64 = 1 << 63 // OTHER.PERFMON
	defaultXFAM        uint64 = 0x0000_0000_0006_1ae7
	defaultTDAttribute        = AttrSEPTVEDisable
)

// The simulated quoting enclave. Its identity is nobody's real enclave:
// MRSIGNER and MRENCLAVE are SHA-256 of fixed labels, so measure/quote's
// pin on Intel's TD_QE MRSIGNER refuses it too.
var (
	// QEVendorID is the header's QE vendor ID (Intel's QE has
	// 939a7233-f79c-4ca9-940a-0db3957f0607).
	QEVendorID = labelHash16("cocoon-sim/v1 QE vendor ID")
	// QEMRSigner is the simulated QE's MRSIGNER.
	QEMRSigner = sha256.Sum256([]byte("cocoon-sim/v1 quoting enclave signer (TEST, NOT INTEL)"))
	// QEMREnclave is the simulated QE's MRENCLAVE.
	QEMREnclave = sha256.Sum256([]byte("cocoon-sim/v1 quoting enclave"))
)

// QEProdID is the ISVPRODID of a TD quoting enclave (Intel's QE identity
// "TD_QE" has 2); the simulated QE uses the same.
const QEProdID = 2

func labelHash16(s string) [16]byte {
	h := sha256.Sum256([]byte(s))
	return [16]byte(h[:16])
}

// Body holds the TD quote body fields the simulator reports as configured.
// RTMR0-3 come from the registers and REPORTDATA from each Quote call.
type Body struct {
	TEETCBSVN      [16]byte
	MRSEAM         [48]byte
	MRSIGNERSEAM   [48]byte
	SEAMAttributes [8]byte
	TDAttributes   uint64 // written little-endian, as in the TD report
	XFAM           uint64 // written little-endian
	MRTD           [48]byte
	MRConfigID     [48]byte
	MROwner        [48]byte
	MROwnerConfig  [48]byte
}

// DefaultBody is a production-like TD: SEPT_VE_DISABLE set and debug clear,
// the XFAM of go-tdx-guest's sample production quote, an MRSEAM and MRTD
// that name the simulator (SHA-384 of labels), a zero MRSIGNERSEAM (an
// Intel-signed TDX module) and zero owner fields.
func DefaultBody() Body {
	b := Body{
		TEETCBSVN:    [16]byte{3, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		TDAttributes: defaultTDAttribute,
		XFAM:         defaultXFAM,
	}
	b.MRSEAM = sha512.Sum384([]byte("cocoon-sim/v1 TDX module"))
	b.MRTD = sha512.Sum384([]byte("cocoon-sim/v1 TD firmware"))
	return b
}

// Options configures a Simulator.
type Options struct {
	// Seed, when set, is the 32-byte secret all keys derive from: the same
	// seed gives the same root, chain and (signatures being RFC 6979
	// deterministic) the same quotes for the same inputs.
	Seed []byte
	// Rand, when Seed is nil, supplies the seed; nil means crypto/rand.
	Rand io.Reader
	// Body is the TD quote body; nil means DefaultBody().
	Body *Body
	// RTMR holds RTMR0-2 (RTMR3 starts at zero and follows Extend).
	RTMR [3][48]byte
	// EventLog is what EventLog returns: the firmware's CCEL, if the test
	// has one.
	EventLog []byte
}

// Simulator is an attest.Provider of kind attest.Sim. It is safe for
// concurrent use.
type Simulator struct {
	k    *keys
	body Body

	mu      sync.Mutex // keeps RTMR3 and the runtime log in step
	regs    *measured.Fake
	runtime runtime.Log
}

var _ attest.Provider = (*Simulator)(nil)

// New makes a simulator: keys and chain from the seed, registers from o.
func New(o Options) (*Simulator, error) {
	seed := o.Seed
	if seed == nil {
		r := o.Rand
		if r == nil {
			r = rand.Reader
		}
		seed = make([]byte, SeedSize)
		if _, err := io.ReadFull(r, seed); err != nil {
			return nil, fmt.Errorf("sim: reading the seed: %w", err)
		}
	}
	k, err := newKeys(seed)
	if err != nil {
		return nil, err
	}
	s := &Simulator{k: k, body: DefaultBody(), regs: measured.NewFake(eventlog.CCEL)}
	if o.Body != nil {
		s.body = *o.Body
	}
	for i, r := range o.RTMR {
		s.regs.Regs[i] = append([]byte(nil), r[:]...)
	}
	s.regs.Log = append([]byte(nil), o.EventLog...)
	return s, nil
}

// Root returns the simulator's TEST root certificate: what a verifier of
// simulated quotes pins (Verify's root).
func (s *Simulator) Root() *x509.Certificate { return s.k.root }

// Body returns the configured TD quote body fields.
func (s *Simulator) Body() Body { return s.body }

// Kind implements measured.Registers: TDX registers, CCEL.
func (s *Simulator) Kind() eventlog.Kind { return s.regs.Kind() }

// Read implements measured.Registers: RTMR0-3.
func (s *Simulator) Read() (map[int][]byte, error) { return s.regs.Read() }

// EventLog implements measured.Registers: Options.EventLog.
func (s *Simulator) EventLog() ([]byte, error) { return s.regs.EventLog() }

// Extend implements measured.Registers: RTMR3 = SHA-384(RTMR3 || digest),
// and the event joins the runtime log the evidence carries. Events that
// would make an invalid log (an unknown kind, anything after
// boot-complete) are refused, as the init's measured.Measure refuses them.
func (s *Simulator) Extend(e runtime.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := append(s.runtime[:len(s.runtime):len(s.runtime)], e)
	if err := next.Validate(); err != nil {
		return fmt.Errorf("sim: extend: %w", err)
	}
	if err := s.regs.Extend(e); err != nil {
		return fmt.Errorf("sim: extend: %w", err)
	}
	s.runtime = next
	return nil
}

// Measurements returns what the image hash covers in the quotes the
// simulator makes now (for building a policy that accepts them).
func (s *Simulator) Measurements() (imagehash.Measurements, error) {
	rtmr, _, err := s.snapshot()
	if err != nil {
		return imagehash.Measurements{}, err
	}
	m := imagehash.Measurements{MRTD: s.body.MRTD, RTMR: rtmr}
	m.TDAttributes = le64(s.body.TDAttributes)
	m.XFAM = le64(s.body.XFAM)
	return m, nil
}

func le64(v uint64) [8]byte {
	var b [8]byte
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

// snapshot reads RTMR0-3 and the runtime log together.
func (s *Simulator) snapshot() ([4][48]byte, runtime.Log, error) {
	var rtmr [4][48]byte
	s.mu.Lock()
	defer s.mu.Unlock()
	regs, err := s.regs.Read()
	if err != nil {
		return rtmr, nil, fmt.Errorf("sim: reading registers: %w", err)
	}
	for i := range rtmr {
		if len(regs[i]) != measurementSize {
			return rtmr, nil, fmt.Errorf("sim: RTMR%d is %d bytes, want %d", i, len(regs[i]), measurementSize)
		}
		copy(rtmr[i][:], regs[i])
	}
	return rtmr, append(runtime.Log(nil), s.runtime...), nil
}

// Quote implements attest.Provider: a quote v4 over the current registers
// and reportData, signed with the TEST attestation key, with the firmware
// and runtime logs.
func (s *Simulator) Quote(ctx context.Context, reportData [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	rtmr, log, err := s.snapshot()
	if err != nil {
		return nil, err
	}
	raw, err := s.quote(rtmr, reportData)
	if err != nil {
		return nil, err
	}
	e := &attest.Evidence{Kind: attest.Sim, Quote: raw}
	if fw, _ := s.regs.EventLog(); len(fw) > 0 {
		e.EventLog = append([]byte(nil), fw...)
	}
	if len(log) > 0 {
		if e.RuntimeLog, err = log.Marshal(); err != nil {
			return nil, fmt.Errorf("sim: runtime log: %w", err)
		}
	}
	return e, nil
}

// quote lays out and signs one quote.
func (s *Simulator) quote(rtmr [4][48]byte, reportData [reportDataSize]byte) ([]byte, error) {
	h := header{QEVendorID: s.k.qeVendor, UserData: s.k.userData}
	signed := append(h.marshal(), s.body.marshal(rtmr, reportData)...)
	sig, err := sign(s.k.ak, signed)
	if err != nil {
		return nil, err
	}
	return assemble(signed, sig, s.k.akPublic, s.k.qeReport, s.k.qeReportS, s.k.qeAuth, s.k.chainPEM)
}
