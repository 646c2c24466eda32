// Package platform reads a platform capture: the inputs of RTMR0 (and of
// the firmware's PCRs) that cannot be computed from first principles because
// QEMU generates them: its ACPI blobs (fw_cfg files etc/table-loader,
// etc/acpi/rsdp, etc/acpi/tables, which depend on the QEMU version, vCPUs,
// memory and devices) and the UEFI boot variables OVMF creates for the
// devices it finds (BootOrder, Boot####).
//
// A capture is taken once per VM profile, inside a guest booted exactly as
// the workers will be (same QEMU, machine options, vCPUs, memory, devices):
//
//	modprobe qemu_fw_cfg
//	F=/sys/firmware/qemu_fw_cfg/by_name
//	base64 -w0 $F/etc/table-loader/raw   # and etc/acpi/rsdp, etc/acpi/tables
//	V=/sys/firmware/efi/efivars
//	tail -c +5 $V/BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c | base64 -w0
//	# (efivarfs prefixes 4 bytes of attributes; drop them) likewise Boot0000...
//
// and written as JSON:
//
//	{
//	  "schema": "cocoon-platform/v1",
//	  "profile": "qemu-10.1-tdx", "cpus": 2, "memory_mib": 4096,
//	  "source": "how and where it was captured",
//	  "fw_cfg": {"etc/table-loader": "<base64>", "etc/acpi/rsdp": "<base64>", "etc/acpi/tables": "<base64>"},
//	  "boot_variables": [{"name": "BootOrder", "data": "<base64>"}, {"name": "Boot0000", "data": "<base64>"}]
//	}
//
// boot_variables may be omitted: OVMF's defaults for a direct kernel boot
// (DefaultBootVariables) are then used.
//
// cpus and memory_mib are recorded so a prediction refuses a capture taken
// for another VM size: the ACPI tables list the vCPUs and memory.
package platform

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/cocoon-appliance/cocoon/internal/strictjson"
)

// Schema of the capture file.
const Schema = "cocoon-platform/v1"

// fw_cfg file names OVMF measures, in the order it measures them.
const (
	TableLoader = "etc/table-loader"
	RSDP        = "etc/acpi/rsdp"
	Tables      = "etc/acpi/tables"
)

// ACPIFiles are the measured fw_cfg files in measurement order.
var ACPIFiles = []string{TableLoader, RSDP, Tables}

// ErrInvalid is returned for a malformed capture.
var ErrInvalid = errors.New("platform: invalid capture")

// Variable is one UEFI variable's data (without efivarfs' attribute prefix).
type Variable struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// Capture is a parsed capture file.
type Capture struct {
	Schema        string            `json:"schema"`
	Profile       string            `json:"profile"`
	CPUs          int               `json:"cpus"`
	MemoryMiB     uint64            `json:"memory_mib"`
	Source        string            `json:"source"`
	FwCfg         map[string][]byte `json:"fw_cfg"`
	BootVariables []Variable        `json:"boot_variables"`
}

var bootVarRE = regexp.MustCompile(`^(BootOrder|Boot[0-9A-F]{4})$`)

// maxSize bounds a capture: QEMU's ACPI tables are tens of KiB.
const maxSize = 8 << 20

// Parse reads and validates a capture.
func Parse(r io.Reader) (*Capture, error) {
	var c Capture
	if err := strictjson.Decode(r, maxSize, &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &c, c.Validate()
}

// Load reads a capture file.
func Load(path string) (*Capture, error) {
	c, err := strictjson.Load(path, Parse)
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	return c, nil
}

// Validate checks the capture is complete and consistent.
func (c *Capture) Validate() error {
	if c.Schema != Schema {
		return fmt.Errorf("%w: schema %q, want %q", ErrInvalid, c.Schema, Schema)
	}
	if c.CPUs <= 0 || c.MemoryMiB == 0 {
		return fmt.Errorf("%w: cpus %d and memory_mib %d must be positive", ErrInvalid, c.CPUs, c.MemoryMiB)
	}
	for _, f := range ACPIFiles {
		if len(c.FwCfg[f]) == 0 {
			return fmt.Errorf("%w: fw_cfg file %s missing or empty", ErrInvalid, f)
		}
	}
	if len(c.FwCfg) != len(ACPIFiles) {
		return fmt.Errorf("%w: fw_cfg holds %d files, want exactly %v", ErrInvalid, len(c.FwCfg), ACPIFiles)
	}
	if rsdp := c.FwCfg[RSDP]; !bytes.HasPrefix(rsdp, []byte("RSD PTR ")) {
		return fmt.Errorf("%w: %s does not start with \"RSD PTR \"", ErrInvalid, RSDP)
	}
	seen := map[string]bool{}
	for _, v := range c.BootVariables {
		if !bootVarRE.MatchString(v.Name) || seen[v.Name] {
			return fmt.Errorf("%w: boot variable %q (want unique BootOrder or Boot####)", ErrInvalid, v.Name)
		}
		seen[v.Name] = true
	}
	if len(c.BootVariables) > 0 {
		order, ok := c.Variable("BootOrder")
		if !ok || len(order)%2 != 0 || len(order) == 0 {
			return fmt.Errorf("%w: boot variables without a BootOrder of whole UINT16s", ErrInvalid)
		}
	}
	return nil
}

// Variable returns a boot variable's data.
func (c *Capture) Variable(name string) ([]byte, bool) {
	for _, v := range c.BootVariables {
		if v.Name == name {
			return v.Data, true
		}
	}
	return nil, false
}

// DefaultBootVariables are the boot variables OVMF before edk2-stable202505
// (our pinned 2025.02) has created when it measures them during a direct
// kernel boot: BootOrder = {0x0000} and Boot0000 = its UiApp load option
// (attributes 0x109, "UiApp", a firmware-volume file device path). The
// load option's bytes are those a real TDVF logged (GCE TDX CCEL, see
// measure/eventlog/testdata); their SHA-384, 23ada07f…c298, is also the
// constant dstack-mr uses for this firmware generation. A capture without
// boot variables gets these.
var DefaultBootVariables = []Variable{
	{Name: "BootOrder", Data: []byte{0x00, 0x00}},
	{Name: "Boot0000", Data: mustHex("090100002c0055006900410070007000000004071400c9bdb87cebf8344faaea3ee4af6516a10406140021aa2c4614760345836e8ab6f46623317fff0400")},
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// EffectiveBootVariables are the capture's boot variables, or
// DefaultBootVariables when it has none.
func (c *Capture) EffectiveBootVariables() *Capture {
	if len(c.BootVariables) > 0 {
		return c
	}
	d := *c
	d.BootVariables = DefaultBootVariables
	return &d
}

// BootOrder returns the Boot#### entries in BootOrder order, skipping
// entries the capture does not hold (OVMF measures only variables that
// exist).
func (c *Capture) BootOrder() []Variable {
	order, ok := c.Variable("BootOrder")
	if !ok {
		return nil
	}
	var out []Variable
	for i := 0; i+1 < len(order); i += 2 {
		name := fmt.Sprintf("Boot%04X", binary.LittleEndian.Uint16(order[i:]))
		if d, ok := c.Variable(name); ok {
			out = append(out, Variable{Name: name, Data: d})
		}
	}
	return out
}
