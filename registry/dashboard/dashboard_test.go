package dashboard

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/dashboard.golden.html")

func fixed(v *View) func(context.Context) (*View, error) {
	return func(context.Context) (*View, error) { return v, nil }
}

// get serves one request and returns the recorded response.
func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func render200(t *testing.T, v *View) string {
	t.Helper()
	rec := get(t, Handler(fixed(v)), http.MethodGet, "/")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %q", rec.Code, rec.Body.String())
	}
	return rec.Body.String()
}

func TestGolden(t *testing.T) {
	got := render200(t, fixture())
	path := filepath.Join("testdata", "dashboard.golden.html")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
	}
	if got != string(want) {
		// Print the first differing line: the whole page is too long to diff by eye.
		g, w := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(g) || i < len(w); i++ {
			var gl, wl string
			if i < len(g) {
				gl = g[i]
			}
			if i < len(w) {
				wl = w[i]
			}
			if gl != wl {
				t.Fatalf("output differs from %s at line %d:\n got: %q\nwant: %q\n(rerun with -update if the change is intended)", path, i+1, gl, wl)
			}
		}
	}
}

func TestGoldenContents(t *testing.T) {
	// The golden file pins every byte; these checks say what matters in it.
	body := render200(t, fixture())
	for _, want := range []string{
		`<meta http-equiv="refresh" content="10">`,
		"1.234567890 TON", // wallet balance
		"7.500000001 TON", // total earned: no float rounding
		"0.000000001 TON", // 1 nanoton price
		`class="badge ok">attested<`,
		`class="badge warn">expired<`,
		`class="badge off">offline<`,
		`>SIMULATED</span>`,
		`title="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08">9f86d081884c…<`,
		"2026-03-14 15:09:26 UTC",
		"12s ago",
		"--ok:" + colorOK,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestEscaping(t *testing.T) {
	v := fixture()
	const evil = `<script>alert("pwned")</script>`
	v.Workers[0].Endpoint = evil
	v.Workers[0].Models = []string{`"><img src=x onerror=alert(1)>`}
	v.Workers[0].ImageHash = `" onmouseover="alert(1)`
	v.Workers[0].ID = `x" style="background:url(//evil)`
	v.Events[0].Message = evil
	body := render200(t, v)
	for _, bad := range []string{"<script", "<img", `" onmouseover="`, `" style="background`} {
		if strings.Contains(body, bad) {
			t.Errorf("untrusted input reached the page unescaped: found %q", bad)
		}
	}
	if !strings.Contains(body, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;") {
		t.Error("escaped endpoint not found in page")
	}
}

// Matches any attribute or CSS that would make the browser fetch something.
var externalRef = regexp.MustCompile(`(?i)(\b(src|href|action|poster|data|srcset)\s*=\s*["']?\s*(https?:)?//)|<script|<link|<img|<iframe|<object|<embed|@import|url\(`)

func TestNoExternalAssets(t *testing.T) {
	for name, v := range map[string]*View{"fixture": fixture(), "empty": {}} {
		body := render200(t, v)
		if m := externalRef.FindString(body); m != "" {
			t.Errorf("%s: page references an external asset or script: %q", name, m)
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("%s: page contains an absolute URL", name)
		}
	}
}

func TestEmptyTables(t *testing.T) {
	body := render200(t, &View{})
	for _, want := range []string{
		"no workers registered yet", "no payout batches yet", "no events recorded",
		"<title>" + defaultTitle + "</title>", "0.000000000 TON", "no address configured",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("empty page lacks %q", want)
		}
	}
	if strings.Contains(body, "<table") {
		t.Error("empty page should show messages, not empty tables")
	}
}

func TestHeaders(t *testing.T) {
	rec := get(t, Handler(fixed(fixture())), http.MethodGet, "/")
	want := map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	}
	for k, v := range want {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "style-src 'unsafe-inline'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q allows scripts", csp)
	}
}

func TestHead(t *testing.T) {
	h := Handler(fixed(fixture()))
	// Through a real server: the recorder would keep a body net/http drops.
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Head(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(b) != 0 {
		t.Fatalf("HEAD: status %d, %d body bytes", resp.StatusCode, len(b))
	}
	full := get(t, h, http.MethodGet, "/")
	if resp.ContentLength != int64(full.Body.Len()) {
		t.Errorf("HEAD Content-Length %d, GET body %d", resp.ContentLength, full.Body.Len())
	}
}

func TestMethods(t *testing.T) {
	calls := 0
	h := Handler(func(context.Context) (*View, error) { calls++; return fixture(), nil })
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		rec := get(t, h, m, "/")
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: status %d, want 405", m, rec.Code)
		}
		if a := rec.Header().Get("Allow"); a != "GET, HEAD" {
			t.Errorf("%s: Allow %q", m, a)
		}
	}
	if rec := get(t, h, http.MethodGet, "/favicon.ico"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /favicon.ico: status %d, want 404", rec.Code)
	}
	if calls != 0 {
		t.Errorf("src called %d times for requests that are not served", calls)
	}
}

func TestSourceError(t *testing.T) {
	h := Handler(func(ctx context.Context) (*View, error) {
		return nil, errors.New("store: database is locked")
	})
	rec := get(t, h, http.MethodGet, "/")
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	if got, want := rec.Body.String(), "dashboard unavailable: store: database is locked\n"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Error("error responses must not be cached either")
	}

	nilView := Handler(func(context.Context) (*View, error) { return nil, nil })
	if rec := get(t, nilView, http.MethodGet, "/"); rec.Code != http.StatusInternalServerError {
		t.Errorf("nil View: status %d, want 500", rec.Code)
	}
}

func TestPassesRequestContext(t *testing.T) {
	type key struct{}
	h := Handler(func(ctx context.Context) (*View, error) {
		if ctx.Value(key{}) != "yes" {
			return nil, errors.New("wrong context")
		}
		return &View{}, nil
	})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req = req.WithContext(context.WithValue(req.Context(), key{}, "yes"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
}

func TestDoesNotModifyView(t *testing.T) {
	v := &View{}
	render200(t, v)
	if v.Title != "" {
		t.Errorf("handler changed the caller's View: Title = %q", v.Title)
	}
}
