package vtpm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/init/measured"
	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// DefaultPCRs is the quoted selection: the firmware and boot PCRs the TCG
// PC Client Platform Firmware Profile ("PCR usage") assigns (0-7: firmware,
// configuration, option ROMs, boot manager, GPT, secure boot; 8-9: the
// kernel command line and initrd as the kernel's EFI stub and OVMF measure
// them) and PCR 15, where the init extends runtime events (measure/runtime).
var DefaultPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, runtime.PCR}

// KeyAlg is the attestation key's algorithm.
type KeyAlg int

// Key algorithms. ECC P-256 is the default: every TPM 2.0 has it and a
// primary ECC key is derived in milliseconds, where RSA-2048 needs a prime
// search each time the primary is created.
const (
	ECCP256 KeyAlg = iota
	RSA2048
)

// Options configure a Provider. The zero value quotes DefaultPCRs with an
// ECC P-256 AK under the endorsement hierarchy (empty authorization).
type Options struct {
	// PCRs to quote, from the SHA-256 bank; DefaultPCRs when empty.
	PCRs []int
	// Hierarchy holds the AK: tpm2.TPMRHEndorsement (default) or
	// tpm2.TPMRHOwner. HierarchyAuth is its authorization value.
	Hierarchy     tpm2.TPMHandle
	HierarchyAuth []byte
	// Key is the AK's algorithm.
	Key KeyAlg
	// LogPath is the firmware's TCG event log (measured.TPMLogPath when
	// empty); RuntimeLogPath the init's runtime log
	// (measured.RuntimeLogPath when empty).
	LogPath, RuntimeLogPath string
}

// maxQuoteTries bounds the retries when a PCR changes between TPM2_Quote
// and TPM2_PCR_Read (a concurrent extend): the values read must hash to
// the quoted digest or the evidence would not verify.
const maxQuoteTries = 3

// Provider quotes with a TPM 2.0 and gives access to its PCRs through
// init/measured.TPM. It is safe for concurrent use: TPM commands are
// serialized.
type Provider struct {
	mu      sync.Mutex
	t       transport.TPM
	regs    *measured.TPM
	closer  io.Closer
	sel     []int
	ak      tpm2.NamedHandle
	akPub   []byte
	runtime string
}

// Open opens the machine's TPM (/dev/tpmrm0 or /dev/tpm0) and creates the
// AK. Errors are attest.ErrUnavailable when there is no TPM.
func Open(o Options) (*Provider, error) {
	regs, c, err := measured.OpenTPM()
	if err != nil {
		return nil, unavailable(err)
	}
	p, err := New(regs.T, o)
	if err != nil {
		c.Close()
		return nil, err
	}
	p.closer = c
	return p, nil
}

// New creates the AK on t and returns a Provider. The AK is a primary key
// from a fixed template (akTemplate), so each call on the same TPM yields
// the same key, as long as the hierarchy's seed is not changed
// (TPM2_Clear changes the owner seed, TPM2_ChangeEPS the endorsement seed).
// Call Close to flush it.
func New(t transport.TPM, o Options) (*Provider, error) {
	sel, err := selection(o.PCRs)
	if err != nil {
		return nil, err
	}
	h := o.Hierarchy
	if h == 0 {
		h = tpm2.TPMRHEndorsement
	}
	if h != tpm2.TPMRHEndorsement && h != tpm2.TPMRHOwner {
		return nil, fmt.Errorf("vtpm: hierarchy %#x, want the endorsement or owner hierarchy", uint32(h))
	}
	tmpl, err := akTemplate(o.Key)
	if err != nil {
		return nil, err
	}
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: h, Auth: tpm2.PasswordAuth(o.HierarchyAuth)},
		InPublic:      tpm2.New2B(tmpl),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("vtpm: TPM2_CreatePrimary of the AK under %#x: %w", uint32(h), err)
	}
	p := &Provider{
		t:       t,
		regs:    &measured.TPM{T: t, LogPath: o.LogPath},
		sel:     sel,
		ak:      tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name},
		akPub:   bytes.Clone(rsp.OutPublic.Bytes()),
		runtime: o.RuntimeLogPath,
	}
	// The TPM's public area must be the attestation key Verify accepts,
	// under the name the TPM reports for it.
	k, err := parseAK(p.akPub)
	if err == nil && !bytes.Equal(k.name, rsp.Name.Buffer) {
		err = fmt.Errorf("vtpm: the TPM names the AK %x, its public area hashes to %x", rsp.Name.Buffer, k.name)
	}
	if err != nil {
		_ = p.flush()
		return nil, err
	}
	return p, nil
}

