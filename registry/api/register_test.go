package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

func TestRegister(t *testing.T) {
	e := newEnv(t)
	info := e.register(fxWorker)
	if info.ID != fxWorker.id || info.PublicKey != fxWorker.pubHex || info.Status != StatusAttested ||
		info.Payout != payoutAddr || info.Price != 1_000_000 || !bytes.Equal(info.Certificate, fxWorker.der()) {
		t.Fatalf("%+v", info)
	}
	var ev Evidence
	if err := json.Unmarshal(info.Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Kind != "sim" || !ev.Simulated || ev.ImageHash != fxWorker.image || len(ev.RTMR) != 4 || ev.MRTD == "" ||
		!ev.Policy.Accepted || ev.Policy.Rule != RuleImage || !ev.NotAfter.Equal(t0.Add(time.Hour)) || !ev.VerifiedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("evidence %+v", ev)
	}
	wk, err := e.st.Worker(context.Background(), fxWorker.id)
	if err != nil {
		t.Fatal(err)
	}
	if wk.PayoutEvery != time.Hour || wk.MinPayout != 1e9 || !wk.CertExpires.Equal(t0.Add(time.Hour)) || wk.Endpoint != "worker.example:8443" {
		t.Fatalf("stored %+v", wk)
	}
}

// A renewed certificate for the same key updates the worker; an older
// one (a replayed registration) does not take its place again.
func TestRegisterRenewal(t *testing.T) {
	e := newEnv(t)
	e.register(fxWorker)
	w := *fxWorker
	w.renew(t, t0.Add(50*time.Minute), 0)
	e.clock.Set(t0.Add(55 * time.Minute))
	reg := e.registration(&w)
	reg.Price = 2_000_000
	info, err := e.cl.Register(context.Background(), w.der(), w.key, reg)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != fxWorker.id || !info.CertExpires.Equal(t0.Add(110*time.Minute)) || info.Price != 2_000_000 || !info.Registered.Equal(t0.Add(time.Minute)) {
		t.Fatalf("%+v", info)
	}
	ws, _ := e.st.Workers(context.Background())
	if len(ws) != 1 {
		t.Fatalf("%d workers", len(ws))
	}
	before := e.books()
	_, err = e.cl.Register(context.Background(), fxWorker.der(), fxWorker.key, e.registration(fxWorker))
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !errors.Is(err, ErrConflict) {
		t.Fatalf("older certificate: %v", err)
	}
	e.unchanged(before)
}

