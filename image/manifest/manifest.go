// Package manifest is the record of one image build: what went in, what came
// out, and the values a verifier needs (verity root hash, command line).
//
// The JSON is canonical: fields in struct order, inputs and outputs in a
// fixed order, two-space indent, trailing newline. Two builds of the same
// inputs produce the same manifest bytes, so the manifest's own sha256 is a
// short name for the whole image.
package manifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/cocoon-appliance/cocoon/internal/strictjson"
)

// Schema names this format; bump it on any incompatible change.
const Schema = "cocoon-image-manifest/v1"

// ErrInvalid is returned for a manifest that does not parse or validate.
var ErrInvalid = errors.New("manifest: invalid")

// Manifest describes one image.
type Manifest struct {
	Schema          string   `json:"schema"`
	Builder         string   `json:"builder"`
	Toolchain       string   `json:"toolchain"`
	SourceDateEpoch int64    `json:"source_date_epoch"`
	Inputs          []Input  `json:"inputs"`
	Outputs         []Output `json:"outputs"`
	Kernel          Kernel   `json:"kernel"`
	Verity          Verity   `json:"verity"`
	Cmdline         string   `json:"cmdline"`
}

// Input is one thing the build consumed.
type Input struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// Output is one artifact in the output directory.
type Output struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Kernel records the kernel release and the modules shipped in the initrd,
// in load order.
type Kernel struct {
	Release string   `json:"release"`
	Modules []string `json:"modules"`
}

// Verity records the root filesystem's dm-verity parameters.
type Verity struct {
	RootHash      string `json:"root_hash"`
	Salt          string `json:"salt"`
	HashAlgorithm string `json:"hash_algorithm"`
	DataBlockSize uint32 `json:"data_block_size"`
	HashBlockSize uint32 `json:"hash_block_size"`
	DataBlocks    uint64 `json:"data_blocks"`
	RootPartUUID  string `json:"root_partuuid"`
	HashPartUUID  string `json:"verity_partuuid"`
}

// Output returns the named output.
func (m *Manifest) Output(name string) (Output, bool) {
	for _, o := range m.Outputs {
		if o.Name == name {
			return o, true
		}
	}
	return Output{}, false
}

// Input returns the named input.
func (m *Manifest) Input(name string) (Input, bool) {
	for _, in := range m.Inputs {
		if in.Name == name {
			return in, true
		}
	}
	return Input{}, false
}

var (
	hexRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+@/-]*$`)
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// Validate checks the manifest is complete and well formed.
func (m *Manifest) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if m.Schema != Schema {
		return bad("schema %q, want %q", m.Schema, Schema)
	}
	if m.Builder == "" || m.Toolchain == "" {
		return bad("no builder or toolchain")
	}
	if m.SourceDateEpoch < 0 {
		return bad("negative source_date_epoch %d", m.SourceDateEpoch)
	}
	if len(m.Inputs) == 0 || len(m.Outputs) == 0 {
		return bad("%d inputs and %d outputs, want some of each", len(m.Inputs), len(m.Outputs))
	}
	seen := map[string]bool{}
	for _, in := range m.Inputs {
		if !nameRE.MatchString(in.Name) || in.Version == "" || !hexRE.MatchString(in.SHA256) || seen["i"+in.Name] {
			return bad("input %+v: want a unique name, a version and a lowercase sha256", in)
		}
		seen["i"+in.Name] = true
	}
	for _, o := range m.Outputs {
		if !nameRE.MatchString(o.Name) || o.Size < 0 || !hexRE.MatchString(o.SHA256) || seen["o"+o.Name] {
			return bad("output %+v: want a unique name, a size and a lowercase sha256", o)
		}
		seen["o"+o.Name] = true
	}
	v := m.Verity
	if !hexRE.MatchString(v.RootHash) || v.HashAlgorithm != "sha256" || v.DataBlocks == 0 ||
		!uuidRE.MatchString(v.RootPartUUID) || !uuidRE.MatchString(v.HashPartUUID) {
		return bad("verity %+v incomplete", v)
	}
	if _, err := hex.DecodeString(v.Salt); err != nil {
		return bad("verity salt %q is not hex", v.Salt)
	}
	if m.Cmdline == "" || m.Kernel.Release == "" {
		return bad("no cmdline or kernel release")
	}
	return nil
}

// Marshal renders the canonical JSON.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxSize bounds what Parse reads: a manifest is a few KiB.
const maxSize = 1 << 20

// Parse reads and validates a manifest. Unknown fields are errors: a
// manifest from a newer builder must not be half understood.
func Parse(r io.Reader) (*Manifest, error) {
	var m Manifest
	if err := strictjson.Decode(r, maxSize, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Load reads a manifest file.
func Load(path string) (*Manifest, error) {
	m, err := strictjson.Load(path, Parse)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return m, nil
}
