// Package runtime is the event format the guest init uses to extend RTMR3
// (TDX) or PCR 15 (vTPM, development boot path) after the firmware has
// handed over: the static config, the GPU attestation result, and the
// "boot complete" marker. It is small, versioned and documented so that a
// verifier can replay a log it receives and compare it with the quoted
// register.
//
// # Digest of one event (version 1)
//
//	digest = H("cocoon-rtmr3/v1" || 0x00 || kind || 0x00 || payload)
//
// with H = SHA-384 for RTMR3 and SHA-256 for the PCR. The kind is part of the
// hashed bytes, so a payload measured as one kind can never be replayed as
// another. The register starts at zero and each event extends it in log
// order: rtmr3 = SHA384(rtmr3 || digest).
//
// # Log format
//
// One JSON object per line, in extend order:
//
//	{"v":1,"kind":"static-config","payload":"<base64>"}
//
// Kinds defined in v1 (others are rejected):
//
//	static-config    the static (measured) part of the runtime config, as bytes
//	gpu-attestation  the GPU gate's result (canonical JSON)
//	boot-complete    empty payload; nothing may be extended after it
package runtime

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/cocoon-appliance/cocoon/measure/register"
)

// Version of the event format.
const Version = 1

// domain separates our digests from any other use of the register.
const domain = "cocoon-rtmr3/v1"

// RTMR is the TDX register runtime events go to; PCR is the vTPM register.
const (
	RTMR = 3
	PCR  = 15
)

// Kinds.
const (
	KindStaticConfig   = "static-config"
	KindGPUAttestation = "gpu-attestation"
	KindBootComplete   = "boot-complete"
)

var kinds = map[string]bool{KindStaticConfig: true, KindGPUAttestation: true, KindBootComplete: true}

// BootLog is the log the init measures at every boot (init/boot): the
// static config, the canonical GPU attestation result when the static
// config requires a GPU (nil: none), then boot complete. Simulated guests
// and predictions replay the same log.
func BootLog(static, gpu []byte) Log {
	l := Log{{Kind: KindStaticConfig, Payload: static}}
	if gpu != nil {
		l = append(l, Event{Kind: KindGPUAttestation, Payload: gpu})
	}
	return append(l, Event{Kind: KindBootComplete})
}

// MaxPayload bounds one event's payload.
const MaxPayload = 64 << 10

// ErrInvalid is returned for a malformed event or log.
var ErrInvalid = errors.New("runtime: invalid event log")

// Event is one runtime measurement.
type Event struct {
	Kind    string
	Payload []byte
}

// Validate checks the event is one of version 1.
func (e Event) Validate() error {
	if !kinds[e.Kind] {
		return fmt.Errorf("%w: unknown kind %q", ErrInvalid, e.Kind)
	}
	if len(e.Payload) > MaxPayload {
		return fmt.Errorf("%w: %s payload of %d bytes, max %d", ErrInvalid, e.Kind, len(e.Payload), MaxPayload)
	}
	if e.Kind == KindBootComplete && len(e.Payload) != 0 {
		return fmt.Errorf("%w: boot-complete carries a %d-byte payload, want none", ErrInvalid, len(e.Payload))
	}
	return nil
}

// Digest is the event's digest under h (SHA-384 for RTMR3, SHA-256 for the PCR).
func (e Event) Digest(h crypto.Hash) []byte {
	return register.Digest(h, []byte(domain), []byte{0}, []byte(e.Kind), []byte{0}, e.Payload)
}

// Register returns the extend this event makes on TDX (h = SHA-384, RTMR3)
// or on the vTPM (h = SHA-256, PCR 15).
func (e Event) Register(h crypto.Hash) register.Event {
	idx := RTMR
	if h == crypto.SHA256 {
		idx = PCR
	}
	return register.Event{Index: idx, Type: register.EvEventTag, Digest: e.Digest(h),
		Description: fmt.Sprintf("cocoon runtime v%d %s (%d bytes)", Version, e.Kind, len(e.Payload))}
}

// Log is a sequence of runtime events.
type Log []Event

// Validate checks every event and that nothing follows boot-complete.
func (l Log) Validate() error {
	for i, e := range l {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		if e.Kind == KindBootComplete && i != len(l)-1 {
			return fmt.Errorf("%w: event %d follows boot-complete", ErrInvalid, i+1)
		}
	}
	return nil
}

// Replay returns the register value the log produces from zero.
func (l Log) Replay(h crypto.Hash) []byte {
	reg := make([]byte, h.Size())
	for _, e := range l {
		reg = register.Digest(h, reg, e.Digest(h))
	}
	return reg
}

// Events converts the log into register events.
func (l Log) Events(h crypto.Hash) []register.Event {
	out := make([]register.Event, len(l))
	for i, e := range l {
		out[i] = e.Register(h)
	}
	return out
}

type line struct {
	V       int    `json:"v"`
	Kind    string `json:"kind"`
	Payload string `json:"payload"`
}

// Marshal renders the log, one JSON object per line.
func (l Log) Marshal() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, e := range l {
		j, err := json.Marshal(line{V: Version, Kind: e.Kind, Payload: base64.StdEncoding.EncodeToString(e.Payload)})
		if err != nil {
			return nil, err
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// maxLine bounds one line: base64 of MaxPayload plus the envelope.
const maxLine = MaxPayload*4/3 + 256

// MaxEvents bounds a log.
const MaxEvents = 1024

// Parse reads a log written by Marshal (or by the init, appending lines).
func Parse(r io.Reader) (Log, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var l Log
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		if len(l) == MaxEvents {
			return nil, fmt.Errorf("%w: more than %d events", ErrInvalid, MaxEvents)
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var ln line
		if err := dec.Decode(&ln); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrInvalid, n, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: line %d: trailing data", ErrInvalid, n)
		}
		if ln.V != Version {
			return nil, fmt.Errorf("%w: line %d: version %d, want %d", ErrInvalid, n, ln.V, Version)
		}
		p, err := base64.StdEncoding.Strict().DecodeString(ln.Payload)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: payload: %v", ErrInvalid, n, err)
		}
		l = append(l, Event{Kind: ln.Kind, Payload: p})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return l, nil
}
