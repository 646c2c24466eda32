// Package config is the runtime configuration the host hands to the guest
// init on a second, read-only virtio disk (serial "cocoon-config").
//
// On-disk format, version 1 (all integers little endian):
//
//	offset 0   8 bytes  magic "COCOONCF"
//	offset 8   uint32   format version, 1
//	offset 12  uint32   length N of the JSON document, 2..MaxLength
//	offset 16  N bytes  JSON document (below)
//	           zero padding up to a multiple of SectorSize (at least one sector)
//
// The JSON document is strict (unknown fields are refused):
//
//	{"schema":"cocoon-config/v1",
//	 "static":{"model":"…","gpu_required":true,"policy":"…","expect":{"pcr4":"…","pcr9":"…"}},
//	 "runtime":{"network":{"mode":"dhcp"|"static","address":"10.0.2.15/24","gateway":"10.0.2.2","dns":["10.0.2.3"]},
//	            "worker_args":["-listen",":8080"],"registry_url":"https://…"}}
//
// "static" is what the guest measures (into RTMR3 / PCR 15, by the init):
// it must be the canonical encoding (Go's encoding/json of Static, fields in
// declaration order, no spaces), so the measured bytes are exactly the
// bytes the guest acts on. "runtime" is not measured: it holds what may
// differ between hosts running the same deployment.
package config

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/cocoon-appliance/cocoon/internal/strictjson"
)

// Magic, Version and sizes of the on-disk format.
const (
	Magic      = "COCOONCF"
	Version    = 1
	SectorSize = 4096
	HeaderSize = 16
	MaxLength  = 1 << 20
	Schema     = "cocoon-config/v1"
)

// Errors of Decode; each wrapping error says what was expected and found.
var (
	ErrMagic        = errors.New("config: bad magic")
	ErrVersion      = errors.New("config: unsupported version")
	ErrLength       = errors.New("config: bad length")
	ErrInvalid      = errors.New("config: invalid document")
	ErrNotCanonical = errors.New("config: static part is not in canonical form")
)

// Config is the decoded document.
type Config struct {
	Schema  string  `json:"schema"`
	Static  Static  `json:"static"`
	Runtime Runtime `json:"runtime"`
}

// Static is the measured part.
type Static struct {
	Model       string `json:"model"`
	GPURequired bool   `json:"gpu_required"`
	Policy      string `json:"policy"`
	// Expect holds the boot registers the guest must find before it goes
	// on, as `cocoon measure tpm|tdx` predicts them for the image:
	// "pcr0".."pcr23" (SHA-256, 64 hex digits) on the vTPM path or
	// "rtmr0".."rtmr2" (SHA-384, 96 hex digits) on TDX, never the runtime
	// register (PCR 15 / RTMR3), which measures this very document. All
	// keys name one kind of register. Empty: no expectation (a remote
	// verifier still checks the quote; this is the guest's own, earlier
	// check that it booted the kernel, initrd and command line the
	// deployment was made for).
	Expect map[string]string `json:"expect,omitempty"`
}

// ExpectIndex parses an Expect key: ("pcr", 9) for "pcr9".
func ExpectIndex(key string) (kind string, index int, ok bool) {
	for _, k := range []struct {
		prefix string
		max    int
	}{{"pcr", 23}, {"rtmr", 2}} {
		rest, found := strings.CutPrefix(key, k.prefix)
		if !found || rest == "" || len(rest) > 2 || (len(rest) == 2 && rest[0] == '0') || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		i, err := strconv.Atoi(rest)
		if err != nil || i < 0 || i > k.max {
			return "", 0, false
		}
		return k.prefix, i, true
	}
	return "", 0, false
}

func (s Static) validateExpect() error {
	kinds := map[string]bool{}
	for key, v := range s.Expect {
		kind, i, ok := ExpectIndex(key)
		if !ok {
			return fmt.Errorf("%w: expect key %q, want pcr0..pcr23 or rtmr0..rtmr2", ErrInvalid, key)
		}
		if kind == "pcr" && i == 15 {
			return fmt.Errorf("%w: expect %q: PCR 15 measures this config itself and cannot be expected in it", ErrInvalid, key)
		}
		size := 32
		if kind == "rtmr" {
			size = 48
		}
		if b, err := hex.DecodeString(v); err != nil || len(b) != size || v != strings.ToLower(v) {
			return fmt.Errorf("%w: expect %s = %q, want %d lower-case hex digits", ErrInvalid, key, v, 2*size)
		}
		kinds[kind] = true
	}
	if len(kinds) > 1 {
		return fmt.Errorf("%w: expect names both PCRs and RTMRs; a guest has one kind of measurement register", ErrInvalid)
	}
	return nil
}

// Runtime is the unmeasured part.
type Runtime struct {
	Network     Network  `json:"network"`
	WorkerArgs  []string `json:"worker_args,omitempty"`
	RegistryURL string   `json:"registry_url,omitempty"`
}

