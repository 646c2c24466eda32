package measured

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// fakeSysfs lays out the GCE CCEL and RTMR values as the kernel shows them,
// under a temporary root. hexText writes the values as hex text instead of
// binary.
func fakeSysfs(t *testing.T, hexText bool) (*TDX, string) {
	t.Helper()
	root := t.TempDir()
	raw, err := os.ReadFile(gceLog)
	if err != nil {
		t.Fatal(err)
	}
	write := func(p string, b []byte) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(CCELPath, raw)
	for i := 0; i < 4; i++ {
		v := make([]byte, 48)
		if h, ok := gceRTMR[i]; ok {
			v, _ = hex.DecodeString(h)
		}
		if hexText {
			v = []byte(hex.EncodeToString(v) + "\n")
		}
		write(filepath.Join(MeasurementsDir, "rtmr"+string(rune('0'+i))+":sha384"), v)
	}
	return &TDX{Root: root}, root
}

func TestTDXSysfs(t *testing.T) {
	for _, hexText := range []bool{false, true} {
		d, _ := fakeSysfs(t, hexText)
		if err := Check(d); err != nil {
			t.Fatalf("hex=%v: %v", hexText, err)
		}
	}
}

func TestTDXExtendWritesDigest(t *testing.T) {
	d, root := fakeSysfs(t, false)
	e := runtime.Event{Kind: runtime.KindBootComplete}
	if err := d.Extend(e); err != nil {
		t.Fatal(err)
	}
	// A plain file cannot extend; it shows what the kernel was handed.
	got, _ := os.ReadFile(filepath.Join(root, MeasurementsDir, "rtmr3:sha384"))
	if !bytes.Equal(got, e.Digest(crypto.SHA384)) {
		t.Fatalf("wrote %x, want the event's SHA-384 digest %x", got, e.Digest(crypto.SHA384))
	}
	if err := d.Extend(runtime.Event{Kind: "shell"}); !errors.Is(err, runtime.ErrInvalid) {
		t.Fatalf("invalid event: %v", err)
	}
}

func TestTDXAbsent(t *testing.T) {
	d := &TDX{Root: t.TempDir()}
	if _, err := d.Read(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Read: %v", err)
	}
	if _, err := d.EventLog(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("EventLog: %v", err)
	}
	if err := d.Extend(runtime.Event{Kind: runtime.KindBootComplete}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Extend: %v", err)
	}
	if err := Check(d); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Check: %v", err)
	}
}

func TestTDXBadValue(t *testing.T) {
	d, root := fakeSysfs(t, false)
	if err := os.WriteFile(filepath.Join(root, MeasurementsDir, "rtmr1:sha384"), []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(); err == nil {
		t.Fatal("a 5-byte RTMR value was accepted")
	} else {
		t.Log(err)
	}
}
