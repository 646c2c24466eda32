package platform

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func sample() *Capture {
	return &Capture{
		Schema: Schema, Profile: "test", CPUs: 2, MemoryMiB: 4096, Source: "synthetic",
		FwCfg: map[string][]byte{TableLoader: []byte("loader"), RSDP: []byte("RSD PTR xxxxxxxxxxxx"), Tables: []byte("DSDT...")},
		BootVariables: []Variable{
			{Name: "BootOrder", Data: []byte{0x01, 0x00, 0x00, 0x00, 0x07, 0x00}},
			{Name: "Boot0000", Data: []byte("zero")},
			{Name: "Boot0001", Data: []byte("one")},
		},
	}
}

func encode(t *testing.T, c *Capture) string {
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseAndBootOrder(t *testing.T) {
	c, err := Parse(strings.NewReader(encode(t, sample())))
	if err != nil {
		t.Fatal(err)
	}
	got := c.BootOrder()
	// BootOrder lists 1, 0, 7; Boot0007 is absent and skipped.
	if len(got) != 2 || got[0].Name != "Boot0001" || got[1].Name != "Boot0000" {
		t.Fatalf("BootOrder = %+v", got)
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(c *Capture)
	}{
		{"schema", func(c *Capture) { c.Schema = "x" }},
		{"no cpus", func(c *Capture) { c.CPUs = 0 }},
		{"missing rsdp", func(c *Capture) { delete(c.FwCfg, RSDP) }},
		{"extra fw_cfg", func(c *Capture) { c.FwCfg["etc/e820"] = []byte{1} }},
		{"bad rsdp", func(c *Capture) { c.FwCfg[RSDP] = []byte("nope") }},
		{"bad var name", func(c *Capture) { c.BootVariables[1].Name = "Boot00zz" }},
		{"duplicate var", func(c *Capture) { c.BootVariables[2].Name = "Boot0000" }},
		{"odd BootOrder", func(c *Capture) { c.BootVariables[0].Data = []byte{1} }},
		{"no BootOrder", func(c *Capture) { c.BootVariables = c.BootVariables[1:] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sample()
			tc.mod(c)
			if _, err := Parse(strings.NewReader(encode(t, c))); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	for _, s := range []string{"", "{", `{"schema":"cocoon-platform/v1","bogus":1}`, encode(t, sample()) + "{}"} {
		if _, err := Parse(strings.NewReader(s)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%q: %v", s, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := json.Marshal(sample())
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(strings.NewReader(string(in)))
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid capture: %v", err)
		}
		_ = c.BootOrder()
	})
}

// TestDefaultBoot0000 pins the default UiApp load option to the digest
// dstack-mr hard-codes for pre-202505 OVMF (dstack-mr/src/tdvf.rs,
// boot000_hash) and that the GCE TDX log shows.
func TestDefaultBoot0000(t *testing.T) {
	d := sha512.Sum384(DefaultBootVariables[1].Data)
	if got := hex.EncodeToString(d[:]); got != "23ada07f5261f12f34a0bd8e46760962d6b4d576a416f1fea1c64bc656b1d28eacf7047ae6e967c58fd2a98bfa74c298" {
		t.Fatalf("Boot0000 digest %s", got)
	}
	c := sample()
	c.BootVariables = nil
	if got := c.EffectiveBootVariables().BootOrder(); len(got) != 1 || got[0].Name != "Boot0000" {
		t.Fatalf("defaults: %+v", got)
	}
	if c.BootVariables != nil {
		t.Fatal("EffectiveBootVariables modified the capture")
	}
}
