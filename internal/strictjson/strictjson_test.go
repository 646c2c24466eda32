package strictjson

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type doc struct {
	A int    `json:"a"`
	B string `json:"b"`
}

func TestDecode(t *testing.T) {
	var d doc
	if err := Decode(strings.NewReader(`{"a":1,"b":"x"}`), 100, &d); err != nil || d.A != 1 || d.B != "x" {
		t.Fatalf("%+v %v", d, err)
	}
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrEmpty},
		{`{"a":1} {"a":2}`, ErrTrailing},
		{`{"a":1} x`, ErrTrailing},
		{`{"a":1,"c":2}`, nil}, // unknown field: a json error, not a sentinel
		{`{"b":"` + strings.Repeat("x", 200) + `"}`, ErrTooLarge},
		{`{"a":`, nil},
	} {
		err := Decode(strings.NewReader(tc.in), 100, &doc{})
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%q: err = %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.json")
	os.WriteFile(p, []byte("{}x"), 0o644)
	parse := func(r interface{ Read([]byte) (int, error) }) (*doc, error) {
		var d doc
		return &d, Decode(r, 10, &d)
	}
	_, err := Load(p, func(r io.Reader) (*doc, error) { return parse(r) })
	if err == nil || !strings.Contains(err.Error(), p) || !errors.Is(err, ErrTrailing) {
		t.Fatalf("err = %v", err)
	}
}
