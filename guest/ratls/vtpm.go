package ratls

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/attest/vtpm"
	"github.com/cocoon-appliance/cocoon/internal/strictjson"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// VTPMPolicySchema is the only accepted "schema" of a vTPM policy file.
const VTPMPolicySchema = "cocoon-vtpm-policy/v1"

// maxVTPMPolicyFile bounds what ParseVTPMPolicy reads; a policy with a
// hundred AKs and sets is a few tens of KiB.
const maxVTPMPolicyFile = 1 << 20

var (
	// ErrInvalidVTPMPolicy: a vTPM policy that does not parse, or that
	// could not refuse anything (no AK pinned without allow_any_ak, no PCR
	// set). VerifyEvidence reports it under ErrPolicy.
	ErrInvalidVTPMPolicy = errors.New("ratls: invalid vTPM policy")
	// ErrPCRMismatch: the quoted PCRs match none of the policy's sets
	// (under ErrPolicy).
	ErrPCRMismatch = errors.New("ratls: quoted PCRs match no allowlisted set")
)

// VTPMPolicy decides which genuine vTPM evidence (guest/attest/vtpm) is
// accepted: whose attestation key (AK) signed it and which boot it quotes.
//
// A policy file is one JSON object; unknown fields, repeated PCRs and hex
// of the wrong length are errors. Example (the tests parse it, and it
// accepts the recorded swtpm evidence in guest/attest/vtpm/testdata, whose
// AK and PCRs it pins):
//
//	{
//	  "schema": "cocoon-vtpm-policy/v1",
//	  "ak_names": [
//	    "000bb39bf3f482520b18906d2cdea1d25515d7173dbfd1f70235ff80d97a171f7026"
//	  ],
//	  "pcrs": [
//	    {
//	      "4": "5282426542761a1fc999fd32337cf1792eb67ad662db824d6b1fe26868a6986a",
//	      "9": "3b3f7d9721902ff121078e8073d99f4bb449b7fc7b9627774b817ba0e2de0eda"
//	    }
//	  ]
//	}
//
// Fields:
//
//   - schema (required): exactly "cocoon-vtpm-policy/v1".
//   - ak_names: the TPM Names of the AKs trusted, in hex as
//     vtpm.Verified.AKFingerprint prints them (nameAlg, 2 bytes, then the
//     hash of the AK's TPMT_PUBLIC; "000b" and 64 hex digits for the
//     provider's SHA-256 names). A name and a fingerprint are the same thing
//     here. Record them on a machine you control (vtpm.Provider.AKName):
//     the AK is a primary key from a fixed template, stable for the life of
//     the swtpm state directory.
//   - allow_any_ak: accept evidence signed by ANY attestation key. FOR
//     DEVELOPMENT ONLY. Nobody certifies a vTPM's AK (guest/attest/vtpm's
//     documentation): with this set, anyone who can run a TPM emulator can
//     quote whatever PCR values the policy lists, so the evidence proves
//     nothing about the machine. Exactly one of ak_names and allow_any_ak
//     must be given; a policy with neither could accept no AK, one with
//     both would ignore its pins.
//   - pcrs (required, at least one): allowlisted PCR sets. Each maps a PCR
//     index of the SHA-256 bank, "4" or "pcr4" (as `cocoon measure tpm
//     --json` prints it), to 64 hex digits. Evidence is accepted when one
//     set matches: every PCR the set names is quoted and equal; PCRs it does
//     not name are not checked. The image-dependent PCRs are 4 (the kernel)
//     and 9 (command line and initrd), which `cocoon measure tpm` predicts;
//     PCR 15 (runtime events) pins the static config as well, which the
//     claims' config hash and the runtime log check anyway; PCRs 0-3 and 5-7
//     depend on OVMF and QEMU, not on the image.
//
// There is no image_hashes field, and one is refused with the reason: the
// image hash (measure/imagehash) is a hash of the TDX registers (MRTD,
// RTMR0-3, TD attributes, XFAM) and has no counterpart in a TPM's PCRs. The
// PCR sets are what pins the image on this path, and VTPMVerifier attests
// no image hash, so a certificate that claims one is refused (ErrBinding).
//
// Hex is case-insensitive on input and written lower-case.
type VTPMPolicy struct {
	// AKNames are the TPM Names of the trusted AKs (vtpm.Verified.AKName).
	AKNames [][]byte
	// AllowAnyAK accepts any AK. Development only: see above.
	AllowAnyAK bool
	// PCRSets are the allowlisted boots; one must match.
	PCRSets []PCRSet
}

