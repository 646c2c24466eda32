package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// FuzzSSE: a worker's event stream, whatever its bytes, yields events no
// larger than the bound, then io.EOF or a named error; never a panic or
// a loop.
func FuzzSSE(f *testing.F) {
	for _, s := range []string{
		"data: {\"a\":1}\n\ndata: [DONE]\n\n",
		": comment\r\ndata: x\r\ndata: y\r\n\r\n",
		"event: e\nid: 1\ndata:no-space\n\n",
		"data: unterminated",
		"\n\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 256
		r := newSSEReader(bytes.NewReader(b), max)
		for i := 0; i <= len(b); i++ {
			ev, err := r.next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, errEventTooLarge) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(ev) > max {
				t.Fatalf("event of %d bytes over the bound", len(ev))
			}
		}
		t.Fatal("more events than input bytes")
	})
}

// FuzzPolicyFromRegistry: whatever a registry answers to GET /v1/policy,
// the client gets a policy or an error, never a panic; a simulator root
// appears only when the registry sent one, and the policy builds a
// verifier.
func FuzzPolicyFromRegistry(f *testing.F) {
	f.Add([]byte(`{"image_hashes":["` + string(bytes.Repeat([]byte("ab"), 32)) + `"],"allow_simulated":false,"evidence_kinds":["tdx"],"tdx_policy":{"schema":"cocoon-policy/v1","image_hashes":["` + string(bytes.Repeat([]byte("ab"), 32)) + `"]}}`))
	f.Add([]byte(`{"vtpm_policy":{"schema":"cocoon-vtpm-policy/v1","allow_any_ak":true,"pcrs":[{"4":"` + string(bytes.Repeat([]byte("11"), 32)) + `"}]}}`))
	f.Add([]byte(`{"sim_root":"AAAA","tdx_policy":{"schema":"cocoon-policy/v1","allow_simulated":true,"image_hashes":[]}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var info wire.PolicyInfo
		if json.Unmarshal(b, &info) != nil {
			return
		}
		p, err := PolicyFromRegistry(&info)
		if err != nil {
			return
		}
		if len(info.SimRoot) == 0 && (p.SimRoot != nil || p.AllowsSimulated()) {
			t.Fatal("no simulator root was sent, yet the policy accepts simulated evidence")
		}
		if p.verifier(time.Now) == nil {
			t.Fatal("no verifier")
		}
	})
}
