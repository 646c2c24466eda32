package quote

import (
	"errors"
	"testing"
)

type stubGetter map[string][]byte

func (s stubGetter) Get(url string) (map[string][]string, []byte, error) {
	return map[string][]string{}, s[url], nil
}

func TestCheckSignedMembers(t *testing.T) {
	ok := []string{
		`{"tcbInfo":{"a":1},"signature":"ab"}`,
		`{"signature":"ab","tcbInfo":{}}`,
	}
	for _, s := range ok {
		if err := checkSignedMembers([]byte(s), "tcbInfo", "signature"); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []string{
		`{"tcbInfo":{},"signature":"ab","TCBINFO":{}}`, // case-variant shadow
		`{"tcbInfo":{},"tcbInfo":{},"signature":"ab"}`, // duplicate
		`{"tcbInfo":{},"signature":"ab","extra":1}`,
		`{"tcbInfo":{},"signature":"ab"} {}`,
		`[]`, `{`, ``,
	}
	for _, s := range bad {
		if err := checkSignedMembers([]byte(s), "tcbInfo", "signature"); !errors.Is(err, ErrCollateral) {
			t.Errorf("%s: err = %v, want ErrCollateral", s, err)
		}
	}
}

func TestStrictGetter(t *testing.T) {
	g := &strictGetter{inner: stubGetter{
		"https://pcs.example/tdx/certification/v4/tcb?fmspc=00": []byte(`{"tcbInfo":{},"signature":"00","TcbInfo":{}}`),
		"https://pcs.example/tdx/certification/v4/qe/identity":  []byte(`{"enclaveIdentity":{},"signature":"00"}`),
		"https://pcs.example/sgx/certification/v4/pckcrl":       []byte{0x30, 0x82},
	}}
	if _, _, err := g.Get("https://pcs.example/tdx/certification/v4/qe/identity"); err != nil {
		t.Fatalf("clean QE identity: %v", err)
	}
	if _, _, err := g.Get("https://pcs.example/sgx/certification/v4/pckcrl"); err != nil {
		t.Fatalf("CRL: %v", err)
	}
	if _, _, err := g.Get("https://pcs.example/tdx/certification/v4/tcb?fmspc=00"); !errors.Is(err, ErrCollateral) || g.err == nil {
		t.Fatalf("shadowed TCB info: %v", err)
	}
}
