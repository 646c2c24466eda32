package config

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sample() *Config {
	return &Config{
		Schema: Schema,
		Static: Static{Model: "qwen3-8b", GPURequired: true, Policy: "default"},
		Runtime: Runtime{
			Network:     Network{Mode: "static", Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}},
			WorkerArgs:  []string{"-listen", ":8080"},
			RegistryURL: "https://registry.example",
		},
	}
}

func TestRoundTrip(t *testing.T) {
	disk, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	if len(disk)%SectorSize != 0 || len(disk) < SectorSize {
		t.Fatalf("disk of %d bytes, want a multiple of %d", len(disk), SectorSize)
	}
	c, static, err := Decode(bytes.NewReader(disk))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, sample()) {
		t.Errorf("decoded %+v, want %+v", c, sample())
	}
	want := `{"model":"qwen3-8b","gpu_required":true,"policy":"default"}`
	if string(static) != want {
		t.Errorf("static bytes %s, want %s", static, want)
	}
}

func withDoc(doc string) []byte {
	b := make([]byte, SectorSize)
	copy(b, Magic)
	binary.LittleEndian.PutUint32(b[8:], Version)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(doc)))
	copy(b[HeaderSize:], doc)
	return b
}

func TestDecodeErrors(t *testing.T) {
	good, _ := Encode(sample())
	flip := func(off int) []byte { b := bytes.Clone(good); b[off] ^= 1; return b }
	const rt = `"runtime":{"network":{"mode":"dhcp"}}`
	for _, tc := range []struct {
		name string
		disk []byte
		want error
	}{
		{"magic", flip(0), ErrMagic},
		{"version", flip(8), ErrVersion},
		{"zero length", withDoc(""), ErrLength},
		{"length past end", func() []byte { b := bytes.Clone(good); binary.LittleEndian.PutUint32(b[12:], SectorSize*2); return b }(), ErrLength},
		{"too long", func() []byte { b := bytes.Clone(good); binary.LittleEndian.PutUint32(b[12:], MaxLength+1); return b }(), ErrLength},
		{"short", good[:10], nil},
		{"schema", withDoc(`{"schema":"x","static":{"model":"","gpu_required":false,"policy":""},` + rt + `}`), ErrInvalid},
		{"unknown field", withDoc(`{"schema":"cocoon-config/v1","static":{"model":"","gpu_required":false,"policy":"","x":1},` + rt + `}`), ErrInvalid},
		{"not canonical", withDoc(`{"schema":"cocoon-config/v1","static":{"policy":"","model":"","gpu_required":false},` + rt + `}`), ErrNotCanonical},
		{"static missing", withDoc(`{"schema":"cocoon-config/v1",` + rt + `}`), ErrInvalid},
		{"trailing", withDoc(`{"schema":"cocoon-config/v1","static":{"model":"","gpu_required":false,"policy":""},` + rt + `} {}`), ErrInvalid},
		{"bad mode", withDoc(`{"schema":"cocoon-config/v1","static":{"model":"","gpu_required":false,"policy":""},"runtime":{"network":{"mode":"x"}}}`), ErrInvalid},
		{"bad cidr", withDoc(`{"schema":"cocoon-config/v1","static":{"model":"","gpu_required":false,"policy":""},"runtime":{"network":{"mode":"static","address":"10.0.0.1"}}}`), ErrInvalid},
		{"bad registry", withDoc(`{"schema":"cocoon-config/v1","static":{"model":"","gpu_required":false,"policy":""},"runtime":{"network":{"mode":"dhcp"},"registry_url":"ftp://x"}}`), ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Decode(bytes.NewReader(tc.disk))
			if err == nil {
				t.Fatal("Decode succeeded, want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	c := sample()
	c.Runtime.Network.Mode = "carrier-pigeon"
	if _, err := Encode(c); !errors.Is(err, ErrInvalid) {
		t.Errorf("err = %v, want ErrInvalid", err)
	}
}

// FuzzDecode: whatever Decode accepts, Encode writes back and Decode reads
// to the same document and the same measured bytes.
func FuzzDecode(f *testing.F) {
	good, _ := Encode(sample())
	f.Add(good)
	withExpect := sample()
	withExpect.Static.Expect = map[string]string{"pcr4": strings.Repeat("0a", 32), "pcr9": strings.Repeat("0b", 32)}
	expectDisk, _ := Encode(withExpect)
	f.Add(expectDisk)
	f.Add(withDoc(`{"schema":"cocoon-config/v1","static":{"model":"","gpu_required":false,"policy":""},"runtime":{"network":{"mode":"dhcp"}}}`))
	f.Fuzz(func(t *testing.T, disk []byte) {
		c, static, err := Decode(bytes.NewReader(disk))
		if err != nil {
			return
		}
		again, err := Encode(c)
		if err != nil {
			t.Fatalf("Encode of a decoded config: %v", err)
		}
		c2, static2, err := Decode(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("Decode of Encode: %v", err)
		}
		again2, err := Encode(c2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, again2) || !bytes.Equal(static, static2) {
			t.Fatalf("round trip changed the config: %+v / %+v", c, c2)
		}
	})
}

func TestExpect(t *testing.T) {
	pcr := strings.Repeat("ab", 32)
	rtmr := strings.Repeat("cd", 48)
	for _, tc := range []struct {
		name   string
		expect map[string]string
		kind   string // "" with ok: none; "!" : invalid
	}{
		{"none", nil, ""},
		{"pcrs", map[string]string{"pcr4": pcr, "pcr9": pcr}, "pcr"},
		{"rtmrs", map[string]string{"rtmr0": rtmr, "rtmr1": rtmr, "rtmr2": rtmr}, "rtmr"},
		{"pcr23", map[string]string{"pcr23": pcr}, "pcr"},
		{"pcr15 measures the config", map[string]string{"pcr15": pcr}, "!"},
		{"rtmr3 unknown", map[string]string{"rtmr3": rtmr}, "!"},
		{"pcr24", map[string]string{"pcr24": pcr}, "!"},
		{"leading zero", map[string]string{"pcr04": pcr}, "!"},
		{"sign", map[string]string{"pcr+4": pcr}, "!"},
		{"mrtd not readable in the guest", map[string]string{"mrtd": rtmr}, "!"},
		{"mixed", map[string]string{"pcr4": pcr, "rtmr1": rtmr}, "!"},
		{"pcr with sha384 size", map[string]string{"pcr4": rtmr}, "!"},
		{"upper case", map[string]string{"pcr4": strings.ToUpper(pcr)}, "!"},
		{"not hex", map[string]string{"pcr4": strings.Repeat("zz", 32)}, "!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sample()
			c.Static.Expect = tc.expect
			disk, err := Encode(c)
			if tc.kind == "!" {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Encode: err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, static, err := Decode(bytes.NewReader(disk))
			if err != nil {
				t.Fatal(err)
			}
			for key := range got.Static.Expect {
				if k, _, ok := ExpectIndex(key); !ok || k != tc.kind {
					t.Errorf("ExpectIndex(%q) = %q, %v; want %q", key, k, ok, tc.kind)
				}
			}
			if len(tc.expect) > 0 && !bytes.Contains(static, []byte(`"expect":{`)) {
				t.Errorf("measured bytes lack the expectations: %s", static)
			}
			if len(tc.expect) == 0 && bytes.Contains(static, []byte("expect")) {
				t.Errorf("an empty expectation changed the measured bytes: %s", static)
			}
		})
	}
	// An empty object is not the canonical encoding (omitted), so it is refused.
	doc := withDoc(`{"schema":"cocoon-config/v1","static":{"model":"","gpu_required":false,"policy":"","expect":{}},"runtime":{"network":{"mode":"dhcp"}}}`)
	if _, _, err := Decode(bytes.NewReader(doc)); !errors.Is(err, ErrNotCanonical) {
		t.Errorf("empty expect: err = %v, want ErrNotCanonical", err)
	}
}
