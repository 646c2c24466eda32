package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/registry/store"
)

func TestRouting(t *testing.T) {
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("dashboard " + r.URL.Path)) })
	e := newEnv(t, func(s *Server) { s.Dashboard = dash })
	for _, c := range []struct {
		method, path string
		status       int
		code         string // "" for a non-error answer
		allow        string
	}{
		{"GET", "/healthz", 200, "", ""},
		{"GET", "/", 200, "", ""},
		{"GET", "/static/app.js", 200, "", ""},
		{"POST", "/", 405, CodeMethod, "GET, HEAD"},
		{"GET", "/v1/nothing", 404, CodeNotFound, ""},
		{"GET", "/v1", 404, CodeNotFound, ""},
		{"DELETE", "/v1/workers", 405, CodeMethod, "GET, HEAD, POST"},
		{"PUT", "/v1/prices", 405, CodeMethod, "GET, HEAD"},
		{"GET", "/v1/workers/" + fxWorkerUnknownID + "/receipts", 405, CodeMethod, "POST"},
	} {
		status, body, hdr := e.do(c.method, c.path, "", nil)
		if c.code == "" {
			if status != c.status {
				t.Errorf("%s %s: %d %s", c.method, c.path, status, body)
			}
			continue
		}
		wantError(t, status, body, c.status, c.code)
		if hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, hdr.Get("Content-Type"))
		}
		if c.allow != "" && hdr.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, hdr.Get("Allow"), c.allow)
		}
	}

	e = newEnv(t) // no dashboard
	status, body, _ := e.do("GET", "/", "", nil)
	wantError(t, status, body, 404, CodeNotFound)
}

// brokenStore fails what the tests choose.
type brokenStore struct {
	store.Store
}

var errDisk = errors.New("disk on fire")

func (brokenStore) Workers(context.Context) ([]store.Worker, error) { return nil, errDisk }
func (brokenStore) Prices(context.Context) ([]store.Price, error)   { return nil, errDisk }

// Store failures are 500 (503 for the health check), and say nothing of
// the cause to the caller.
func TestStoreFailure(t *testing.T) {
	e := newEnv(t)
	e.srv.Store = brokenStore{e.st} // before any request that reads it
	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/workers", 500, CodeInternal},
		{"/v1/prices", 500, CodeInternal},
		{"/healthz", 503, CodeUnavailable},
	} {
		status, body, _ := e.do("GET", c.path, "", nil)
		wantError(t, status, body, c.status, c.code)
		if strings.Contains(string(body), "fire") {
			t.Errorf("%s leaks the cause: %s", c.path, body)
		}
	}
}