func TestRegisterRefused(t *testing.T) {
	fixtures(t)
	devPolicy := func(s *Server) {}
	type tc struct {
		name      string
		configure func(*Server)
		// body returns the request body; nil means the default signed one.
		req         func(e *env) []byte
		contentType string
		at          time.Duration // clock offset from t0+1m
		status      int
		code        string
	}
	signed := func(w *simWorker, edit func(*Registration)) func(e *env) []byte {
		return func(e *env) []byte {
			reg := e.registration(w)
			if edit != nil {
				edit(&reg)
			}
			req, err := SignRegistration(reg, w.key)
			if err != nil {
				t.Fatal(err)
			}
			return mustJSON(t, req)
		}
	}
	valid := signed(fxWorker, nil)
	for _, c := range []tc{
		{name: "malformed JSON", req: func(*env) []byte { return []byte(`{"registration":`) }, status: 400, code: CodeMalformedJSON},
		{name: "not an object", req: func(*env) []byte { return []byte(`[]`) }, status: 400, code: CodeMalformedJSON},
		{name: "empty body", req: func(*env) []byte { return nil }, status: 400, code: CodeMalformedJSON},
		{name: "trailing data", req: func(e *env) []byte { return append(valid(e), "{}"...) }, status: 400, code: CodeMalformedJSON},
		{name: "unknown field", req: func(e *env) []byte {
			return bytes.Replace(valid(e), []byte(`{"registration":{`), []byte(`{"registration":{"admin":true,`), 1)
		}, status: 400, code: CodeMalformedJSON},
		{name: "oversized body", req: func(e *env) []byte {
			return append(valid(e)[:len(valid(e))-1], []byte(`,"x":"`+strings.Repeat("a", 1<<20)+`"}`)...)
		}, status: 413, code: CodeTooLarge},
		{name: "wrong content type", contentType: "text/plain", status: 415, code: CodeMediaType},
		{name: "no content type", contentType: "-", status: 415, code: CodeMediaType},
		{name: "latin-1 charset", contentType: "application/json; charset=iso-8859-1", status: 415, code: CodeMediaType},
		{name: "signed by another key: someone else's certificate with their payout address", req: func(e *env) []byte {
			reg := e.registration(fxWorker)
			reg.Payout = "EQBvW8Z5huBkMJYdnfAEM5JqTNkuWX3diqYENkWsIL0XggGG"
			req, _ := SignRegistration(reg, fxWorker2.key)
			return mustJSON(t, req)
		}, status: 403, code: CodeBadSignature},
		{name: "signature over other fields", req: func(e *env) []byte {
			req, _ := SignRegistration(e.registration(fxWorker), fxWorker.key)
			req.Registration.Price++
			return mustJSON(t, req)
		}, status: 403, code: CodeBadSignature},
		{name: "signature not hex", req: func(e *env) []byte {
			req, _ := SignRegistration(e.registration(fxWorker), fxWorker.key)
			req.Sig = "zz"
			return mustJSON(t, req)
		}, status: 400, code: CodeBadSignature},
		{name: "stale", req: signed(fxWorker, func(r *Registration) { r.At -= 3 * 60 * 1000 }), status: 400, code: CodeStale},
		{name: "from the future", req: signed(fxWorker, func(r *Registration) { r.At += 3 * 60 * 1000 }), status: 400, code: CodeStale},
		{name: "no at", req: signed(fxWorker, func(r *Registration) { r.At = 0 }), status: 400, code: CodeStale},
		{name: "bad payout address", req: signed(fxWorker, func(r *Registration) { r.Payout = "EQnot-an-address" }), status: 400, code: CodeBadRequest},
		{name: "bad endpoint", req: signed(fxWorker, func(r *Registration) { r.Endpoint = "no-port" }), status: 400, code: CodeBadRequest},
		{name: "port 0", req: signed(fxWorker, func(r *Registration) { r.Endpoint = "h:0" }), status: 400, code: CodeBadRequest},
		{name: "negative payout_every_s", req: signed(fxWorker, func(r *Registration) { r.PayoutEveryS = -1 }), status: 400, code: CodeBadRequest},
		{name: "no models", req: signed(fxWorker, func(r *Registration) { r.Models = nil }), status: 400, code: CodeBadModel},
		{name: "model twice", req: signed(fxWorker, func(r *Registration) { r.Models = []string{model, model} }), status: 400, code: CodeBadModel},
		{name: "model not priced", req: signed(fxWorker, func(r *Registration) { r.Models = []string{model, "unpriced"} }), status: 400, code: CodeBadModel},
		{name: "price below min", req: signed(fxWorker, func(r *Registration) { r.Price = minPrice - 1 }), status: 400, code: CodeBadPrice},
		{name: "price above max", req: signed(fxWorker, func(r *Registration) { r.Price = maxPrice + 1 }), status: 400, code: CodeBadPrice},
		{name: "certificate not DER", req: signed(fxWorker, func(r *Registration) { r.Certificate = []byte("garbage") }), status: 400, code: CodeBadCertificate},
		{name: "no certificate", req: signed(fxWorker, func(r *Registration) { r.Certificate = nil }), status: 400, code: CodeBadCertificate},
		{name: "simulated quote under a production policy", configure: func(s *Server) { s.Policy = &policy.Policy{} },
			req: valid, status: 403, code: CodeSimulated},
		{name: "simulator root not configured", configure: func(s *Server) { s.SimRoot = nil }, req: valid, status: 403, code: CodeAttestation},
		{name: "no policy", configure: func(s *Server) { s.Policy = nil }, req: valid, status: 403, code: CodeAttestation},
		{name: "another simulator's root", req: signed(fxOtherRoot, nil), status: 403, code: CodeAttestation},
		{name: "image not allowlisted", req: signed(fxOtherImage, nil), status: 403, code: CodeImage},
		{name: "image allowed by a measurement set, not allowlisted", configure: func(s *Server) {
			m, _ := fxOtherImage.sim.Measurements()
			s.Policy = &policy.Policy{AllowSimulated: true, Measurements: []policy.Registers{{MRTD: m.MRTD, RTMR: m.RTMR}}}
		}, req: signed(fxOtherImage, nil), status: 403, code: CodeImage},
		{name: "debug TD, even with its image allowlisted", configure: func(s *Server) {
			s.Store.AllowImage(context.Background(), store.AllowedImage{Hash: fxDebug.image})
		}, req: signed(fxDebug, nil), status: 403, code: CodePolicy},
		{name: "registers in no measurement set", configure: func(s *Server) {
			s.Policy = &policy.Policy{AllowSimulated: true, Measurements: []policy.Registers{{}}}
		}, req: signed(fxOtherImage, nil), status: 403, code: CodeImage},
		{name: "certificate expired", at: 62 * time.Minute, req: valid, status: 403, code: CodeCertExpired},
		{name: "certificate not yet valid", at: -3 * time.Minute, req: valid, status: 403, code: CodeCertExpired},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := devPolicy
			if c.configure != nil {
				cfg = c.configure
			}
			e := newEnv(t, cfg)
			e.seed(fxWorker2) // a worker already there, which must stay as it is
			e.clock.Add(c.at)
			body := valid
			if c.req != nil {
				body = c.req
			}
			ct := "application/json"
			switch c.contentType {
			case "-":
				ct = ""
			case "":
			default:
				ct = c.contentType
			}
			b := body(e)
			before := e.books()
			status, resp, _ := e.do("POST", "/v1/workers", ct, b)
			wantError(t, status, resp, c.status, c.code)
			e.unchanged(before)
		})
	}
}

