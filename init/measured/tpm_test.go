package measured

import (
	"bytes"
	"crypto"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/cocoon-appliance/cocoon/internal/swtpmtest"
	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// TestSwtpm: the TPM implementation against a real TPM 2.0 (swtpm/libtpms):
// PCR 15 after Measure equals measure/runtime's replay of the events.
func TestSwtpm(t *testing.T) {
	d := &TPM{T: swtpmtest.Start(t, "").T, LogPath: filepath.Join(t.TempDir(), "absent")}
	before, err := d.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 24 {
		t.Fatalf("read %d PCRs, want 24", len(before))
	}
	if !bytes.Equal(before[runtime.PCR], make([]byte, 32)) {
		t.Fatalf("PCR 15 = %x before any extend", before[runtime.PCR])
	}
	t.Logf("PCR 17 after startup: %x", before[17]) // locality-4 PCRs start at all ones

	events := runtime.Log{
		{Kind: runtime.KindStaticConfig, Payload: []byte(`{"schema":"cocoon-static/v1"}`)},
		{Kind: runtime.KindBootComplete},
	}
	var log bytes.Buffer
	if err := Measure(d, events, &log); err != nil {
		t.Fatal(err)
	}
	after, err := d.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := events.Replay(crypto.SHA256)
	if !bytes.Equal(after[runtime.PCR], want) {
		t.Fatalf("PCR 15 = %x, want %x (runtime.Log.Replay)", after[runtime.PCR], want)
	}
	parsed, err := runtime.Parse(&log)
	if err != nil || !bytes.Equal(parsed.Replay(crypto.SHA256), after[runtime.PCR]) {
		t.Fatalf("runtime log does not replay to PCR 15: %v", err)
	}
	for i := range 24 {
		if i != runtime.PCR && !bytes.Equal(before[i], after[i]) {
			t.Errorf("PCR %d changed: %x -> %x", i, before[i], after[i])
		}
	}
	t.Logf("PCR 15 = %x", after[runtime.PCR])

	if _, err := d.EventLog(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("EventLog without a log: %v", err)
	}
}

func TestOpenTPMAbsent(t *testing.T) {
	old := TPMDevices
	t.Cleanup(func() { TPMDevices = old })
	TPMDevices = []string{filepath.Join(t.TempDir(), "tpm0")}
	if _, _, err := OpenTPM(); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("err = %v", err)
	}
}

// TestRealTPM runs against the machine's TPM when it has one (in the guest,
// or a host with /dev/tpmrm0): reads the PCRs and, if the firmware log is
// readable, checks it. It never extends a real PCR.
func TestRealTPM(t *testing.T) {
	if os.Getenv("COCOON_REAL_TPM") == "" {
		t.Skip("COCOON_REAL_TPM unset")
	}
	d, c, err := OpenTPM()
	if errors.Is(err, ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := d.Read(); err != nil {
		t.Fatal(err)
	}
	if err := Check(d); err != nil && !errors.Is(err, ErrNotSupported) {
		t.Fatal(err)
	}
}

// TestSwtpmCheck: Check against a real TPM. A real GCE vTPM log is replayed
// into a fresh swtpm (each SHA-256 event digest extended into its PCR), so
// the live PCRs are what that firmware would have left; Check passes, also
// after runtime events went to PCR 15, and names PCR 8 once it is extended
// behind the log's back.
func TestSwtpmCheck(t *testing.T) {
	const logPath = "testdata/gce-cos101-vtpm.bin"
	d := &TPM{T: swtpmtest.Start(t, "").T, LogPath: logPath}
	raw, err := d.EventLog()
	if err != nil {
		t.Fatal(err)
	}
	events, err := eventlog.Parse(raw, eventlog.TPM)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		extendPCR(t, d, e.Index, e.Digest)
	}
	if err := Check(d); err != nil {
		t.Fatal(err)
	}
	if err := Measure(d, runtime.Log{{Kind: runtime.KindBootComplete}}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := Check(d); err != nil {
		t.Fatalf("after a runtime extend of PCR 15: %v", err)
	}
	extendPCR(t, d, 8, make([]byte, 32))
	err = Check(d)
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "PCR8 = ") {
		t.Fatalf("err = %v, want a mismatch naming PCR8", err)
	}
	t.Log(err)
}

func extendPCR(t *testing.T, d *TPM, pcr int, digest []byte) {
	t.Helper()
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest}}},
	}.Execute(d.T)
	if err != nil {
		t.Fatalf("extend PCR %d: %v", pcr, err)
	}
}
