package client

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/measure/quote"
	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// Policy is what this client accepts. It mirrors the registry's admission
// rules (registry/api, "Admission"), applied locally.
type Policy struct {
	// TDX is the policy for TDX and simulated quotes; its ImageHashes are
	// the local allowlist, and a quote must measure one of them even when
	// a measurement set of the policy matches. nil refuses both kinds.
	TDX *policy.Policy
	// VTPM is the vTPM evidence policy (pinned AKs and PCR sets); nil
	// refuses vTPM evidence.
	VTPM *ratls.VTPMPolicy
	// SimRoot is the TDX simulator's root to accept simulated quotes from
	// (a TEST key); nil refuses them, and with it they still need TDX's
	// AllowSimulated.
	SimRoot *x509.Certificate
	// Quotes verifies real TDX quotes against Intel's root; nil means an
	// offline measure/quote.Verifier (signatures and the PCK chain; no
	// collateral, so neither TCB level nor revocation is checked).
	Quotes *quote.Verifier
}

// PolicyFiles names local policy files; empty names are not loaded.
type PolicyFiles struct {
	TDX     string // measure/policy file ("cocoon-policy/v1")
	VTPM    string // vTPM policy file ("cocoon-vtpm-policy/v1")
	SimRoot string // PEM of the simulator's root certificate
}

// LoadPolicy reads local policy files: the trustworthy way to run a
// client, since nothing in it comes from the registry.
func LoadPolicy(f PolicyFiles) (Policy, error) {
	var p Policy
	var err error
	if f.TDX != "" {
		if p.TDX, err = policy.Load(f.TDX); err != nil {
			return Policy{}, fmt.Errorf("%w: %w", ErrPolicy, err)
		}
	}
	if f.VTPM != "" {
		if p.VTPM, err = ratls.LoadVTPMPolicy(f.VTPM); err != nil {
			return Policy{}, fmt.Errorf("%w: %w", ErrPolicy, err)
		}
	}
	if f.SimRoot != "" {
		if p.SimRoot, err = LoadSimRoot(f.SimRoot); err != nil {
			return Policy{}, err
		}
	}
	return p, nil
}

// LoadSimRoot reads a PEM CERTIFICATE: the TDX simulator's root (as the
// registry's simulator_root file holds it).
func LoadSimRoot(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: simulator root: %w", ErrPolicy, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: simulator root %s: no PEM CERTIFICATE block", ErrPolicy, path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: simulator root %s: %w", ErrPolicy, path, err)
	}
	return c, nil
}

// FetchPolicy is PolicyFromRegistry of the registry's GET /v1/policy:
// TRUST ON FIRST USE (see PolicyFromRegistry).
func FetchPolicy(ctx context.Context, reg *wire.Client) (Policy, error) {
	info, err := reg.Policy(ctx)
	if err != nil {
		return Policy{}, fmt.Errorf("client: registry policy: %w", err)
	}
	return PolicyFromRegistry(info)
}

// PolicyFromRegistry takes the registry's published policy as the local
// one. This is TRUST ON FIRST USE: the client then accepts whatever the
// registry says it admits, so a dishonest registry could allowlist an
// image of its choosing. The later checks still stand (genuine evidence,
// binding, pinning: the registry cannot swap a worker's key or endpoint),
// but the choice of image is the registry's. Callers must tell the user,
// loudly, and offer a local policy instead.
func PolicyFromRegistry(info *wire.PolicyInfo) (Policy, error) {
	if info == nil {
		return Policy{}, fmt.Errorf("%w: no registry policy", ErrPolicy)
	}
	var p Policy
	if raw := bytes.TrimSpace(info.TDXPolicy); len(raw) > 0 && string(raw) != "null" {
		t, err := parseTemplate(raw)
		if err != nil {
			return Policy{}, fmt.Errorf("%w: the registry's tdx_policy: %w", ErrPolicy, err)
		}
		p.TDX = t
		if err := p.AllowImageHashes(info.ImageHashes...); err != nil {
			return Policy{}, fmt.Errorf("the registry's image_hashes: %w", err)
		}
	}
	if raw := bytes.TrimSpace(info.VTPMPolicy); len(raw) > 0 && string(raw) != "null" {
		v, err := ratls.ParseVTPMPolicy(bytes.NewReader(raw))
		if err != nil {
			return Policy{}, fmt.Errorf("%w: the registry's vtpm_policy: %w", ErrPolicy, err)
		}
		p.VTPM = v
	}
	if info.AllowSimulated && len(info.SimRoot) > 0 {
		c, err := x509.ParseCertificate(info.SimRoot)
		if err != nil {
			return Policy{}, fmt.Errorf("%w: the registry's sim_root: %w", ErrPolicy, err)
		}
		p.SimRoot = c
	}
	return p, nil
}