// PCRSet maps PCR indexes (0-23) to SHA-256 values.
type PCRSet map[int][sha256.Size]byte

// LoadVTPMPolicy reads and parses the vTPM policy file at path.
func LoadVTPMPolicy(path string) (*VTPMPolicy, error) {
	p, err := strictjson.Load(path, ParseVTPMPolicy)
	if err != nil {
		return nil, fmt.Errorf("ratls: vTPM policy: %w", err)
	}
	return p, nil
}

// ParseVTPMPolicy reads one vTPM policy (a single JSON object, at most 1
// MiB). Every error wraps ErrInvalidVTPMPolicy.
func ParseVTPMPolicy(r io.Reader) (*VTPMPolicy, error) {
	var f vtpmPolicyFile
	if err := strictjson.Decode(r, maxVTPMPolicyFile, &f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidVTPMPolicy, err)
	}
	p, err := f.policy()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidVTPMPolicy, err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// vtpmPolicyFile is the JSON form.
type vtpmPolicyFile struct {
	Schema     string       `json:"schema"`
	AKNames    []string     `json:"ak_names,omitempty"`
	AllowAnyAK bool         `json:"allow_any_ak,omitempty"`
	PCRs       []filePCRSet `json:"pcrs"`
	// ImageHashes is decoded only to refuse it with the reason, rather
	// than as an unknown field: someone used to the TDX policy will try it.
	ImageHashes json.RawMessage `json:"image_hashes,omitempty"`
}

// filePCRSet is one "pcrs" object in file order. It is decoded by hand
// because encoding/json keeps the last of two equal keys without a word,
// and a PCR listed twice is a mistake the policy must not hide.
type filePCRSet []filePCR

type filePCR struct{ key, value string }

func (s *filePCRSet) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("a PCR set is an object of PCR index to hex SHA-256, not %.40s", b)
	}
	*s = nil
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := t.(string) // object keys are strings
		var v string
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("PCR %q: want a hex string: %w", k, err)
		}
		*s = append(*s, filePCR{key: k, value: v})
	}
	_, err := dec.Token() // the closing brace
	return err
}

func (s filePCRSet) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, str := range []string{p.key, p.value} {
			q, err := json.Marshal(str)
			if err != nil {
				return nil, err
			}
			b.Write(q)
			if j == 0 {
				b.WriteByte(':')
			}
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (f *vtpmPolicyFile) policy() (*VTPMPolicy, error) {
	if f.Schema != VTPMPolicySchema {
		return nil, fmt.Errorf("schema %q, want %q", f.Schema, VTPMPolicySchema)
	}
	if f.ImageHashes != nil {
		return nil, errors.New("image_hashes: the image hash is a hash of TDX registers and means nothing for a vTPM; pin the image with pcrs (PCRs 4 and 9 from `cocoon measure tpm`)")
	}
	p := &VTPMPolicy{AllowAnyAK: f.AllowAnyAK}
	for i, s := range f.AKNames {
		n, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("ak_names[%d]: %w", i, err)
		}
		p.AKNames = append(p.AKNames, n)
	}
	for i, fs := range f.PCRs {
		set := PCRSet{}
		for _, e := range fs {
			idx, err := parsePCRIndex(e.key)
			if err != nil {
				return nil, fmt.Errorf("pcrs[%d]: %w", i, err)
			}
			if _, dup := set[idx]; dup {
				return nil, fmt.Errorf("pcrs[%d]: PCR %d given twice (key %q)", i, idx, e.key)
			}
			var v [sha256.Size]byte
			if len(e.value) != 2*len(v) {
				return nil, fmt.Errorf("pcrs[%d][%q]: %d hex digits, want %d (SHA-256)", i, e.key, len(e.value), 2*len(v))
			}
			if _, err := hex.Decode(v[:], []byte(e.value)); err != nil {
				return nil, fmt.Errorf("pcrs[%d][%q]: %w", i, e.key, err)
			}
			set[idx] = v
		}
		p.PCRSets = append(p.PCRSets, set)
	}
	return p, nil
}