// Network configures the guest's one interface.
type Network struct {
	Mode    string   `json:"mode"` // "dhcp" or "static"
	Address string   `json:"address,omitempty"`
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
}

// Validate checks the fields' syntax.
func (c *Config) Validate() error {
	if c.Schema != Schema {
		return fmt.Errorf("%w: schema %q, want %q", ErrInvalid, c.Schema, Schema)
	}
	if err := c.Static.validateExpect(); err != nil {
		return err
	}
	n := c.Runtime.Network
	switch n.Mode {
	case "dhcp":
		if n.Address != "" || n.Gateway != "" {
			return fmt.Errorf("%w: network mode dhcp with address %q gateway %q, want none", ErrInvalid, n.Address, n.Gateway)
		}
	case "static":
		if _, err := netip.ParsePrefix(n.Address); err != nil {
			return fmt.Errorf("%w: network address %q, want CIDR", ErrInvalid, n.Address)
		}
		if n.Gateway != "" {
			if _, err := netip.ParseAddr(n.Gateway); err != nil {
				return fmt.Errorf("%w: network gateway %q, want an IP address", ErrInvalid, n.Gateway)
			}
		}
	default:
		return fmt.Errorf("%w: network mode %q, want dhcp or static", ErrInvalid, n.Mode)
	}
	for _, d := range n.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return fmt.Errorf("%w: dns %q, want an IP address", ErrInvalid, d)
		}
	}
	if u := c.Runtime.RegistryURL; u != "" {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return fmt.Errorf("%w: registry_url %q, want an http(s) URL", ErrInvalid, u)
		}
	}
	return nil
}

// StaticBytes is the canonical encoding of the static part: what is measured.
func (s Static) StaticBytes() ([]byte, error) { return json.Marshal(s) }

// Encode writes the disk image (a multiple of SectorSize bytes). The host uses it.
func Encode(c *Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	doc, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if len(doc) > MaxLength {
		return nil, fmt.Errorf("%w: document of %d bytes, want at most %d", ErrLength, len(doc), MaxLength)
	}
	size := (HeaderSize + len(doc) + SectorSize - 1) / SectorSize * SectorSize
	out := make([]byte, size)
	copy(out, Magic)
	binary.LittleEndian.PutUint32(out[8:], Version)
	binary.LittleEndian.PutUint32(out[12:], uint32(len(doc)))
	copy(out[HeaderSize:], doc)
	return out, nil
}

// Decode reads a config disk. It returns the document and the static part's
// bytes as received, which are its canonical encoding (Decode refuses any
// other), for measurement.
func Decode(r io.ReaderAt) (*Config, []byte, error) {
	var h [HeaderSize]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil, nil, fmt.Errorf("config: read header: %w", err)
	}
	if string(h[:8]) != Magic {
		return nil, nil, fmt.Errorf("%w: %q, want %q", ErrMagic, h[:8], Magic)
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != Version {
		return nil, nil, fmt.Errorf("%w: %d, want %d", ErrVersion, v, Version)
	}
	n := binary.LittleEndian.Uint32(h[12:])
	if n < 2 || n > MaxLength {
		return nil, nil, fmt.Errorf("%w: %d, want 2..%d", ErrLength, n, MaxLength)
	}
	doc := make([]byte, n)
	if _, err := r.ReadAt(doc, HeaderSize); err != nil {
		return nil, nil, fmt.Errorf("%w: read %d bytes of JSON: %v", ErrLength, n, err)
	}
	return decodeJSON(doc)
}

func decodeJSON(doc []byte) (*Config, []byte, error) {
	var raw struct {
		Schema  string          `json:"schema"`
		Static  json.RawMessage `json:"static"`
		Runtime json.RawMessage `json:"runtime"`
	}
	if err := strict(doc, &raw); err != nil {
		return nil, nil, err
	}
	c := &Config{Schema: raw.Schema}
	if raw.Static == nil || raw.Runtime == nil {
		return nil, nil, fmt.Errorf("%w: static and runtime are required", ErrInvalid)
	}
	if err := strict(raw.Static, &c.Static); err != nil {
		return nil, nil, err
	}
	if err := strict(raw.Runtime, &c.Runtime); err != nil {
		return nil, nil, err
	}
	canon, err := c.Static.StaticBytes()
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(canon, raw.Static) {
		return nil, nil, fmt.Errorf("%w: got %q, want %q", ErrNotCanonical, raw.Static, canon)
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	return c, []byte(raw.Static), nil
}

// strict decodes one JSON value with unknown fields and trailing data
// refused (internal/strictjson), as ErrInvalid.
func strict(data []byte, v any) error {
	if err := strictjson.Decode(bytes.NewReader(data), MaxLength, v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}