// selection validates the PCR list: SHA-256 PCRs 0-23 (the 24 PCRs a PC
// Client TPM has), no repeats; returned sorted.
func selection(pcrs []int) ([]int, error) {
	if len(pcrs) == 0 {
		pcrs = DefaultPCRs
	}
	s := slices.Clone(pcrs)
	slices.Sort(s)
	for i, v := range s {
		if v < 0 || v > 23 {
			return nil, fmt.Errorf("vtpm: PCR %d out of range 0-23", v)
		}
		if i > 0 && s[i-1] == v {
			return nil, fmt.Errorf("vtpm: PCR %d selected twice", v)
		}
	}
	return s, nil
}

// akTemplate is the AK's public template (TPM 2.0 Part 2 §12.2.4): a
// restricted signing key (Part 1, "restricted" attribute) that cannot leave the TPM,
// generated inside it, with an empty authorization value and no policy,
// not subject to dictionary-attack lockout (a quote needs no secret).
// Its fields are fixed: a primary key is derived from the hierarchy seed
// and the template (Part 1, "Primary Keys"; Part 3 §24.1 TPM2_CreatePrimary), so a fixed template gives a key that is
// stable for the life of the seed. Changing any field changes every AK.
func akTemplate(alg KeyAlg) (tpm2.TPMTPublic, error) {
	attrs := tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		Restricted:          true,
		SignEncrypt:         true,
	}
	switch alg {
	case ECCP256:
		return tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgECC,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme: tpm2.TPMTECCScheme{
					Scheme:  tpm2.TPMAlgECDSA,
					Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
				},
				CurveID: tpm2.TPMECCNistP256,
				KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
		}, nil
	case RSA2048:
		return tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgRSA,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme: tpm2.TPMTRSAScheme{
					Scheme:  tpm2.TPMAlgRSASSA,
					Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256}),
				},
				KeyBits: 2048,
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{}),
		}, nil
	}
	return tpm2.TPMTPublic{}, fmt.Errorf("vtpm: unknown key algorithm %d", alg)
}

// AKPublic returns the AK's marshalled TPMT_PUBLIC.
func (p *Provider) AKPublic() []byte { return bytes.Clone(p.akPub) }

// AKName returns the AK's TPM Name, what Verified.AKName holds for its
// quotes and what a verifier pins.
func (p *Provider) AKName() []byte { return bytes.Clone(p.ak.Name.Buffer) }

// PCRSelection returns the quoted PCRs.
func (p *Provider) PCRSelection() []int { return slices.Clone(p.sel) }

// Close flushes the AK from the TPM and closes the device if Open opened it.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.flush()
	if p.closer != nil {
		err = errors.Join(err, p.closer.Close())
		p.closer = nil
	}
	return err
}

func (p *Provider) flush() error {
	if p.ak.Handle == 0 {
		return nil
	}
	_, err := tpm2.FlushContext{FlushHandle: p.ak.Handle}.Execute(p.t)
	p.ak.Handle = 0
	if err != nil {
		return fmt.Errorf("vtpm: flushing the AK: %w", err)
	}
	return nil
}