// parsePCRIndex reads "4" or "pcr4": decimal, 0-23, in its one canonical
// spelling (no sign, no leading zero), so two keys never name one PCR
// unnoticed.
func parsePCRIndex(k string) (int, error) {
	d := strings.TrimPrefix(k, "pcr")
	i, err := strconv.Atoi(d)
	if err != nil || i < 0 || i > maxPCR || strconv.Itoa(i) != d {
		return 0, fmt.Errorf("PCR key %q, want an index 0-%d such as \"4\" or \"pcr4\"", k, maxPCR)
	}
	return i, nil
}

// MarshalJSON writes the policy in its file form (PCR keys as plain
// indexes), so that ParseVTPMPolicy gives p back. It refuses a policy that
// Validate refuses, which would be written but never load.
func (p *VTPMPolicy) MarshalJSON() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	f := vtpmPolicyFile{Schema: VTPMPolicySchema, AllowAnyAK: p.AllowAnyAK, PCRs: []filePCRSet{}}
	for _, n := range p.AKNames {
		f.AKNames = append(f.AKNames, hex.EncodeToString(n))
	}
	for _, set := range p.PCRSets {
		fs := filePCRSet{}
		for _, i := range set.indexes() {
			v := set[i]
			fs = append(fs, filePCR{key: strconv.Itoa(i), value: hex.EncodeToString(v[:])})
		}
		f.PCRs = append(f.PCRs, fs)
	}
	return json.Marshal(f)
}

// Validate checks that the policy can refuse something: it pins AKs (or
// says allow_any_ak, and then pins none), each a well-formed TPM Name
// listed once, and has at least one non-empty PCR set of PCRs 0-23. Errors
// wrap ErrInvalidVTPMPolicy.
func (p *VTPMPolicy) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidVTPMPolicy, fmt.Sprintf(format, a...))
	}
	switch {
	case p.AllowAnyAK && len(p.AKNames) > 0:
		return bad("allow_any_ak with %d ak_names: the pins would be ignored; give one or the other", len(p.AKNames))
	case !p.AllowAnyAK && len(p.AKNames) == 0:
		return bad("no ak_names: nobody certifies a vTPM attestation key, so the policy must pin the ones it trusts (or, for development only, set allow_any_ak)")
	}
	for i, n := range p.AKNames {
		if err := checkAKName(n); err != nil {
			return bad("ak_names[%d] %x: %v", i, n, err)
		}
		if j := slices.IndexFunc(p.AKNames[:i], func(m []byte) bool { return bytes.Equal(m, n) }); j >= 0 {
			return bad("ak_names[%d] repeats ak_names[%d]", i, j)
		}
	}
	if len(p.PCRSets) == 0 {
		return bad("no pcrs: the policy would accept any boot; list at least one PCR set (PCRs 4 and 9 from `cocoon measure tpm`)")
	}
	for i, set := range p.PCRSets {
		if len(set) == 0 {
			return bad("pcrs[%d] is empty and would match any boot", i)
		}
		for idx := range set {
			if idx < 0 || idx > maxPCR {
				return bad("pcrs[%d]: PCR %d out of range 0-%d", i, idx, maxPCR)
			}
		}
	}
	return nil
}

