package quote

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-tdx-guest/verify/trust"
)

// signedMembers are the only top-level members a PCS TCB info or QE
// identity response may have (PCS API v4: {"tcbInfo": …, "signature": …},
// {"enclaveIdentity": …, "signature": …}).
//
// go-tdx-guest checks the signature over the exact signed member but then
// decodes the whole body with encoding/json, which matches member names
// case-insensitively and keeps the last duplicate: a body with the genuine
// "tcbInfo" followed by an unsigned "TCBINFO" passes the signature check
// and is judged on the unsigned copy. Refusing any other or repeated member
// closes that, for given collateral and for a Getter alike.
func checkSignedMembers(body []byte, want ...string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("quote: %w: response is not a JSON object", ErrCollateral)
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("quote: %w: response: %v", ErrCollateral, err)
		}
		k, _ := t.(string)
		allowed := false
		for _, w := range want {
			allowed = allowed || k == w
		}
		if !allowed || seen[k] {
			return fmt.Errorf("quote: %w: response has member %q beside the signed %v (unsigned data is refused)", ErrCollateral, k, want)
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return fmt.Errorf("quote: %w: response: %v", ErrCollateral, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("quote: %w: response: %v", ErrCollateral, err)
	}
	if _, err := dec.Token(); err == nil {
		return fmt.Errorf("quote: %w: data after the response object", ErrCollateral)
	}
	return nil
}

// checkResponse applies checkSignedMembers by the PCS endpoint a URL names.
func checkResponse(url string, body []byte) error {
	switch {
	case strings.Contains(url, "/tcb"):
		return checkSignedMembers(body, "tcbInfo", "signature")
	case strings.Contains(url, "/qe/identity"):
		return checkSignedMembers(body, "enclaveIdentity", "signature")
	}
	return nil // CRLs are DER, signed as a whole
}

// strictGetter refuses PCS responses with unsigned members and remembers
// why, so Verify can report the refusal as ErrCollateral.
type strictGetter struct {
	inner trust.HTTPSGetter
	err   error
}

func (g *strictGetter) Get(url string) (map[string][]string, []byte, error) {
	h, b, err := g.inner.Get(url)
	if err != nil {
		return h, b, err
	}
	if err := checkResponse(url, b); err != nil {
		g.err = err
		return nil, nil, err
	}
	return h, b, nil
}