// parseTemplate parses a policy that may list no image: the registry
// publishes its template with the allowlist as image_hashes, which is
// empty before the operator allowlists anything, and measure/policy
// refuses a file that could admit no image. Such a template is parsed
// with a placeholder hash that is then removed; a policy with no image
// hashes and no measurements refuses every quote (policy.Validate).
func parseTemplate(raw []byte) (*policy.Policy, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	empty := func(k string) bool {
		v := bytes.TrimSpace(obj[k])
		return len(v) == 0 || string(v) == "null" || string(v) == "[]"
	}
	if !empty("image_hashes") || !empty("measurements") {
		return policy.Parse(bytes.NewReader(raw))
	}
	obj["image_hashes"] = json.RawMessage(`["` + strings.Repeat("0", 64) + `"]`)
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	p, err := policy.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	p.ImageHashes = nil
	return p, nil
}

// ParseImageHash reads an image hash (measure/imagehash), 64 hex digits.
func ParseImageHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%w: image hash %q: want 64 hex digits", ErrPolicy, s)
	}
	copy(h[:], b)
	return h, nil
}

// AllowImageHashes adds image hashes (hex) to the local allowlist. With
// no TDX policy yet it makes a bare one holding just these hashes: real
// TDX quotes of exactly these images (an image hash pins the TD's
// registers, attributes and XFAM), nothing simulated.
func (p *Policy) AllowImageHashes(hashes ...string) error {
	if len(hashes) == 0 {
		return nil
	}
	if p.TDX == nil {
		p.TDX = &policy.Policy{}
	}
	for _, s := range hashes {
		h, err := ParseImageHash(s)
		if err != nil {
			return err
		}
		if !slices.Contains(p.TDX.ImageHashes, h) {
			p.TDX.ImageHashes = append(p.TDX.ImageHashes, h)
		}
	}
	return nil
}

// AllowsSimulated says whether the policy accepts simulated evidence.
func (p *Policy) AllowsSimulated() bool {
	return p.TDX != nil && p.TDX.AllowSimulated && p.SimRoot != nil
}

// verifier builds the ratls verifier of the policy. Each kind gets a
// verifier only when the policy says how to judge it; any other kind is
// refused (ratls.ErrQuote).
func (p *Policy) verifier(now func() time.Time) *ratls.Verifier {
	ev := map[attest.Kind]ratls.EvidenceVerifier{}
	if p.TDX != nil {
		q := p.Quotes
		if q == nil {
			q = quote.NewVerifier(quote.VerifierOptions{})
		}
		ev[attest.TDX] = &ratls.TDXVerifier{Quotes: q, Policy: p.TDX}
		if p.SimRoot != nil {
			ev[attest.Sim] = &ratls.SimVerifier{Root: p.SimRoot, Policy: p.TDX}
		}
	}
	if p.VTPM != nil {
		ev[attest.VTPM] = &ratls.VTPMVerifier{Policy: p.VTPM}
	}
	return &ratls.Verifier{Evidence: ev, Now: now}
}

// checkImage is the registry's image rule, locally: TDX and simulated
// evidence must measure an allowlisted image hash; vTPM evidence measures
// none, and its policy's PCR sets pin the boot instead.
func (p *Policy) checkImage(res *ratls.Result) (string, error) {
	a := res.Attested
	var allow [][32]byte
	if p.TDX != nil {
		allow = p.TDX.ImageHashes
	}
	if err := ratls.CheckImage(a, allow); err != nil {
		return "", fmt.Errorf("%w: %w", ErrImage, err)
	}
	if a.ImageHash == nil {
		return "vTPM evidence has no image hash; the vTPM policy's PCR sets pin the boot", nil
	}
	return fmt.Sprintf("%x", a.ImageHash[:]), nil
}