// checkAKName checks the form of a TPM Name of a key (TPM 2.0 Part 1,
// "Names"): nameAlg (2 bytes, big endian) || H_nameAlg(TPMT_PUBLIC), with
// the name algorithms vtpm.Verify accepts (not SHA-1).
func checkAKName(n []byte) error {
	if len(n) < 2 {
		return fmt.Errorf("%d bytes, want a 2-byte algorithm and a digest", len(n))
	}
	alg := tpm2.TPMAlgID(binary.BigEndian.Uint16(n))
	h, err := alg.Hash()
	if err != nil || alg == tpm2.TPMAlgSHA1 {
		return fmt.Errorf("name algorithm %#04x, want SHA-256 (000b), SHA-384 (000c) or SHA-512 (000d)", uint16(alg))
	}
	if len(n) != 2+h.Size() {
		return fmt.Errorf("%d bytes, want 2 + %d for name algorithm %v", len(n), h.Size(), h)
	}
	return nil
}

func (s PCRSet) indexes() []int {
	idx := make([]int, 0, len(s))
	for i := range s {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return idx
}

// match reports the first PCR of s, in index order, that quoted lacks or
// holds another value for.
func (s PCRSet) match(quoted map[int][]byte) error {
	for _, i := range s.indexes() {
		got, ok := quoted[i]
		if !ok {
			return fmt.Errorf("PCR %d is not quoted", i)
		}
		if want := s[i]; !bytes.Equal(got, want[:]) {
			return fmt.Errorf("PCR %d = %x, want %x", i, got, want)
		}
	}
	return nil
}

// matchPCRs returns nil when one set matches, else ErrPCRMismatch with why
// each set did not.
func (p *VTPMPolicy) matchPCRs(quoted map[int][]byte) error {
	why := make([]string, 0, len(p.PCRSets))
	for i, s := range p.PCRSets {
		err := s.match(quoted)
		if err == nil {
			return nil
		}
		why = append(why, fmt.Sprintf("set %d: %v", i, err))
	}
	return fmt.Errorf("%w: %s", ErrPCRMismatch, strings.Join(why, "; "))
}

// VTPMVerifier verifies vTPM evidence, the development boot path's (QEMU +
// swtpm + OVMF; guest/attest/vtpm). Set exactly one of Policy and Verify;
// with neither it refuses all vTPM evidence (ErrQuote).
//
// With Policy, VerifyEvidence checks, in order: vtpm.Verify (the AK is a
// restricted signing key whose signature over the TPMS_ATTEST verifies, the
// PCR values hash to the quoted digest; else ErrQuote) and the qualifying
// data is SHA-256 of the report data (else ErrBinding); the policy is valid
// (else ErrPolicy with ErrInvalidVTPMPolicy); the AK is pinned, unless
// allow_any_ak (else ErrPolicy with vtpm.ErrAKNotAllowed); one PCR set
// matches (else ErrPolicy with ErrPCRMismatch); and, when PCR 15 is quoted,
// the runtime log replays to it (else ErrBinding; ErrMalformed for a log
// that does not parse). A runtime log with PCR 15 not quoted is refused
// (ErrBinding): nothing would vouch for it, and the claims' config hash is
// checked against its static-config event. Quote PCR 15 (the provider's
// default) to have the config hash checked at all.
//
// The result has no image hash (see VTPMPolicy) and Simulated is false; the
// AK pin is what stands in for a hardware vendor's signature, and it is
// only as good as the policy's ak_names.
type VTPMVerifier struct {
	Policy *VTPMPolicy
	// Verify, instead of Policy, hands the whole decision to a function,
	// for a trust model other than pinned AKs (a hardware TPM whose AK was
	// certified through its EK, say). It must check the TPM2_Quote
	// signature by the AK and how that key is trusted, that the qualifying
	// data binds reportData, that the PCR values match the quoted digest,
	// and its policy; an error that matches none of ours is reported as
	// ErrQuote.
	Verify func(e *attest.Evidence, reportData [attest.ReportDataSize]byte, now time.Time) (*Attested, error)
}

// VerifyEvidence implements EvidenceVerifier.
func (v *VTPMVerifier) VerifyEvidence(e *attest.Evidence, reportData [attest.ReportDataSize]byte, now time.Time) (*Attested, error) {
	switch {
	case v.Policy != nil && v.Verify != nil:
		return nil, fmt.Errorf("%w: VTPMVerifier has both a Policy and a Verify function; set one", ErrQuote)
	case v.Verify != nil:
		return v.custom(e, reportData, now)
	case v.Policy == nil:
		return nil, fmt.Errorf("%w: no vTPM policy or verifier configured", ErrQuote)
	}
	// now is not used: a TPM quote's clock (TPMS_CLOCK_INFO) counts from the
	// TPM's last reset, not wall time, and there is no collateral to date.
	// Freshness comes from the report data, which binds the claims' issue
	// time and the certificate's key.
	return v.Policy.verify(e, reportData)
}

func (v *VTPMVerifier) custom(e *attest.Evidence, reportData [attest.ReportDataSize]byte, now time.Time) (*Attested, error) {
	a, err := v.Verify(e, reportData, now)
	if err != nil {
		for _, known := range []error{ErrQuote, ErrBinding, ErrPolicy, ErrMalformed} {
			if errors.Is(err, known) {
				return nil, err
			}
		}
		return nil, fmt.Errorf("%w: vtpm: %w", ErrQuote, err)
	}
	if a == nil {
		return nil, fmt.Errorf("%w: vTPM verifier returned no result", ErrQuote)
	}
	return a, nil
}

func (p *VTPMPolicy) verify(e *attest.Evidence, reportData [attest.ReportDataSize]byte) (*Attested, error) {
	vf, err := vtpm.Verify(e, reportData)
	if errors.Is(err, vtpm.ErrNonce) {
		// Genuine, but for other claims: evidence lifted from another
		// certificate (as a TDX quote's report data mismatch is).
		return nil, fmt.Errorf("%w: %w", ErrBinding, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuote, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	if !p.AllowAnyAK {
		if err := vf.CheckAK(p.AKNames...); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
		}
	}
	if err := p.matchPCRs(vf.PCRs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	log, err := replayPCR15(e.RuntimeLog, vf.PCRs)
	if err != nil {
		return nil, err
	}
	return &Attested{Kind: attest.VTPM, RuntimeLog: log}, nil
}

// replayPCR15 checks the runtime log against the quoted PCR 15
// (measure/runtime: PCR 15 starts at zero and each event extends it with
// its SHA-256 digest) and returns it; nil when it has no events.
func replayPCR15(raw []byte, quoted map[int][]byte) (runtime.Log, error) {
	pcr, ok := quoted[runtime.PCR]
	if !ok {
		if len(raw) > 0 {
			return nil, fmt.Errorf("%w: a runtime log of %d bytes, but PCR %d is not quoted, so nothing vouches for it", ErrBinding, len(raw), runtime.PCR)
		}
		return nil, nil
	}
	log, err := runtime.Parse(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: runtime log: %w", ErrMalformed, err)
	}
	if err := log.Validate(); err != nil {
		return nil, fmt.Errorf("%w: runtime log: %w", ErrMalformed, err)
	}
	// An absent log replays to zeros: a PCR 15 that moved with no log to
	// show for it hides what was measured (the static config among it).
	if got := log.Replay(crypto.SHA256); !bytes.Equal(got, pcr) {
		return nil, fmt.Errorf("%w: runtime log of %d events replays to %x, quoted PCR %d is %x", ErrBinding, len(log), got, runtime.PCR, pcr)
	}
	if len(log) == 0 {
		return nil, nil
	}
	return log, nil
}
