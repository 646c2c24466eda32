package client

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// Names of the checks, in the order they are reported.
const (
	CheckCertificate = "certificate"            // RA-TLS certificate: parses, Ed25519, self-signed, our extensions
	CheckValidity    = "certificate validity"   // inside NotBefore..NotAfter at Client.Now
	CheckEvidence    = "quote signature/chain"  // the evidence is genuine
	CheckBinding     = "key binding"            // the evidence binds the claims and the certificate's key
	CheckPolicy      = "policy"                 // the local policy accepts the measurements
	CheckImage       = "image hash allowlisted" // on the local allowlist (vTPM: pinned PCRs)
	CheckIdentity    = "public key = listed id" // wire.WorkerID of the certificate's key
	CheckModel       = "model offered"
)

// Check is one step of a worker's verification.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Checked is a listed worker with this client's verification of it.
type Checked struct {
	Info wire.WorkerInfo
	// Result is the verified certificate; nil when attestation failed.
	Result *ratls.Result
	// Err is the first failed check (errors.Is ErrRefused, and the cause:
	// ErrImage, ErrIdentity, ErrModel or a guest/ratls error); nil for a
	// verified worker.
	Err error
	// Checks are the steps, passed and failed.
	Checks []Check
}

// Verified says whether every check passed.
func (c *Checked) Verified() bool { return c.Err == nil && c.Result != nil }

// Simulated says whether the worker's evidence came from the TDX quote
// simulator (a TEST key: it proves nothing).
func (c *Checked) Simulated() bool {
	return c.Result != nil && c.Result.Attested.Simulated
}

// Kind is the verified evidence's kind ("tdx", "sim", "vtpm"), or "".
func (c *Checked) Kind() attest.Kind {
	if c.Result == nil {
		return ""
	}
	return c.Result.Attested.Kind
}

// ImageHash is the verified image hash in hex, or "" (vTPM, or refused).
func (c *Checked) ImageHash() string {
	if c.Result == nil || c.Result.Attested.ImageHash == nil {
		return ""
	}
	return hex.EncodeToString(c.Result.Attested.ImageHash[:])
}

// Offers says whether the worker lists model ("" matches any).
func (c *Checked) Offers(model string) bool {
	return model == "" || slices.Contains(c.Info.Models, model)
}

// check verifies one listed worker from its certificate alone.
func (c *Client) check(info wire.WorkerInfo, model string) Checked {
	ck := Checked{Info: info}
	fail := func(err error) {
		if ck.Err == nil {
			ck.Err = err
		}
	}
	res, checks, err := c.verifyDER(info.Certificate)
	ck.Checks = checks
	if err != nil {
		fail(err)
	} else {
		ck.Result = res
	}

	// The identity is checked whether or not the attestation passed: a
	// listing whose ID is not its certificate's key is wrong either way.
	if pub := certKey(res, info.Certificate); pub != nil {
		switch id := wire.WorkerID(pub); {
		case id != info.ID:
			err := fmt.Errorf("%w: listed %s, the certificate's key gives %s", ErrIdentity, short(info.ID), short(id))
			ck.Checks = append(ck.Checks, Check{CheckIdentity, false, err.Error()})
			fail(fmt.Errorf("%w: %w", ErrRefused, err))
		case info.PublicKey != "" && info.PublicKey != hex.EncodeToString(pub):
			err := fmt.Errorf("%w: listed public key %.16s…, the certificate's is %x", ErrIdentity, info.PublicKey, pub[:8])
			ck.Checks = append(ck.Checks, Check{CheckIdentity, false, err.Error()})
			fail(fmt.Errorf("%w: %w", ErrRefused, err))
		default:
			ck.Checks = append(ck.Checks, Check{CheckIdentity, true, short(id)})
		}
	}
	if model != "" {
		if ck.Offers(model) {
			ck.Checks = append(ck.Checks, Check{CheckModel, true, model})
		} else {
			err := fmt.Errorf("%w: %q not among %q", ErrModel, model, info.Models)
			ck.Checks = append(ck.Checks, Check{CheckModel, false, err.Error()})
			fail(fmt.Errorf("%w: %w", ErrRefused, err))
		}
	}
	if ck.Err != nil {
		ck.Result = nil
	}
	return ck
}

// certKey is the certificate's Ed25519 key: the verified one, else the
// parsed one, else nil.
func certKey(res *ratls.Result, der []byte) ed25519.PublicKey {
	if res != nil {
		return res.Claims.PublicKey
	}
	cert, err := ratls.ParseCertificate(der)
	if err != nil {
		return nil
	}
	pub, _ := cert.Leaf.PublicKey.(ed25519.PublicKey)
	return pub
}

