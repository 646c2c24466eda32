package eventlog

import (
	"encoding/hex"
	"errors"
	"os"
	"testing"

	"github.com/cocoon-appliance/cocoon/measure/register"
)

// RTMRs the GCE TDX VM quoted for this log (see testdata/README.md).
var gceRTMR = map[int]string{
	0: "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6",
	1: "f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1",
	2: "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1",
}

func gce(t *testing.T) ([]Event, map[int][]byte) {
	raw, err := os.ReadFile("testdata/gce-tdx-cos113.ccel")
	if err != nil {
		t.Fatal(err)
	}
	events, err := Parse(raw, CCEL)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]byte{}
	for i, h := range gceRTMR {
		want[i], _ = hex.DecodeString(h)
	}
	return events, want
}

// TestReplayRealCCEL: a real TDX log replays to the RTMRs its VM quoted.
func TestReplayRealCCEL(t *testing.T) {
	events, want := gce(t)
	if err := Check(CCEL, events, want); err != nil {
		t.Fatal(err)
	}
	counts := map[int]int{}
	for _, e := range events {
		counts[e.Index]++
	}
	t.Logf("%d events: RTMR0 %d, RTMR1 %d, RTMR2 %d, RTMR3 %d", len(events), counts[0], counts[1], counts[2], counts[3])
	for _, e := range events[:5] {
		t.Log(e.Event)
	}
}

func TestCheckNamesTheRegister(t *testing.T) {
	events, want := gce(t)
	bad := append([]Event(nil), events...)
	for i := range bad {
		if bad[i].Index == 1 {
			d := append([]byte(nil), bad[i].Digest...)
			d[0] ^= 1
			bad[i].Digest = d
			break
		}
	}
	err := Check(CCEL, bad, want)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
}

// TestDiff: a prediction equal to the log but for one event names that
// event, and only that register.
func TestDiff(t *testing.T) {
	events, _ := gce(t)
	var pred []register.Event
	for _, e := range events {
		pred = append(pred, e.Event)
	}
	if d := Diff(pred, events); len(d) != 0 {
		t.Fatalf("identical: %v", d)
	}
	pos := -1
	for i, e := range pred {
		if e.Index == 2 {
			pos = i
		}
	}
	pred[pos].Digest = make([]byte, 48)
	d := Diff(pred, events)
	if len(d) != 1 || d[0].Index != 2 {
		t.Fatalf("diff %v", d)
	}
	t.Log(d[0])
	if d := Diff(pred[:len(pred)-1], events); len(d) == 0 {
		t.Fatal("missing event not reported")
	}
}

func TestParseBad(t *testing.T) {
	raw, _ := os.ReadFile("testdata/gce-tdx-cos113.ccel")
	for _, in := range [][]byte{nil, raw[:10], raw[:200], []byte("garbage garbage garbage garbage garbage")} {
		if _, err := Parse(in, CCEL); !errors.Is(err, ErrParse) {
			t.Errorf("%d bytes: err = %v", len(in), err)
		}
	}
}

func FuzzParse(f *testing.F) {
	raw, _ := os.ReadFile("testdata/gce-tdx-cos113.ccel")
	f.Add(raw[:2048])
	f.Add(raw)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, k := range []Kind{CCEL, TPM} {
			events, err := Parse(in, k)
			if err != nil {
				continue
			}
			if _, err := Replay(k, events); err != nil {
				t.Fatalf("parsed events do not replay: %v", err)
			}
		}
	})
}
