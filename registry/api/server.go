package api

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/measure/quote"
	"github.com/cocoon-appliance/cocoon/registry/market"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

// Payouts runs the payout pipeline once (registry/payout).
type Payouts interface {
	RunOnce(ctx context.Context) (any, error)
}

// Server is the registry's HTTP API. Set its fields, then call Handler;
// do not change or copy it afterwards.
type Server struct {
	Store store.Store
	// Now is the clock; nil means time.Now, the one place the wall clock
	// is read.
	Now func() time.Time
	// Log receives one line per request and the reasons of refusals;
	// nil means slog.Default(). Prompts never reach the registry, and
	// neither tokens nor keys are logged.
	Log *slog.Logger
	// AdminToken is the bearer token of /v1/admin; empty disables the
	// admin API (every admin request gets 403), so it is never open by
	// default.
	AdminToken string
	// Policy is the template policy for TDX and simulated evidence; at
	// each verification its ImageHashes are replaced by the store's
	// allowlist. nil refuses both kinds.
	Policy *policy.Policy
	// SimRoot is the TDX simulator's root to accept simulated quotes from;
	// nil refuses them, and even when set only a Policy with
	// AllowSimulated accepts them.
	SimRoot *x509.Certificate
	// Quotes verifies real TDX quotes; nil refuses them.
	Quotes *quote.Verifier
	// VTPM is the vTPM evidence policy; nil refuses vTPM evidence.
	VTPM *ratls.VTPMPolicy
	// Market holds the reputation and price constants; zero fields take
	// market's defaults.
	Market market.Params
	// PriceTTL is how long computed market prices are reused (they sum
	// the demand window's receipts); 0 means 10 s, negative means never.
	PriceTTL time.Duration
	// Payouts runs payouts for POST /v1/admin/payouts/run; nil answers 503.
	Payouts Payouts
	// Dashboard, when set, serves GET / and everything outside /v1.
	Dashboard http.Handler

	once    sync.Once
	mkt     market.Params
	beats   heartbeats
	events  eventLimiter
	prices  priceCache
	handler http.Handler
}

// handlerFunc is a handler that returns its failure; serve writes it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type route struct {
	method, path string
	h            handlerFunc
}

// routes is every endpoint; Handler mounts them and openapi_test checks
// that openapi.yaml documents each.
func (s *Server) routes() []route {
	return []route{
		{"GET", "/healthz", s.healthz},
		{"POST", "/v1/workers", s.register},
		{"GET", "/v1/workers", s.listWorkers},
		{"GET", "/v1/workers/{id}", s.getWorker},
		{"POST", "/v1/workers/{id}/heartbeat", s.heartbeat},
		{"POST", "/v1/workers/{id}/receipts", s.receipts},
		{"GET", "/v1/prices", s.getPrices},
		{"GET", "/v1/policy", s.getPolicy},
		{"GET", "/v1/admin/allowlist", s.admin(s.getAllowlist)},
		{"PUT", "/v1/admin/allowlist/{hash}", s.admin(s.allow)},
		{"DELETE", "/v1/admin/allowlist/{hash}", s.admin(s.disallow)},
		{"PUT", "/v1/admin/prices/{model...}", s.admin(s.setPrice)},
		{"GET", "/v1/admin/balances", s.admin(s.balances)},
		{"GET", "/v1/admin/payouts", s.admin(s.payouts)},
		{"POST", "/v1/admin/payouts/run", s.admin(s.runPayouts)},
	}
}

// Handler is the API: /v1 and /healthz, and the dashboard everywhere else.
func (s *Server) Handler() http.Handler {
	s.once.Do(s.init)
	return s.handler
}

func (s *Server) init() {
	s.mkt = s.Market.OrDefault()
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.method+" "+rt.path, s.serve(rt.h))
	}
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isAPIPath(r.URL.Path) {
			s.serveOther(w, r)
			return
		}
		// ServeMux answers unknown paths and methods in plain text; ours
		// are JSON like every other error.
		if _, pattern := mux.Handler(r); pattern == "" {
			s.noRoute(mux, w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func isAPIPath(p string) bool {
	return p == "/v1" || strings.HasPrefix(p, "/v1/") || p == "/healthz"
}

// serveOther is the dashboard's part of the URL space.
func (s *Server) serveOther(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.Dashboard == nil:
		writeError(w, http.StatusNotFound, CodeNotFound, "no such endpoint; the API is under /v1")
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, CodeMethod, r.Method+" not allowed on the dashboard")
	default:
		s.Dashboard.ServeHTTP(w, r)
	}
}

// noRoute turns the mux's own answer (404, 405 with Allow, or a redirect
// to a cleaned path) into ours.
func (s *Server) noRoute(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	h, _ := mux.Handler(r)
	rec := &headerRecorder{h: http.Header{}}
	h.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.h.Get("Allow"))
		writeError(w, rec.status, CodeMethod, r.Method+" not allowed on "+r.URL.Path)
	case http.StatusMovedPermanently, http.StatusPermanentRedirect, http.StatusFound, http.StatusTemporaryRedirect:
		w.Header().Set("Location", rec.h.Get("Location"))
		writeError(w, rec.status, CodeNotFound, "moved to "+rec.h.Get("Location"))
	default:
		writeError(w, http.StatusNotFound, CodeNotFound, "no such endpoint: "+r.URL.Path)
	}
}

// headerRecorder keeps a handler's status and headers and drops its body.
type headerRecorder struct {
	h      http.Header
	status int
}

func (r *headerRecorder) Header() http.Header { return r.h }
func (r *headerRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
func (r *headerRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// serve runs h and answers its error; every request is logged once.
func (s *Server) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			s.log().Debug("request", "method", r.Method, "path", r.URL.Path)
			return
		}
		var he *httpError
		if !errors.As(err, &he) {
			he = fail(http.StatusInternalServerError, CodeInternal, err, "internal error")
		}
		lvl := slog.LevelInfo
		if he.status >= 500 {
			lvl = slog.LevelError
		}
		s.log().Log(r.Context(), lvl, "request refused", "method", r.Method, "path", r.URL.Path,
			"status", he.status, "code", he.code, "err", err, "cause", he.cause)
		if he.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cocoon-registry-admin"`)
		}
		writeError(w, he.status, he.code, he.msg)
	})
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// storeErr is a store failure the caller can do nothing about.
func storeErr(err error) error {
	return fail(http.StatusInternalServerError, CodeInternal, err, "internal error")
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	// A cheap read shows the store answers.
	if _, err := s.Store.Prices(r.Context()); err != nil {
		return fail(http.StatusServiceUnavailable, CodeUnavailable, err, "store unavailable")
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}
