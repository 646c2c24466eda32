package measured

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/register"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// RTMRs the GCE TDX VM quoted for its log (measure/eventlog/testdata/README.md
// and eventlog_test.go).
var gceRTMR = map[int]string{
	0: "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6",
	1: "f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1",
	2: "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1",
}

const gceLog = "../../measure/eventlog/testdata/gce-tdx-cos113.ccel"

// gceFake is a TDX fake whose log is the real GCE CCEL and whose RTMR0-2 are
// the quoted values; RTMR3 holds something the runtime extended.
func gceFake(t *testing.T) *Fake {
	t.Helper()
	raw, err := os.ReadFile(gceLog)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFake(eventlog.CCEL)
	f.Log = raw
	for i, h := range gceRTMR {
		f.Regs[i], _ = hex.DecodeString(h)
	}
	f.Regs[3] = bytes.Repeat([]byte{0xab}, 48)
	return f
}

func TestCheckRealCCEL(t *testing.T) {
	if err := Check(gceFake(t)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFlippedRTMR1(t *testing.T) {
	f := gceFake(t)
	f.Regs[1][0] ^= 1
	err := Check(f)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("err = %v, want ErrMismatch", err)
	}
	for _, want := range []string{"RTMR1 = " + hex.EncodeToString(f.Regs[1]), "log replays to " + gceRTMR[1]} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "RTMR0") || strings.Contains(err.Error(), "RTMR2") {
		t.Errorf("error names a register that matches: %v", err)
	}
	t.Log(err)
}

// TestCheckPredictionNamesEvent: with a prediction, the error names the
// first event of the failing register that the log and prediction disagree on.
func TestCheckPredictionNamesEvent(t *testing.T) {
	f := gceFake(t)
	events, err := eventlog.Parse(f.Log, eventlog.CCEL)
	if err != nil {
		t.Fatal(err)
	}
	var pred []register.Event
	changed := false
	for _, e := range events {
		if e.Index == 1 && !changed {
			changed = true // RTMR1's first event predicted differently
			e.Event.Digest = make([]byte, 48)
		}
		pred = append(pred, e.Event)
	}
	// Matching registers: the prediction is not consulted.
	if err := CheckPrediction(f, pred); err != nil {
		t.Fatal(err)
	}
	f.Regs[1][5] ^= 0x80
	err = CheckPrediction(f, pred)
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "first difference from the prediction: register 1, event 0") {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
}

func TestCheckErrors(t *testing.T) {
	f := gceFake(t)
	delete(f.Regs, 2)
	if err := Check(f); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "RTMR2: no live value") {
		t.Errorf("missing register: %v", err)
	}

	f = gceFake(t)
	f.Log = []byte("not a log at all, not a log at all")
	if err := Check(f); !errors.Is(err, eventlog.ErrParse) {
		t.Errorf("bad log: %v", err)
	}

	f = gceFake(t)
	f.Err = ErrNotSupported
	if err := Check(f); !errors.Is(err, ErrNotSupported) {
		t.Errorf("device error: %v", err)
	}
}

func sample() runtime.Log {
	return runtime.Log{
		{Kind: runtime.KindStaticConfig, Payload: []byte(`{"schema":"cocoon-static/v1"}`)},
		{Kind: runtime.KindGPUAttestation, Payload: []byte(`{"gpus":[]}`)},
		{Kind: runtime.KindBootComplete},
	}
}

func TestMeasure(t *testing.T) {
	for _, k := range []eventlog.Kind{eventlog.CCEL, eventlog.TPM} {
		t.Run(Name(k, RuntimeIndex(k)), func(t *testing.T) {
			f := NewFake(k)
			var log bytes.Buffer
			// Two calls, as the init makes them: config first, the rest later.
			if err := Measure(f, sample()[:1], &log); err != nil {
				t.Fatal(err)
			}
			if err := Measure(f, sample()[1:], &log); err != nil {
				t.Fatal(err)
			}
			got, err := runtime.Parse(&log)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("runtime log has %d events", len(got))
			}
			h := Hash(k)
			if want := got.Replay(h); !bytes.Equal(f.Regs[RuntimeIndex(k)], want) {
				t.Fatalf("register %x, log replays to %x", f.Regs[RuntimeIndex(k)], want)
			}
			if !bytes.Equal(f.Regs[RuntimeIndex(k)], sample().Replay(h)) {
				t.Fatal("register differs from the replay of the events given")
			}
		})
	}
}

type failAfter struct {
	*Fake
	n int
}

func (f *failAfter) Extend(e runtime.Event) error {
	if f.n == 0 {
		return errors.New("device gone")
	}
	f.n--
	return f.Fake.Extend(e)
}

type badWriter struct{}

func (badWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestMeasureFailures(t *testing.T) {
	// An extend fails: the log lists exactly the events extended.
	f := &failAfter{Fake: NewFake(eventlog.CCEL), n: 1}
	var log bytes.Buffer
	err := Measure(f, sample(), &log)
	if err == nil || !strings.Contains(err.Error(), "RTMR3 with event 1 (gpu-attestation)") {
		t.Fatalf("err = %v", err)
	}
	l, err := runtime.Parse(&log)
	if err != nil || len(l) != 1 || !bytes.Equal(l.Replay(crypto.SHA384), f.Regs[3]) {
		t.Fatalf("log after a failed extend: %v %v", l, err)
	}

	// An invalid log extends nothing.
	f2 := NewFake(eventlog.TPM)
	bad := runtime.Log{{Kind: runtime.KindBootComplete}, {Kind: runtime.KindStaticConfig}}
	if err := Measure(f2, bad, &log); !errors.Is(err, runtime.ErrInvalid) || len(f2.Extended) != 0 {
		t.Fatalf("invalid log: err = %v, %d extends", err, len(f2.Extended))
	}

	if err := Measure(NewFake(eventlog.TPM), sample(), badWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("write failure: %v", err)
	}
}

func TestCheckExpected(t *testing.T) {
	f := NewFake(eventlog.TPM)
	f.Regs[9] = bytes.Repeat([]byte{9}, 32)
	other := bytes.Repeat([]byte{1}, 32)
	for _, tc := range []struct {
		name string
		want map[int][]byte
		err  string // "" means no error
	}{
		{"none", nil, ""},
		{"equal", map[int][]byte{4: make([]byte, 32), 9: f.Regs[9]}, ""},
		{"differs", map[int][]byte{4: make([]byte, 32), 9: other}, "PCR9 = 0909"},
		{"absent", map[int][]byte{30: other}, "PCR30: no live value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckExpected(f, tc.want)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrUnexpected) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want ErrUnexpected naming %q", err, tc.err)
			}
		})
	}
	f.Err = errors.New("tpm gone")
	if err := CheckExpected(f, map[int][]byte{4: other}); err == nil || errors.Is(err, ErrUnexpected) {
		t.Errorf("read failure: err = %v", err)
	}
}
