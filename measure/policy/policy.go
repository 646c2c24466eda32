package policy

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/cocoon-appliance/cocoon/internal/strictjson"
)

// Schema is the only accepted value of the file's "schema".
const Schema = "cocoon-policy/v1"

// maxFile bounds what Parse reads; real policies are a few KiB.
const maxFile = 1 << 20

// Policy is a parsed policy file (field meanings in the package
// documentation). Nil pointers and empty lists mean "not checked".
type Policy struct {
	AllowSimulated bool
	AllowDebug     bool
	ImageHashes    [][32]byte
	Measurements   []Registers
	// TDAttributes maps a flag name (see the package documentation) to the
	// value it must have.
	TDAttributes  map[string]bool
	XFAM          *[8]byte
	MRConfigID    *[48]byte
	MROwner       *[48]byte
	MROwnerConfig *[48]byte
	MinTEETCBSVN  *[16]byte
}

// Registers is one allowlisted set of TD measurement registers.
type Registers struct {
	MRTD [48]byte
	RTMR [4][48]byte
}

// file is the JSON form.
type file struct {
	Schema         string          `json:"schema"`
	AllowSimulated bool            `json:"allow_simulated,omitempty"`
	AllowDebug     bool            `json:"allow_debug,omitempty"`
	ImageHashes    []string        `json:"image_hashes,omitempty"`
	Measurements   []fileRegisters `json:"measurements,omitempty"`
	TDAttributes   map[string]bool `json:"td_attributes,omitempty"`
	XFAM           *string         `json:"xfam,omitempty"`
	MRConfigID     *string         `json:"mr_config_id,omitempty"`
	MROwner        *string         `json:"mr_owner,omitempty"`
	MROwnerConfig  *string         `json:"mr_owner_config,omitempty"`
	MinTEETCBSVN   *string         `json:"min_tee_tcb_svn,omitempty"`
}

type fileRegisters struct {
	MRTD  string `json:"mrtd"`
	RTMR0 string `json:"rtmr0"`
	RTMR1 string `json:"rtmr1"`
	RTMR2 string `json:"rtmr2"`
	RTMR3 string `json:"rtmr3"`
}

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	p, err := strictjson.Load(path, Parse)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return p, nil
}

// Parse reads one policy (a single JSON object, at most 1 MiB). Every
// error wraps ErrPolicy.
func Parse(r io.Reader) (*Policy, error) {
	var f file
	if err := strictjson.Decode(r, maxFile, &f); err != nil {
		return nil, fmt.Errorf("policy: %w: %w", ErrPolicy, err)
	}
	p, err := f.policy()
	if err != nil {
		return nil, fmt.Errorf("policy: %w: %w", ErrPolicy, err)
	}
	return p, nil
}

func (f *file) policy() (*Policy, error) {
	if f.Schema != Schema {
		return nil, fmt.Errorf("schema %q, want %q", f.Schema, Schema)
	}
	if len(f.ImageHashes) == 0 && len(f.Measurements) == 0 {
		return nil, errors.New("neither image_hashes nor measurements: the policy would accept no image")
	}
	p := &Policy{AllowSimulated: f.AllowSimulated, AllowDebug: f.AllowDebug}
	for i, s := range f.ImageHashes {
		var h [32]byte
		if err := decodeHex(h[:], s, fmt.Sprintf("image_hashes[%d]", i)); err != nil {
			return nil, err
		}
		p.ImageHashes = append(p.ImageHashes, h)
	}
	for i, m := range f.Measurements {
		var r Registers
		field := func(name string) string { return fmt.Sprintf("measurements[%d].%s", i, name) }
		if err := decodeHex(r.MRTD[:], m.MRTD, field("mrtd")); err != nil {
			return nil, err
		}
		for j, s := range []string{m.RTMR0, m.RTMR1, m.RTMR2, m.RTMR3} {
			if err := decodeHex(r.RTMR[j][:], s, field(fmt.Sprintf("rtmr%d", j))); err != nil {
				return nil, err
			}
		}
		p.Measurements = append(p.Measurements, r)
	}
	for name, v := range f.TDAttributes {
		if _, ok := attributeBit(name); !ok {
			if name == "debug" {
				return nil, errors.New(`td_attributes: no "debug" flag; debug TDs are refused unless "allow_debug" is true`)
			}
			return nil, fmt.Errorf("td_attributes: unknown flag %q (known: %s)", name, strings.Join(attributeNames(), ", "))
		}
		if p.TDAttributes == nil {
			p.TDAttributes = map[string]bool{}
		}
		p.TDAttributes[name] = v
	}
	for _, o := range []struct {
		s     *string
		dst   []byte
		set   func([]byte)
		field string
	}{
		{f.XFAM, make([]byte, 8), func(b []byte) { p.XFAM = (*[8]byte)(b) }, "xfam"},
		{f.MRConfigID, make([]byte, 48), func(b []byte) { p.MRConfigID = (*[48]byte)(b) }, "mr_config_id"},
		{f.MROwner, make([]byte, 48), func(b []byte) { p.MROwner = (*[48]byte)(b) }, "mr_owner"},
		{f.MROwnerConfig, make([]byte, 48), func(b []byte) { p.MROwnerConfig = (*[48]byte)(b) }, "mr_owner_config"},
		{f.MinTEETCBSVN, make([]byte, 16), func(b []byte) { p.MinTEETCBSVN = (*[16]byte)(b) }, "min_tee_tcb_svn"},
	} {
		if o.s == nil {
			continue
		}
		if err := decodeHex(o.dst, *o.s, o.field); err != nil {
			return nil, err
		}
		o.set(o.dst)
	}
	return p, nil
}

func decodeHex(dst []byte, s, field string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("%s: %d hex digits, want %d", field, len(s), 2*len(dst))
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

// MarshalJSON writes the policy in its file form, so that Parse(Marshal(p))
// gives p back.
func (p *Policy) MarshalJSON() ([]byte, error) {
	f := file{Schema: Schema, AllowSimulated: p.AllowSimulated, AllowDebug: p.AllowDebug}
	for _, h := range p.ImageHashes {
		f.ImageHashes = append(f.ImageHashes, hex.EncodeToString(h[:]))
	}
	for _, r := range p.Measurements {
		f.Measurements = append(f.Measurements, fileRegisters{
			MRTD:  hex.EncodeToString(r.MRTD[:]),
			RTMR0: hex.EncodeToString(r.RTMR[0][:]),
			RTMR1: hex.EncodeToString(r.RTMR[1][:]),
			RTMR2: hex.EncodeToString(r.RTMR[2][:]),
			RTMR3: hex.EncodeToString(r.RTMR[3][:]),
		})
	}
	if len(p.TDAttributes) > 0 {
		f.TDAttributes = p.TDAttributes
	}
	hexOf := func(b []byte) *string { s := hex.EncodeToString(b); return &s }
	if p.XFAM != nil {
		f.XFAM = hexOf(p.XFAM[:])
	}
	if p.MRConfigID != nil {
		f.MRConfigID = hexOf(p.MRConfigID[:])
	}
	if p.MROwner != nil {
		f.MROwner = hexOf(p.MROwner[:])
	}
	if p.MROwnerConfig != nil {
		f.MROwnerConfig = hexOf(p.MROwnerConfig[:])
	}
	if p.MinTEETCBSVN != nil {
		f.MinTEETCBSVN = hexOf(p.MinTEETCBSVN[:])
	}
	return json.Marshal(f)
}

func attributeNames() []string {
	var n []string
	for _, f := range attributeFlags {
		n = append(n, f.name)
	}
	sort.Strings(n)
	return slices.Compact(n)
}
