package measured

import (
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// Default TDX paths: the CCEL ACPI table's data (the log area, ACPI 6.5
// §5.2.34) and the measurement registers Linux >= 6.16 exposes in sysfs
// (Documentation/ABI/testing/sysfs-devices-virtual-misc-tdx_guest).
const (
	CCELPath        = "/sys/firmware/acpi/tables/data/CCEL"
	MeasurementsDir = "/sys/class/misc/tdx_guest/measurements"
)

// TDX is the TDX guest's registers through sysfs. Attestation reports
// (configfs-tsm) are another package's; this one only reads, checks and
// extends.
type TDX struct {
	// Root prefixes the absolute paths below ("" = "/"), so tests can
	// point it at a fake sysfs tree.
	Root string
	// CCEL and Measurements default to CCELPath and MeasurementsDir.
	CCEL, Measurements string
}

func (t *TDX) path(p, def string) string {
	if p == "" {
		p = def
	}
	return filepath.Join("/", t.Root, p)
}

func (t *TDX) rtmr(i int) string {
	return filepath.Join(t.path(t.Measurements, MeasurementsDir), fmt.Sprintf("rtmr%d:sha384", i))
}

// Kind implements Registers.
func (*TDX) Kind() eventlog.Kind { return eventlog.CCEL }

// Read implements Registers: RTMR0-3. The kernel's attributes are binary
// (48 bytes); a hex text value is also accepted.
func (t *TDX) Read() (map[int][]byte, error) {
	out := make(map[int][]byte, 4)
	for i := 0; i < 4; i++ {
		p := t.rtmr(i)
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s absent (Linux >= 6.16 with tdx_guest is needed)", ErrNotSupported, p)
		}
		if err != nil {
			return nil, err
		}
		v, err := rtmrValue(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out[i] = v
	}
	return out, nil
}

func rtmrValue(b []byte) ([]byte, error) {
	n := crypto.SHA384.Size()
	if len(b) == n {
		return b, nil
	}
	if s := strings.TrimSpace(string(b)); len(s) == 2*n {
		if v, err := hex.DecodeString(s); err == nil {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%d bytes, want a %d-byte SHA-384 value (binary or hex)", len(b), n)
}

// EventLog implements Registers.
func (t *TDX) EventLog() ([]byte, error) {
	p := t.path(t.CCEL, CCELPath)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s absent (no CCEL ACPI table)", ErrNotSupported, p)
	}
	return b, err
}

// Extend implements Registers: writing a 48-byte digest to rtmr3:sha384
// makes the kernel call TDG.MR.RTMR.EXTEND (TDX module ABI spec) for RTMR3.
// The write must be one write(2) of exactly the digest.
func (t *TDX) Extend(e runtime.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	p := t.rtmr(runtime.RTMR)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s absent (Linux >= 6.16 with tdx_guest is needed)", ErrNotSupported, p)
	}
	if err != nil {
		return err
	}
	d := e.Digest(crypto.SHA384)
	n, err := f.Write(d)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != len(d) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(d))
	}
	if err != nil {
		return fmt.Errorf("extending RTMR3 through %s: %w", p, err)
	}
	return nil
}
