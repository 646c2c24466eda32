package worker

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseConfig: any bytes give a valid config or ErrConfig; a config
// accepted once is accepted again after its fields are re-validated.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"schema":"cocoon-worker/v1","model":{"id":"m","engine":"builtin","checkpoint":"c","tokenizer":"t"}}`))
	f.Add([]byte(`{"schema":"cocoon-worker/v1","listen":"10.0.0.1:8443","model":{"id":"m","engine":"openai","upstream_url":"http://127.0.0.1:8000"},
		"registry":{"url":"http://10.0.2.2:8480","payout":"EQD4FPq-PRDieyQKkizFTRtSDyucUIqrj0v_zXJmqaDp6_0t","price":1000,"receipts_every_s":1}}`))
	f.Add([]byte(`{"schema":"cocoon-worker/v1","sim_seed_file":"/s","registry":{"url":"ftp://x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(strings.NewReader(string(b)))
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not ErrConfig", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
	})
}