// Quote implements attest.Provider: TPM2_Quote (TPM 2.0 Part 3 §18.4) of
// the selected SHA-256 PCRs with qualifyingData = QualifyingData(reportData),
// then TPM2_PCR_Read of their values. The evidence is checked with Verify
// before it is returned; if a PCR moved between the two commands the quote
// is taken again.
func (p *Provider) Quote(ctx context.Context, reportData [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	ev, err := p.quote(ctx, reportData)
	if err != nil {
		return nil, err
	}
	if ev.EventLog, err = p.EventLog(); errors.Is(err, measured.ErrNotSupported) {
		ev.EventLog = nil // a verifier can still check the PCRs against a prediction
	} else if err != nil {
		return nil, err
	}
	if ev.RuntimeLog, err = readRuntimeLog(p.runtime); err != nil {
		return nil, err
	}
	return ev, nil
}

func (p *Provider) quote(ctx context.Context, reportData [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ak.Handle == 0 {
		return nil, errors.New("vtpm: provider closed")
	}
	sel := make([]uint, len(p.sel))
	for i, v := range p.sel {
		sel[i] = uint(v)
	}
	var last error
	for try := 0; try < maxQuoteTries; try++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rsp, err := tpm2.Quote{
			SignHandle:     tpm2.AuthHandle{Handle: p.ak.Handle, Name: p.ak.Name, Auth: tpm2.PasswordAuth(nil)},
			QualifyingData: tpm2.TPM2BData{Buffer: QualifyingData(reportData)},
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull}, // the AK's own scheme
			PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
				{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(sel...)},
			}},
		}.Execute(p.t)
		if err != nil {
			return nil, fmt.Errorf("vtpm: TPM2_Quote: %w", err)
		}
		all, err := p.regs.Read()
		if err != nil {
			return nil, fmt.Errorf("vtpm: %w", err)
		}
		ev := &attest.Evidence{
			Kind:      attest.VTPM,
			Quote:     bytes.Clone(rsp.Quoted.Bytes()),
			Signature: tpm2.Marshal(rsp.Signature),
			AKPublic:  bytes.Clone(p.akPub),
			PCRs:      make(map[int][]byte, len(p.sel)),
		}
		for _, i := range p.sel {
			ev.PCRs[i] = all[i]
		}
		_, last = Verify(ev, reportData)
		if last == nil {
			return ev, nil
		}
		if !errors.Is(last, ErrPCRDigest) {
			return nil, fmt.Errorf("vtpm: the TPM's own quote does not verify: %w", last)
		}
	}
	return nil, fmt.Errorf("vtpm: PCRs changed between TPM2_Quote and TPM2_PCR_Read %d times: %w", maxQuoteTries, last)
}

func readRuntimeLog(p string) ([]byte, error) {
	if p == "" {
		p = measured.RuntimeLogPath
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing extended into PCR 15 yet
	}
	if err != nil {
		return nil, fmt.Errorf("vtpm: reading the runtime log: %w", err)
	}
	return b, nil
}

// unavailable adds attest.ErrUnavailable to measured's ErrNotSupported, so
// callers of either package can test for it.
func unavailable(err error) error {
	if errors.Is(err, measured.ErrNotSupported) {
		return fmt.Errorf("%w: %w", attest.ErrUnavailable, err)
	}
	return err
}

// Kind implements measured.Registers.
func (p *Provider) Kind() eventlog.Kind { return eventlog.TPM }

// Read implements measured.Registers: PCRs 0-23 of the SHA-256 bank.
func (p *Provider) Read() (map[int][]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, err := p.regs.Read()
	return v, unavailable(err)
}

// EventLog implements measured.Registers: the firmware's TCG2 log.
func (p *Provider) EventLog() ([]byte, error) {
	v, err := p.regs.EventLog()
	return v, unavailable(err)
}

// Extend implements measured.Registers: TPM2_PCR_Extend of PCR 15.
func (p *Provider) Extend(e runtime.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return unavailable(p.regs.Extend(e))
}

var _ attest.Provider = (*Provider)(nil)
