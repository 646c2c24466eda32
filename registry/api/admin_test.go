package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

const newHash = "1111111111111111111111111111111111111111111111111111111111111111"

// adminRequests is one request of every admin route.
var adminRequests = []struct{ method, path, body string }{
	{"GET", "/v1/admin/allowlist", ""},
	{"PUT", "/v1/admin/allowlist/" + newHash, `{"note":"x"}`},
	{"DELETE", "/v1/admin/allowlist/" + newHash, ""},
	{"PUT", "/v1/admin/prices/" + model, `{"base":1,"min":1,"max":1}`},
	{"GET", "/v1/admin/balances", ""},
	{"GET", "/v1/admin/payouts", ""},
	{"POST", "/v1/admin/payouts/run", ""},
}

func TestAdminAuth(t *testing.T) {
	for _, c := range []struct {
		name   string
		token  string // the server's
		auth   string // the request's Authorization
		status int
		code   string
	}{
		{"disabled", "", "Bearer " + adminToken, 403, CodeAdminDisabled},
		{"disabled, no token sent", "", "", 403, CodeAdminDisabled},
		{"no token", adminToken, "", 401, CodeUnauthorized},
		{"wrong token", adminToken, "Bearer wrong", 401, CodeUnauthorized},
		{"token prefix", adminToken, "Bearer " + adminToken[:5], 401, CodeUnauthorized},
		{"basic auth", adminToken, "Basic " + adminToken, 401, CodeUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, func(s *Server) { s.AdminToken = c.token; s.Payouts = &fakePayouts{} })
			for _, r := range adminRequests {
				before := e.books()
				status, body, hdr := e.do(r.method, r.path, "application/json", []byte(r.body), "Authorization", c.auth)
				wantError(t, status, body, c.status, c.code)
				if status == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s %s: no WWW-Authenticate", r.method, r.path)
				}
				if c.code == CodeAdminDisabled && !strings.Contains(string(body), "admin API disabled: set admin_token") {
					t.Errorf("%s", body)
				}
				e.unchanged(before)
			}
		})
	}
}

type fakePayouts struct{ runs int }

func (f *fakePayouts) RunOnce(context.Context) (any, error) {
	f.runs++
	if f.runs > 1 {
		return nil, errors.New("chain unreachable")
	}
	return map[string]int{"batches": 1}, nil
}

func TestAdmin(t *testing.T) {
	fp := &fakePayouts{}
	e := newEnv(t, func(s *Server) { s.Payouts = fp })
	ctx := context.Background()

	img, err := e.cl.AllowImage(ctx, strings.ToUpper(newHash), "release 1.2")
	if err != nil || img.Hash != newHash || img.Note != "release 1.2" {
		t.Fatalf("%+v %v", img, err)
	}
	list, err := e.cl.Allowlist(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("%+v %v", list, err)
	}
	if err := e.cl.DisallowImage(ctx, newHash); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.DisallowImage(ctx, newHash); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent: %v", err)
	}
	if _, err := e.cl.AllowImage(ctx, "abc", ""); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("short hash: %v", err)
	}

	// Model names with a slash, as Hugging Face names them.
	const hf = "meta-llama/Llama-3.1-8B-Instruct"
	if err := e.cl.SetPrice(ctx, hf, SetPriceRequest{Base: 5, Min: 1, Max: 10}); err != nil {
		t.Fatal(err)
	}
	ps, _ := e.st.Prices(ctx)
	if len(ps) != 3 || ps[0] != (store.Price{Model: hf, Base: 5, Min: 1, Max: 10}) {
		t.Fatalf("%+v", ps)
	}
	before := e.books()
	for _, bad := range []SetPriceRequest{{Base: 5, Min: 6, Max: 10}, {Base: 11, Min: 1, Max: 10}} {
		if err := e.cl.SetPrice(ctx, hf, bad); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
	e.unchanged(before)

	// Balances after some receipts; payouts list and run.
	reg := e.registration(fxWorker)
	reg.MinPayout, reg.PayoutEveryS = 1, 0
	if _, err := e.cl.Register(ctx, fxWorker.der(), fxWorker.key, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.SubmitReceipts(ctx, fxWorker.id, []receipt.Signed{fxWorker.receipt(t, 1, model, 1e6, 0, t0.Add(30*time.Second))}); err != nil {
		t.Fatal(err)
	}
	bs, err := e.cl.Balances(ctx)
	if err != nil || len(bs) != 1 || bs[0].Worker != fxWorker.id || bs[0].Earned != minPrice || bs[0].Unpaid != minPrice {
		t.Fatalf("%+v %v", bs, err)
	}
	if b, err := e.st.PlanBatch(ctx, store.PlanParams{Now: e.clock.Now(), CreatedAt: e.clock.Now(), MinPayout: 1, Max: 10}); err != nil || b == nil {
		t.Fatal(b, err)
	}
	batches, err := e.cl.Payouts(ctx, 10)
	if err != nil || len(batches) != 1 || batches[0].State != "planned" || batches[0].Total != minPrice || len(batches[0].Items) != 1 {
		t.Fatalf("%+v %v", batches, err)
	}
	res, err := e.cl.RunPayouts(ctx)
	var got map[string]int
	if err != nil || json.Unmarshal(res, &got) != nil || got["batches"] != 1 {
		t.Fatalf("%s %v", res, err)
	}
	if _, err := e.cl.RunPayouts(ctx); !errors.Is(err, ErrInternal) {
		t.Fatalf("failing run: %v", err)
	}
	status, body, _ := e.do("GET", "/v1/admin/payouts?limit=0", "", nil, "Authorization", "Bearer "+adminToken)
	wantError(t, status, body, 400, CodeBadRequest)

	evs, err := e.st.Events(ctx, 100)
	if err != nil || len(evs) < 4 {
		t.Fatalf("audit events %+v %v", evs, err)
	}
}

func TestAdminNoPayouts(t *testing.T) {
	e := newEnv(t)
	_, err := e.cl.RunPayouts(context.Background())
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != CodeUnavailable {
		t.Fatalf("%v", err)
	}
}

func TestAdminBadBodies(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		method, path, ct, body string
		status                 int
		code                   string
	}{
		{"PUT", "/v1/admin/allowlist/" + newHash, "text/plain", `{"note":""}`, 415, CodeMediaType},
		{"PUT", "/v1/admin/allowlist/" + newHash, "application/json", `{"note":"", "extra":1}`, 400, CodeMalformedJSON},
		{"PUT", "/v1/admin/allowlist/" + newHash, "application/json", `{"note":"` + strings.Repeat("n", 2000) + `"}`, 400, CodeBadRequest},
		{"PUT", "/v1/admin/allowlist/" + newHash, "application/json", `{"note":"` + strings.Repeat("n", maxSmallBody) + `"}`, 413, CodeTooLarge},
		{"PUT", "/v1/admin/allowlist/zz" + newHash[2:], "application/json", `{"note":""}`, 400, CodeBadRequest},
		{"DELETE", "/v1/admin/allowlist/short", "", ``, 400, CodeBadRequest},
		{"PUT", "/v1/admin/prices/" + model, "application/json", `{"base":-1,"min":0,"max":0}`, 400, CodeMalformedJSON},
		{"PUT", "/v1/admin/prices/" + model, "application/json", `{"base":1,"min":0}x`, 400, CodeMalformedJSON},
	} {
		before := e.books()
		status, body, _ := e.do(c.method, c.path, c.ct, []byte(c.body), "Authorization", "Bearer "+adminToken)
		wantError(t, status, body, c.status, c.code)
		e.unchanged(before)
	}
}
