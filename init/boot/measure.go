package boot

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/init/measured"
	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// DevPolicy is the static-config policy under which a guest may run with no
// measurement device (QEMU direct boot without swtpm, for fast tests). Any
// other policy requires TDX or a TPM: fail closed.
const DevPolicy = "dev"

// ErrUnmeasured is returned when there is no TPM and no TDX measurement
// interface and the policy does not allow that.
var ErrUnmeasured = errors.New("no TPM and no TDX measurement registers")

// CheckMeasured opens the measurement device (TDX first, then a TPM),
// replays the firmware's event log and compares it with the live
// registers, then compares the registers with the static config's
// expectations (config.Static.Expect). Without a device it continues only
// under DevPolicy and only when the config expects nothing.
type CheckMeasured struct {
	// Open returns the device; measured.ErrNotSupported means none.
	Open func() (measured.Registers, error)
}

func (CheckMeasured) String() string {
	return "replay the firmware event log and compare it with the live RTMRs / PCRs"
}

// Run implements Step.
func (c CheckMeasured) Run(_ context.Context, s *State) error {
	r, err := c.Open()
	if errors.Is(err, measured.ErrNotSupported) {
		if s.Config != nil && s.Config.Static.Policy == DevPolicy && len(s.Config.Static.Expect) == 0 {
			fmt.Fprintf(s.Log, "cocoon-init: WARNING: %v; policy %q lets this development boot run UNMEASURED\n", ErrUnmeasured, DevPolicy)
			return nil
		}
		return fmt.Errorf("%w (policy %q requires one): %v", ErrUnmeasured, policyOf(s), err)
	}
	if err != nil {
		return err
	}
	if err := measured.Check(r); err != nil {
		return err
	}
	want, err := expected(s, r.Kind())
	if err != nil {
		return err
	}
	if err := measured.CheckExpected(r, want); err != nil {
		return fmt.Errorf("%w (the kernel, initrd or command line is not the image this config was made for)", err)
	}
	if len(want) > 0 {
		fmt.Fprintf(s.Log, "cocoon-init: %d boot registers equal the config's expectations\n", len(want))
	}
	s.Registers = r
	return nil
}

// ErrExpectKind is returned when the config expects registers of the other
// kind than the guest has (RTMRs on a vTPM guest or PCRs in a TD).
var ErrExpectKind = errors.New("config expects another kind of measurement register")

// expected converts the config's expectations for a device of kind k.
func expected(s *State, k eventlog.Kind) (map[int][]byte, error) {
	if s.Config == nil || len(s.Config.Static.Expect) == 0 {
		return nil, nil
	}
	kind := "rtmr"
	if k == eventlog.TPM {
		kind = "pcr"
	}
	want := map[int][]byte{}
	for key, v := range s.Config.Static.Expect {
		kk, i, ok := config.ExpectIndex(key)
		if !ok || kk != kind {
			return nil, fmt.Errorf("%w: %q on a guest with %ss", ErrExpectKind, key, strings.ToUpper(kind))
		}
		b, err := hex.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("expect %s: %w", key, err)
		}
		want[i] = b
	}
	return want, nil
}

func policyOf(s *State) string {
	if s.Config == nil {
		return ""
	}
	return s.Config.Static.Policy
}

// OpenMeasured opens TDX's sysfs registers when present, else the TPM.
func OpenMeasured() (measured.Registers, error) {
	t := &measured.TDX{}
	if _, err := t.Read(); err == nil {
		return t, nil
	}
	tpm, _, err := measured.OpenTPM()
	if err != nil {
		return nil, err
	}
	return tpm, nil
}

// MeasureConfig extends the static config, the GPU gate's result when
// there is one, and the boot-complete marker into RTMR3 / PCR 15
// (measure/runtime v1), appends them to the runtime
// log, and prints the registers a verifier compares with its prediction.
type MeasureConfig struct {
	LogPath string // measured.RuntimeLogPath in the guest
}

func (m MeasureConfig) String() string {
	return "extend RTMR3/PCR15 with static-config and boot-complete >> " + m.LogPath
}

// Run implements Step.
func (m MeasureConfig) Run(_ context.Context, s *State) error {
	if s.Registers == nil {
		fmt.Fprintln(s.Log, "cocoon-init: WARNING: no measurement device: static config NOT measured")
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(m.LogPath), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	events := runtime.BootLog(s.StaticConfig, s.GPUAttestation)
	if err := measured.Measure(s.Registers, events, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	regs, err := s.Registers.Read()
	if err != nil {
		return err
	}
	fmt.Fprintln(s.Log, "cocoon-init: registers "+formatRegisters(s.Registers.Kind(), regs))
	return nil
}

// formatRegisters prints the registers the image determines: RTMR0-3, or
// PCR 4, 9 and 15.
func formatRegisters(k eventlog.Kind, regs map[int][]byte) string {
	want := []int{0, 1, 2, 3}
	if k == eventlog.TPM {
		want = []int{4, 9, 15}
	}
	var parts []string
	for _, i := range want {
		if v, ok := regs[i]; ok {
			parts = append(parts, strings.ToLower(measured.Name(k, i))+"="+hex.EncodeToString(v))
		}
	}
	return strings.Join(parts, " ")
}
