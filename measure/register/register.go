// Package register models measurement registers and the events that extend
// them: Intel TDX RTMRs (SHA-384) and TPM PCRs (SHA-256 bank).
//
// Both follow the same rule (TDX module spec, TDG.MR.RTMR.EXTEND; TPM 2.0
// Part 3 §22.2 TPM2_PCR_Extend): new = H(old || digest), starting from all
// zeros. A prediction is a list of Events, each with a description, so a
// verifier can print the whole predicted log and compare it event by event
// with a real one.
package register

import (
	"bytes"
	"crypto"
	_ "crypto/sha256" // register SHA-256 for crypto.Hash
	_ "crypto/sha512" // register SHA-384
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrDigest is returned for a digest of the wrong size for its bank.
var ErrDigest = errors.New("register: bad digest")

// TCG event types used in predictions (TCG PC Client Platform Firmware
// Profile, §10.4.1), plus the CC event types of the UEFI spec.
const (
	EvPostCode                 uint32 = 0x00000001
	EvSeparator                uint32 = 0x00000004
	EvEventTag                 uint32 = 0x00000006
	EvIPL                      uint32 = 0x0000000D
	EvPlatformConfigFlags      uint32 = 0x0000000A
	EvEFIVariableDriverConfig  uint32 = 0x80000001
	EvEFIVariableBoot          uint32 = 0x80000002
	EvEFIBootServicesApp       uint32 = 0x80000003
	EvEFIAction                uint32 = 0x80000007
	EvEFIPlatformFirmwareBlob2 uint32 = 0x8000000A
	EvEFIHandoffTables2        uint32 = 0x8000000B
	EvEFIVariableBoot2         uint32 = 0x8000000C
)

var typeNames = map[uint32]string{
	EvPostCode: "EV_POST_CODE", EvSeparator: "EV_SEPARATOR", EvEventTag: "EV_EVENT_TAG", EvIPL: "EV_IPL",
	EvPlatformConfigFlags: "EV_PLATFORM_CONFIG_FLAGS", EvEFIVariableDriverConfig: "EV_EFI_VARIABLE_DRIVER_CONFIG",
	EvEFIVariableBoot: "EV_EFI_VARIABLE_BOOT", EvEFIBootServicesApp: "EV_EFI_BOOT_SERVICES_APPLICATION",
	EvEFIAction: "EV_EFI_ACTION", EvEFIPlatformFirmwareBlob2: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
	EvEFIHandoffTables2: "EV_EFI_HANDOFF_TABLES2", EvEFIVariableBoot2: "EV_EFI_VARIABLE_BOOT2",
}

// TypeName names a TCG event type.
func TypeName(t uint32) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%08x", t)
}

// Event is one extend.
type Event struct {
	// Index is the register: 0-3 for RTMR0-3, 0-23 for PCRs.
	Index int
	// Type is the TCG event type the firmware logs with it.
	Type uint32
	// Digest is what gets extended (48 bytes for RTMRs, 32 for SHA-256 PCRs).
	Digest []byte
	// Description says what was measured and where the rule comes from.
	Description string
}

func (e Event) String() string {
	return fmt.Sprintf("[%d] %-32s %s  %s", e.Index, TypeName(e.Type), hex.EncodeToString(e.Digest), e.Description)
}

// Bank is a set of registers of one hash algorithm.
type Bank struct {
	Hash crypto.Hash
	Regs [][]byte
}

// NewBank returns n zeroed registers.
func NewBank(h crypto.Hash, n int) *Bank {
	b := &Bank{Hash: h, Regs: make([][]byte, n)}
	for i := range b.Regs {
		b.Regs[i] = make([]byte, h.Size())
	}
	return b
}

// Extend applies one event.
func (b *Bank) Extend(e Event) error {
	if e.Index < 0 || e.Index >= len(b.Regs) {
		return fmt.Errorf("%w: register %d out of range 0..%d", ErrDigest, e.Index, len(b.Regs)-1)
	}
	if len(e.Digest) != b.Hash.Size() {
		return fmt.Errorf("%w: %d-byte digest for a %d-byte register (%s)", ErrDigest, len(e.Digest), b.Hash.Size(), e.Description)
	}
	h := b.Hash.New()
	h.Write(b.Regs[e.Index])
	h.Write(e.Digest)
	b.Regs[e.Index] = h.Sum(nil)
	return nil
}

// Replay extends a fresh bank of n registers with every event.
func Replay(h crypto.Hash, n int, events []Event) (*Bank, error) {
	b := NewBank(h, n)
	for _, e := range events {
		if err := b.Extend(e); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Digest hashes data with h.
func Digest(h crypto.Hash, data ...[]byte) []byte {
	d := h.New()
	for _, b := range data {
		d.Write(b)
	}
	return d.Sum(nil)
}

// Mismatch locates the first event of a log whose replay leaves a register
// different from an expected value.
type Mismatch struct {
	Index     int
	Want, Got []byte
}

func (m Mismatch) Error() string {
	return fmt.Sprintf("register %d = %x, want %x", m.Index, m.Got, m.Want)
}

// Compare checks replayed registers against expected ones (nil entries are
// not checked) and returns every mismatch.
func Compare(b *Bank, want [][]byte) []Mismatch {
	var out []Mismatch
	for i, w := range want {
		if w == nil || i >= len(b.Regs) {
			continue
		}
		if !bytes.Equal(b.Regs[i], w) {
			out = append(out, Mismatch{Index: i, Want: w, Got: b.Regs[i]})
		}
	}
	return out
}