// With an empty allowlist nothing is admitted.
func TestRegisterEmptyAllowlist(t *testing.T) {
	e := newEnv(t)
	if err := e.st.DisallowImage(context.Background(), fxWorker.image); err != nil {
		t.Fatal(err)
	}
	_, err := e.cl.Register(context.Background(), fxWorker.der(), fxWorker.key, e.registration(fxWorker))
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Code != CodeImage {
		t.Fatalf("%v", err)
	}
	if ws, _ := e.st.Workers(context.Background()); len(ws) != 0 {
		t.Fatal(ws)
	}
	evs, err := e.st.Events(context.Background(), 10)
	if err != nil || len(evs) == 0 || !strings.Contains(evs[0].Message, "registration refused") {
		t.Fatalf("events %+v %v", evs, err)
	}
}

// Refusals are recorded as events, but a flood of them is cut.
func TestRefusalEventsBounded(t *testing.T) {
	e := newEnv(t)
	reg := e.registration(fxWorker)
	reg.At = 1
	req, _ := SignRegistration(reg, fxWorker.key)
	for range 3 * eventBurst {
		status, body, _ := e.do("POST", "/v1/workers", "application/json", mustJSON(t, req))
		wantError(t, status, body, 400, CodeStale)
	}
	evs, err := e.st.Events(context.Background(), 1000)
	if err != nil || len(evs) != eventBurst {
		t.Fatalf("%d events, want %d (%v)", len(evs), eventBurst, err)
	}
	e.clock.Add(eventEvery)
	e.do("POST", "/v1/workers", "application/json", mustJSON(t, req))
	evs, _ = e.st.Events(context.Background(), 1000)
	if len(evs) != eventBurst+1 || !strings.Contains(evs[0].Message, "40 earlier events suppressed") {
		t.Fatalf("%d events, newest %+v", len(evs), evs[0])
	}
}
