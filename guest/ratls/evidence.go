package ratls

import (
	"bytes"
	"encoding/asn1"
	"fmt"
	"sort"
	"unicode/utf8"

	"github.com/cocoon-appliance/cocoon/guest/attest"
)

// maxKind bounds the kind string; the defined kinds are 3 and 4 bytes.
const maxKind = 32

// maxPCR is the highest PCR index (TCG PC Client Platform Firmware Profile:
// PCRs 0-23).
const maxPCR = 23

type evidenceDER struct {
	Version    int
	Kind       string     `asn1:"utf8"`
	Quote      []byte     //
	Signature  []byte     `asn1:"optional,omitempty,tag:0"`
	AKPublic   []byte     `asn1:"optional,omitempty,tag:1"`
	PCRs       []pcrValue `asn1:"optional,omitempty,tag:2"`
	EventLog   []byte     `asn1:"optional,omitempty,tag:3"`
	RuntimeLog []byte     `asn1:"optional,omitempty,tag:4"`
}

type pcrValue struct {
	Index  int
	Digest []byte
}

// MarshalEvidence returns the evidence extension's DER (package
// documentation, "Evidence").
func MarshalEvidence(e *attest.Evidence) ([]byte, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: no evidence", ErrNoEvidence)
	}
	d := evidenceDER{
		Version:    EvidenceVersion,
		Kind:       string(e.Kind),
		Quote:      e.Quote,
		Signature:  e.Signature,
		AKPublic:   e.AKPublic,
		EventLog:   e.EventLog,
		RuntimeLog: e.RuntimeLog,
	}
	idx := make([]int, 0, len(e.PCRs))
	for i := range e.PCRs {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		d.PCRs = append(d.PCRs, pcrValue{Index: i, Digest: e.PCRs[i]})
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	b, err := asn1.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("%w: evidence: %w", ErrMalformed, err)
	}
	return b, nil
}

func (d *evidenceDER) validate() error {
	if n := len(d.Kind); n == 0 || n > maxKind || !utf8.ValidString(d.Kind) {
		return fmt.Errorf("%w: evidence kind of %d bytes, want 1 to %d bytes of UTF-8", ErrMalformed, n, maxKind)
	}
	if len(d.Quote) == 0 {
		return fmt.Errorf("%w: evidence of kind %q has no quote", ErrMalformed, d.Kind)
	}
	for i, p := range d.PCRs {
		if p.Index < 0 || p.Index > maxPCR || len(p.Digest) == 0 {
			return fmt.Errorf("%w: PCR %d with a %d-byte digest, want index 0-%d and a digest", ErrMalformed, p.Index, len(p.Digest), maxPCR)
		}
		if i > 0 && p.Index <= d.PCRs[i-1].Index {
			return fmt.Errorf("%w: PCR %d after PCR %d, want ascending indexes", ErrMalformed, p.Index, d.PCRs[i-1].Index)
		}
	}
	return nil
}

// ParseEvidence decodes the evidence extension, refusing anything but the
// canonical DER of what it decodes to. Errors wrap ErrMalformed.
func ParseEvidence(der []byte) (*attest.Evidence, error) {
	var d evidenceDER
	rest, err := asn1.Unmarshal(der, &d)
	if err != nil {
		return nil, fmt.Errorf("%w: evidence: %w", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: evidence: %d bytes after the DER value", ErrMalformed, len(rest))
	}
	if d.Version != EvidenceVersion {
		return nil, fmt.Errorf("%w: evidence version %d, want %d", ErrMalformed, d.Version, EvidenceVersion)
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	e := &attest.Evidence{
		Kind:       attest.Kind(d.Kind),
		Quote:      bytes.Clone(d.Quote),
		Signature:  bytes.Clone(d.Signature),
		AKPublic:   bytes.Clone(d.AKPublic),
		EventLog:   bytes.Clone(d.EventLog),
		RuntimeLog: bytes.Clone(d.RuntimeLog),
	}
	if len(d.PCRs) > 0 {
		e.PCRs = make(map[int][]byte, len(d.PCRs))
		for _, p := range d.PCRs {
			e.PCRs[p.Index] = bytes.Clone(p.Digest)
		}
	}
	again, err := MarshalEvidence(e)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, der) {
		return nil, fmt.Errorf("%w: evidence is not in canonical DER", ErrMalformed)
	}
	return e, nil
}
