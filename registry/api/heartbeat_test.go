package api

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestHeartbeat(t *testing.T) {
	e := newEnv(t)
	e.register(fxWorker)
	ctx := context.Background()
	for i := range 3 {
		e.clock.Add(30 * time.Second)
		r, err := e.cl.Heartbeat(ctx, fxWorker.key, Heartbeat{Served: 10, Failed: int64(i), LatencyMS: 100})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != StatusAttested || r.IntervalS != 30 || r.Reputation <= 0 || r.Reputation > 1 {
			t.Fatalf("%+v", r)
		}
	}
	wk, err := e.st.Worker(ctx, fxWorker.id)
	if err != nil || wk.Stats.Heartbeats != 3 || wk.Stats.Served != 30 || wk.Stats.Failed != 3 || !wk.Stats.LastSeen.Equal(e.clock.Now()) {
		t.Fatalf("%+v %v", wk.Stats, err)
	}
	info, err := e.cl.Worker(ctx, fxWorker.id)
	if err != nil || info.Heartbeats != 3 || info.Failed != 3 || info.LastSeen == nil {
		t.Fatalf("%+v %v", info, err)
	}
}

func TestHeartbeatRefused(t *testing.T) {
	fixtures(t)
	now := t0.Add(time.Minute).UnixMilli()
	signed := func(hb Heartbeat) func() []byte {
		return func() []byte {
			req, err := SignHeartbeat(hb, fxWorker.key)
			if err != nil {
				t.Fatal(err)
			}
			return mustJSON(t, req)
		}
	}
	for _, c := range []struct {
		name   string
		id     string
		body   func() []byte
		ct     string
		status int
		code   string
	}{
		{name: "replay", body: signed(Heartbeat{At: now - 1000, Served: 1}), status: 409, code: CodeReplay},
		{name: "older than the last", body: signed(Heartbeat{At: now - 2000, Served: 1}), status: 409, code: CodeReplay},
		{name: "stale", body: signed(Heartbeat{At: now - 3*60*1000}), status: 400, code: CodeStale},
		{name: "future", body: signed(Heartbeat{At: now + 3*60*1000}), status: 400, code: CodeStale},
		{name: "wrong signature", body: func() []byte {
			req, _ := SignHeartbeat(Heartbeat{At: now}, fxWorker2.key)
			return mustJSON(t, req)
		}, status: 403, code: CodeBadSignature},
		{name: "signed counters changed", body: func() []byte {
			req, _ := SignHeartbeat(Heartbeat{At: now, Served: 1}, fxWorker.key)
			req.Heartbeat.Served = 1000
			return mustJSON(t, req)
		}, status: 403, code: CodeBadSignature},
		{name: "negative count", body: signed(Heartbeat{At: now, Failed: -1}), status: 400, code: CodeBadRequest},
		{name: "absurd latency", body: signed(Heartbeat{At: now, LatencyMS: 1e12}), status: 400, code: CodeBadRequest},
		{name: "unknown worker", id: fxWorker2.id, body: func() []byte {
			req, _ := SignHeartbeat(Heartbeat{At: now}, fxWorker2.key)
			return mustJSON(t, req)
		}, status: 404, code: CodeUnknownWorker},
		{name: "malformed id", id: "ABC", body: signed(Heartbeat{At: now}), status: 404, code: CodeUnknownWorker},
		{name: "malformed JSON", body: func() []byte { return []byte(`{"heartbeat":{"at":1}`) }, status: 400, code: CodeMalformedJSON},
		{name: "unknown field", body: func() []byte { return []byte(`{"heartbeat":{"at":1},"sig":"","x":1}`) }, status: 400, code: CodeMalformedJSON},
		{name: "oversized", body: func() []byte { return make([]byte, maxSmallBody+1) }, status: 413, code: CodeTooLarge},
		{name: "wrong content type", ct: "text/json", body: signed(Heartbeat{At: now}), status: 415, code: CodeMediaType},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.register(fxWorker)
			if _, err := e.cl.Heartbeat(context.Background(), fxWorker.key, Heartbeat{At: now - 1000, Served: 1}); err != nil {
				t.Fatal(err)
			}
			before := e.books()
			id, ct := fxWorker.id, "application/json"
			if c.id != "" {
				id = c.id
			}
			if c.ct != "" {
				ct = c.ct
			}
			status, body, _ := e.do("POST", "/v1/workers/"+id+"/heartbeat", ct, c.body())
			wantError(t, status, body, c.status, c.code)
			e.unchanged(before)
		})
	}
}

// A heartbeat the store failed to record may be sent again.
func TestHeartbeatUndo(t *testing.T) {
	var h heartbeats
	undo, err := h.advance("w", 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.advance("w", 10); !errors.Is(err, ErrConflict) {
		t.Fatalf("replay: %v", err)
	}
	undo()
	if _, err := h.advance("w", 10); err != nil {
		t.Fatalf("after undo: %v", err)
	}
	undo2, _ := h.advance("w", 20)
	undo() // stale undo: not the newest mark any more
	if _, err := h.advance("w", 15); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale undo rolled back: %v", err)
	}
	undo2()
	if _, err := h.advance("w", 15); err != nil {
		t.Fatalf("%v", err)
	}
}