// verifyDER is the whole attestation check of a certificate, the same
// for a listing and for the peer of a connection: ratls's verification
// under the local policy, then the local image allowlist. Errors match
// ErrRefused and the cause.
func (c *Client) verifyDER(der []byte) (*ratls.Result, []Check, error) {
	c.init()
	var checks []Check
	refuse := func(name string, err error) (*ratls.Result, []Check, error) {
		detail := err.Error()
		if name == CheckImage && !errors.Is(err, ErrImage) {
			detail = c.imageRefusal(err)
			err = fmt.Errorf("%w: %w", ErrImage, err)
		}
		checks = append(checks, Check{name, false, detail})
		return nil, checks, fmt.Errorf("%w: %s: %w", ErrRefused, name, err)
	}
	cert, err := ratls.ParseCertificate(der)
	if err != nil {
		return refuse(CheckCertificate, err)
	}
	if _, ok := cert.Leaf.PublicKey.(ed25519.PublicKey); !ok {
		return refuse(CheckCertificate, fmt.Errorf("%w: key %v, want Ed25519", ratls.ErrCertificate, cert.Leaf.PublicKeyAlgorithm))
	}
	res, err := c.ver.Verify(der)
	if err != nil && errors.Is(err, policy.ErrPolicy) && (c.Policy.TDX == nil || len(c.Policy.TDX.ImageHashes) == 0) {
		err = fmt.Errorf("%w: no image hash is allowlisted locally: %w", ErrImage, err)
	}
	if err != nil {
		name := classify(err)
		if name != CheckCertificate {
			checks = append(checks, Check{CheckCertificate, true, fmt.Sprintf("RA-TLS, Ed25519, %s evidence", cert.Evidence.Kind)})
		}
		if name == CheckPolicy || name == CheckImage {
			// The evidence verifier judges the policy last: the quote
			// was genuine and bound to this key.
			checks = append(checks, Check{CheckEvidence, true, c.evidenceDetail(cert.Evidence.Kind)})
		}
		return refuse(name, err)
	}
	checks = append(checks,
		Check{CheckCertificate, true, fmt.Sprintf("RA-TLS, Ed25519, self-signed, %s evidence", res.Attested.Kind)},
		Check{CheckValidity, true, fmt.Sprintf("%s to %s", res.NotBefore.UTC().Format(time.RFC3339), res.NotAfter.UTC().Format(time.RFC3339))},
		Check{CheckEvidence, true, c.evidenceDetail(res.Attested.Kind)},
		Check{CheckBinding, true, "the quote binds SHA-512 of the claims, which name this key; claimed image and config hashes are the measured ones"},
		Check{CheckPolicy, true, c.policyDetail(res)},
	)
	detail, err := c.Policy.checkImage(res)
	if err != nil {
		return refuse(CheckImage, err)
	}
	checks = append(checks, Check{CheckImage, true, detail})
	return res, checks, nil
}

// classify names the check a guest/ratls error failed (its errors are
// exclusive: ratls's documentation, "Typed errors"). A policy mismatch of
// the fields that say which image was measured is the image check's, as
// the registry sorts it (registry/api, attestationError).
func classify(err error) string {
	var mm *policy.Mismatch
	switch {
	case errors.Is(err, ErrImage):
		return CheckImage
	case errors.As(err, &mm) && (mm.Field == "image_hash" || mm.Field == "mrtd" || strings.HasPrefix(mm.Field, "rtmr")):
		return CheckImage
	case errors.Is(err, ratls.ErrExpired):
		return CheckValidity
	case errors.Is(err, ratls.ErrQuote):
		return CheckEvidence
	case errors.Is(err, ratls.ErrBinding):
		return CheckBinding
	case errors.Is(err, ratls.ErrPolicy):
		return CheckPolicy
	}
	return CheckCertificate // ErrCertificate, ErrUnknownCritical, ErrNoEvidence, ErrMalformed
}

// imageRefusal says, shortly, which measurement the policy found not
// allowlisted (the error keeps measure/policy's whole message).
func (c *Client) imageRefusal(err error) string {
	n := 0
	if c.Policy.TDX != nil {
		n = len(c.Policy.TDX.ImageHashes)
	}
	var mm *policy.Mismatch
	if errors.As(err, &mm) {
		return fmt.Sprintf("measured %s %s is not among the %d allowlisted locally", mm.Field, mm.Got, n)
	}
	return err.Error()
}

func (c *Client) evidenceDetail(kind attest.Kind) string {
	switch kind {
	case attest.TDX:
		if c.Policy.Quotes == nil {
			return "TDX quote, signatures and PCK chain to Intel's root (offline: TCB level and revocation not checked)"
		}
		return "TDX quote, verified to Intel's root"
	case attest.Sim:
		return "SIMULATED TDX quote: chains to the pinned simulator root, a TEST key that proves nothing about the machine"
	case attest.VTPM:
		if c.Policy.VTPM != nil && c.Policy.VTPM.AllowAnyAK {
			return "vTPM quote; the policy accepts ANY attestation key (allow_any_ak: development only)"
		}
		return "vTPM quote by a pinned attestation key"
	}
	return string(kind)
}

func (c *Client) policyDetail(res *ratls.Result) string {
	switch {
	case res.Attested.Kind == attest.VTPM:
		return "vTPM policy: pinned AK, allowlisted PCR set"
	case res.Attested.Simulated:
		return "accepted by the local policy, which sets allow_simulated (development only)"
	}
	return "accepted by the local policy"
}
