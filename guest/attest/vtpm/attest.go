package vtpm

import (
	"encoding/binary"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/cocoon-appliance/cocoon/guest/attest"
)

// Attest is a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (TPM 2.0 Part 2
// §10.12.12, with TPMS_QUOTE_INFO §10.12.4): what TPM2_Quote signs.
type Attest struct {
	// QualifiedSigner is the TPM2B_NAME contents of the signing key's
	// Qualified Name (Part 1, "Names"): nameAlg || H(parent QN || Name).
	QualifiedSigner []byte
	// ExtraData is the caller's qualifyingData, echoed.
	ExtraData []byte
	// TPMS_CLOCK_INFO (§10.11.1). With a key outside the endorsement and
	// platform hierarchies the TPM obfuscates ResetCount, RestartCount and
	// FirmwareVersion (Part 3 §18.1).
	Clock        uint64
	ResetCount   uint32
	RestartCount uint32
	Safe         bool
	// FirmwareVersion is TPM-vendor specific.
	FirmwareVersion uint64
	// Selection lists the quoted banks, in the order the digest covers them.
	Selection []Selection
	// PCRDigest is H(selected PCR values), H the signing scheme's hash.
	PCRDigest []byte
}

// Selection is one TPMS_PCR_SELECTION (§10.6.2): a bank and its PCRs in
// ascending order.
type Selection struct {
	Hash tpm2.TPMAlgID
	PCRs []int
}

// Bounds of the sized fields. The buffers are sizeof(TPMT_HA) or
// sizeof(TPMU_NAME) in the reference implementation: 2 + 64 with SHA-512,
// the largest digest any TPM 2.0 bank has (TPMT_HA Part 2 §10.3.2, TPM2B_NAME §10.5.3).
const (
	maxNameSize   = 2 + 64
	maxDataSize   = 2 + 64
	maxDigestSize = 64
	// maxBanks bounds TPML_PCR_SELECTION.count (HASH_COUNT; a TPM has one
	// selection per implemented hash, which is a handful).
	maxBanks = 16
	// maxSelect bounds sizeofSelect (PCR_SELECT_MAX; 3 on PC Client TPMs
	// with 24 PCRs); 32 allows 256 PCRs.
	maxSelect = 32
	// maxAttestSize is a generous bound on the whole structure.
	maxAttestSize = 4 + 2 + (2 + maxNameSize) + (2 + maxDataSize) + 17 + 8 + 4 + maxBanks*(3+maxSelect) + 2 + maxDigestSize
)

// ErrAttest: bytes that are not a well-formed TPM_ST_ATTEST_QUOTE
// TPMS_ATTEST. It is also attest.ErrEvidence.
var ErrAttest = fmt.Errorf("%w: not a TPMS_ATTEST quote", attest.ErrEvidence)

// reader is a bounds-checked big-endian cursor: TPM 2.0 structures are
// marshalled big endian, sizes before contents.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("%s: %d bytes at offset %d, only %d left", what, n, r.off, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(what string) uint8 {
	if v := r.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if v := r.take(2, what); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if v := r.take(4, what); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if v := r.take(8, what); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// sized reads a TPM2B: a 16-bit size, then that many bytes, at most max.
func (r *reader) sized(max int, what string) []byte {
	n := int(r.u16(what + " size"))
	if r.err == nil && n > max {
		r.err = fmt.Errorf("%s: size %d, at most %d", what, n, max)
		return nil
	}
	v := r.take(n, what)
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

// ParseAttest decodes a TPMS_ATTEST that TPM2_Quote produced. It accepts
// only the quote type and exactly one encoding: no bytes may follow the
// structure and every field must be in range, so what it accepts is what
// was signed, byte for byte. Errors are ErrAttest.
func ParseAttest(b []byte) (*Attest, error) {
	a, err := parseAttest(b)
	if err != nil {
		return nil, fmt.Errorf("vtpm: %w: %w", ErrAttest, err)
	}
	return a, nil
}

func parseAttest(b []byte) (*Attest, error) {
	if len(b) > maxAttestSize {
		return nil, fmt.Errorf("%d bytes, larger than any quote (%d)", len(b), maxAttestSize)
	}
	r := &reader{b: b}
	if m := r.u32("magic"); r.err == nil && m != uint32(tpm2.TPMGeneratedValue) {
		// TPM_GENERATED_VALUE (Part 2 §6.2): a restricted key signs only
		// structures that start with it, so a verifier knows the TPM
		// built them.
		return nil, fmt.Errorf("magic %#08x, want TPM_GENERATED_VALUE %#08x", m, uint32(tpm2.TPMGeneratedValue))
	}
	if t := r.u16("type"); r.err == nil && tpm2.TPMST(t) != tpm2.TPMSTAttestQuote {
		return nil, fmt.Errorf("type %#04x, want TPM_ST_ATTEST_QUOTE %#04x", t, uint16(tpm2.TPMSTAttestQuote))
	}
	a := &Attest{}
	a.QualifiedSigner = r.sized(maxNameSize, "qualifiedSigner")
	a.ExtraData = r.sized(maxDataSize, "extraData")
	a.Clock = r.u64("clockInfo.clock")
	a.ResetCount = r.u32("clockInfo.resetCount")
	a.RestartCount = r.u32("clockInfo.restartCount")
	switch s := r.u8("clockInfo.safe"); {
	case r.err != nil:
	case s > 1:
		// TPMI_YES_NO is 0 or 1 (Part 2 §9.2).
		return nil, fmt.Errorf("clockInfo.safe = %d, want 0 or 1", s)
	default:
		a.Safe = s == 1
	}
	a.FirmwareVersion = r.u64("firmwareVersion")
	n := r.u32("pcrSelect.count")
	if r.err == nil && n > maxBanks {
		return nil, fmt.Errorf("pcrSelect.count = %d, at most %d", n, maxBanks)
	}
	for i := 0; r.err == nil && i < int(n); i++ {
		s := Selection{Hash: tpm2.TPMAlgID(r.u16("pcrSelect.hash"))}
		size := int(r.u8("pcrSelect.sizeofSelect"))
		if r.err == nil && size > maxSelect {
			return nil, fmt.Errorf("pcrSelect[%d].sizeofSelect = %d, at most %d", i, size, maxSelect)
		}
		for j, v := range r.take(size, "pcrSelect.pcrSelect") {
			for bit := 0; bit < 8; bit++ {
				if v&(1<<bit) != 0 {
					s.PCRs = append(s.PCRs, 8*j+bit)
				}
			}
		}
		a.Selection = append(a.Selection, s)
	}
	a.PCRDigest = r.sized(maxDigestSize, "pcrDigest")
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%d bytes after the structure", len(b)-r.off)
	}
	return a, nil
}
