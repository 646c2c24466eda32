package loadtest

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/api"
)

// TestRunShort is a 2 s run of 2 workers: no errors, and the store
// credited exactly what the acknowledged receipts are worth.
func TestRunShort(t *testing.T) {
	r, err := Run(context.Background(), Options{Workers: 2, Duration: 2 * time.Second, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("%v\n%v", r, err)
	}
	t.Log(r)
	if r.Errors != 0 || r.Receipts == 0 || r.Requests*int64(r.Batch) != r.Receipts {
		t.Fatalf("%v: want every request acknowledged, no errors", r)
	}
	if want := uint64(r.Receipts) * perReceipt; r.Credited != want {
		t.Fatalf("credited %d nanoton, want %d receipts × %d = %d", r.Credited, r.Receipts, perReceipt, want)
	}
	if r.P50 <= 0 || r.P50 > r.P90 || r.P90 > r.P99 || r.P99 > r.Max {
		t.Fatalf("latencies out of order: %v", r)
	}
}

// TestLoadBench is the full benchmark (scripts/bench.sh):
//
//	COCOON_LOADTEST_DURATION=30s go test -run TestLoadBench -v ./registry/loadtest
//
// COCOON_LOADTEST_BATCH sets another batch size (to measure the choice
// of DefaultBatch again).
func TestLoadBench(t *testing.T) {
	env := os.Getenv("COCOON_LOADTEST_DURATION")
	if env == "" {
		t.Skip("set COCOON_LOADTEST_DURATION (e.g. 30s) to run the load benchmark")
	}
	d, err := time.ParseDuration(env)
	if err != nil {
		t.Fatalf("COCOON_LOADTEST_DURATION=%q: %v", env, err)
	}
	o := Options{Duration: d, Dir: t.TempDir(), Progress: testWriter{t}}
	if b := os.Getenv("COCOON_LOADTEST_BATCH"); b != "" {
		if o.Batch, err = strconv.Atoi(b); err != nil {
			t.Fatalf("COCOON_LOADTEST_BATCH=%q: %v", b, err)
		}
	}
	r, err := Run(context.Background(), o)
	if r != nil {
		t.Log(r)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(10_000, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no dir", Options{}},
		{"batch too big", Options{Dir: "x", Batch: 1025}},
		{"negative workers", Options{Dir: "x", Workers: -1}},
		{"negative duration", Options{Dir: "x", Duration: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tc.o); !errors.Is(err, ErrOptions) {
				t.Fatalf("err = %v, want ErrOptions", err)
			}
		})
	}
	o, err := Options{Dir: "x"}.withDefaults()
	if err != nil || o.Workers != DefaultWorkers || o.Duration != DefaultDuration || o.Batch != DefaultBatch {
		t.Fatalf("defaults %+v, %v", o, err)
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", []time.Duration{7}, 99, 7},
		{"p50 of 100", hundred, 50, 50},
		{"p99 of 100", hundred, 99, 99},
		{"p100 of 100", hundred, 100, 100},
		{"p99 of 10 is the max", hundred[:10], 99, 10},
		{"p0", hundred, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Fatalf("percentile(%d) = %d, want %d", tc.p, got, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	good := Result{ReceiptsPerSec: 12_000, P99: 30 * time.Millisecond}
	for _, tc := range []struct {
		name string
		edit func(*Result)
		want []string // each a part of the error; none: nil
	}{
		{"met", func(*Result) {}, nil},
		{"exactly the targets", func(r *Result) { r.ReceiptsPerSec, r.P99 = 10_000, 50*time.Millisecond }, nil},
		{"slow", func(r *Result) { r.ReceiptsPerSec = 9_999 }, []string{"9999 receipts/s, want at least 10000"}},
		{"late", func(r *Result) { r.P99 = 51 * time.Millisecond }, []string{"p99 51.0 ms, want at most 50.0 ms"}},
		{"errors", func(r *Result) { r.Errors = 1 }, []string{"1 errors, want 0"}},
		{"all", func(r *Result) { r.ReceiptsPerSec, r.P99, r.Errors = 1, time.Second, 3 }, []string{"receipts/s", "p99", "3 errors"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.edit(&r)
			err := r.Check(10_000, 50*time.Millisecond)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrTarget) {
				t.Fatalf("err = %v, want ErrTarget", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %q", err, w)
				}
			}
		})
	}
}

// TestPost: an answer that does not acknowledge the whole batch is an
// error, whatever its status.
func TestPost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // part of the error; "": none
	}{
		{"all acked", 200, `{"acked_through": 48, "added": 24, "duplicates": 0}`, ""},
		{"replayed", 200, `{"acked_through": 48, "added": 0, "duplicates": 24}`, "0 added, 24 duplicates"},
		{"short ack", 200, `{"acked_through": 47, "added": 24, "duplicates": 0}`, "acked through 47"},
		{"refused", 409, `{"error": {"code": "conflict", "message": "no"}}`, "status 409"},
		{"not json", 200, `<html>`, "answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer ts.Close()
			err := post(context.Background(), ts.Client(), ts.URL, []byte(`{}`), 48, 24)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestCheckBooks: a store that holds more or less than the acknowledged
// receipts are worth is ErrBooks.
func TestCheckBooks(t *testing.T) {
	ctx := context.Background()
	s, image, err := bootSimulator()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := startRegistry(ctx, t.TempDir(), hex.EncodeToString(image[:]), s)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.close()
	now := time.Now()
	w, err := newWorker(ctx, s, image, 0, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.register(ctx, &api.Client{BaseURL: reg.url}, 0); err != nil {
		t.Fatal(err)
	}
	body, err := signBatch(w, 1, 3, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := post(ctx, http.DefaultClient, reg.url+"/v1/workers/"+w.id+"/receipts", body, 3, 3); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		acked int64
		ok    bool
	}{{3, true}, {2, false}, {4, false}, {0, false}} {
		r := &Result{}
		err := checkBooks(ctx, reg, []*worker{w}, []int64{tc.acked}, r)
		if r.Credited != 3*perReceipt {
			t.Errorf("credited %d, want %d", r.Credited, 3*perReceipt)
		}
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrBooks)) {
			t.Errorf("%d acknowledged, 3 stored: err = %v", tc.acked, err)
		}
	}
}
