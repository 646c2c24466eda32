package runtime

import (
	"bytes"
	"crypto"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func sample() Log {
	return Log{
		{Kind: KindStaticConfig, Payload: []byte(`{"schema":"cocoon-static/v1"}`)},
		{Kind: KindGPUAttestation, Payload: []byte(`{"gpus":[]}`)},
		{Kind: KindBootComplete},
	}
}

// TestDigestLayout pins the documented byte layout: the digest of a
// boot-complete event is SHA384("cocoon-rtmr3/v1\x00boot-complete\x00").
// Independently: printf 'cocoon-rtmr3/v1\0boot-complete\0' | sha384sum
func TestDigestLayout(t *testing.T) {
	want := sha512.Sum384([]byte("cocoon-rtmr3/v1\x00boot-complete\x00"))
	got := Event{Kind: KindBootComplete}.Digest(crypto.SHA384)
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("digest %x, want %x", got, want)
	}
	// Value printed by sha384sum (coreutils 9.1) for the bytes above.
	if hex.EncodeToString(got) != "70d571dab4e374ca1648bf2b2da1ec5e01a9b8962c2bd2b11eb21c5cae6b304963f04e011632ae3a898e68a89b7aa085" {
		t.Fatalf("boot-complete digest %x differs from sha384sum's", got)
	}
	// The kind is bound: the same payload under another kind differs.
	a := Event{Kind: KindStaticConfig, Payload: []byte("x")}.Digest(crypto.SHA384)
	b := Event{Kind: KindGPUAttestation, Payload: []byte("x")}.Digest(crypto.SHA384)
	if bytes.Equal(a, b) {
		t.Fatal("kind not bound into the digest")
	}
}

func TestReplayMatchesRegisterEvents(t *testing.T) {
	l := sample()
	reg := make([]byte, 48)
	for _, e := range l.Events(crypto.SHA384) {
		if e.Index != RTMR {
			t.Fatalf("index %d", e.Index)
		}
		h := sha512.New384()
		h.Write(reg)
		h.Write(e.Digest)
		reg = h.Sum(nil)
	}
	if !bytes.Equal(reg, l.Replay(crypto.SHA384)) {
		t.Fatal("Replay disagrees with the extend rule")
	}
	if e := l[0].Register(crypto.SHA256); e.Index != PCR || len(e.Digest) != 32 {
		t.Fatalf("vTPM event %+v", e)
	}
}

func TestRoundTrip(t *testing.T) {
	b, err := sample().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	l, err := Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l[:2], sample()[:2]) || l[2].Kind != KindBootComplete {
		t.Fatalf("round trip: %+v", l)
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"unknown kind", `{"v":1,"kind":"shell","payload":""}`},
		{"version", `{"v":2,"kind":"boot-complete","payload":""}`},
		{"unknown field", `{"v":1,"kind":"boot-complete","payload":"","x":1}`},
		{"bad base64", `{"v":1,"kind":"static-config","payload":"!!"}`},
		{"payload on boot-complete", `{"v":1,"kind":"boot-complete","payload":"eA=="}`},
		{"after boot-complete", "{\"v\":1,\"kind\":\"boot-complete\",\"payload\":\"\"}\n{\"v\":1,\"kind\":\"static-config\",\"payload\":\"\"}"},
		{"not json", `hello`},
		{"trailing", `{"v":1,"kind":"boot-complete","payload":""} {}`},
		{"too long", `{"v":1,"kind":"static-config","payload":"` + strings.Repeat("A", maxLine) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(strings.NewReader(tc.text)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	b, _ := sample().Marshal()
	f.Add(b)
	f.Add([]byte(`{"v":1,"kind":"static-config","payload":"eA=="}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		l, err := Parse(bytes.NewReader(in))
		if err != nil {
			return
		}
		out, err := l.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed log: %v", err)
		}
		l2, err := Parse(bytes.NewReader(out))
		if err != nil || !bytes.Equal(l.Replay(crypto.SHA384), l2.Replay(crypto.SHA384)) {
			t.Fatalf("round trip changed the log: %v", err)
		}
	})
}

// BootLog is the init's sequence, with the GPU result only when given.
func TestBootLog(t *testing.T) {
	for _, tc := range []struct {
		gpu   []byte
		kinds []string
	}{
		{nil, []string{KindStaticConfig, KindBootComplete}},
		{[]byte(`{"ok":true}`), []string{KindStaticConfig, KindGPUAttestation, KindBootComplete}},
	} {
		l := BootLog([]byte(`{"model":"m"}`), tc.gpu)
		if err := l.Validate(); err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range l {
			kinds = append(kinds, e.Kind)
		}
		if !slices.Equal(kinds, tc.kinds) || string(l[0].Payload) != `{"model":"m"}` {
			t.Fatalf("%v %q", kinds, l[0].Payload)
		}
	}
}
