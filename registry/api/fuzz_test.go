package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode feeds the request decoders arbitrary bodies: they must not
// panic, must refuse with one of the decoder's statuses, and what they
// accept must survive a JSON round trip unchanged (so a signature over
// the re-encoded object is over what was sent). Seeds: testdata/fuzz.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"registration":{"certificate":"AAEC","payout":"EQCD39VS5jcptHL8vMjEXrzGaRcCVYto7HUn4bpAOg8xqB2N","endpoint":"h:1","models":["tiny"],"price":1,"min_payout":0,"payout_every_s":0,"at":1},"sig":"00"}`,
		`{"heartbeat":{"at":1,"served":2,"failed":3,"latency_ms":4.5},"sig":"ab"}`,
		`{"receipts":[{"receipt":{"v":1,"worker":"aa","seq":1,"request":"r","model":"m","usage":{"prompt":1,"cached":0,"completion":1,"reasoning":0},"start":1,"end":2,"commitment":"cc"},"sig":"dd"}]}`,
		`{"note":"x"}`,
		`{"base":1,"min":0,"max":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newV := range []func() any{
			func() any { return new(RegisterRequest) },
			func() any { return new(HeartbeatRequest) },
			func() any { return new(ReceiptsRequest) },
			func() any { return new(AllowRequest) },
			func() any { return new(SetPriceRequest) },
		} {
			v := newV()
			err := decodeBody(bytes.NewReader(data), maxBody, v)
			if err != nil {
				if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("%T: error %v is neither 400 nor 413", v, err)
				}
				continue
			}
			if r, ok := v.(*RegisterRequest); ok {
				validateRegistration(&r.Registration) // must not panic
			}
			enc, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%T: accepted but does not encode: %v", v, err)
			}
			w := newV()
			if err := decodeBody(bytes.NewReader(enc), maxBody, w); err != nil {
				t.Fatalf("%T: re-encoding %s does not decode: %v", v, enc, err)
			}
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("%T: round trip changed it:\n%+v\n%+v", v, v, w)
			}
		}
	})
}
