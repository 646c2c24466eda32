package dashboard

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"html/template"
	"net/http"
	"strconv"
)

//go:embed dashboard.html
var pageSource string

// page is parsed once at init: a broken template is a programming error and
// should fail every test, not the first request in production.
var page = template.Must(template.New("dashboard").Funcs(template.FuncMap{
	"css":         css,
	"ton":         formatTON,
	"time":        formatTime,
	"ago":         ago,
	"short":       short,
	"pct":         percent,
	"statusClass": statusClass,
	"batchClass":  batchClass,
	"levelClass":  levelClass,
	"chainClass":  chainClass,
}).Parse(pageSource))

// contentSecurityPolicy lets the page use its inline <style> and nothing
// else: no scripts, images, fonts, frames or form targets. If an escaping bug
// ever let worker-supplied markup through, the browser would still refuse to
// run or fetch anything.
const contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const defaultTitle = "Cocoon registry"

// Handler serves the dashboard for GET and HEAD of "/". Mount it under a
// prefix with http.StripPrefix. src is called once per request, with the
// request's context, to read fresh data; its error text is shown as-is in a
// plain-text 500, so it should not contain secrets.
func Handler(src func(ctx context.Context) (*View, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Set on every response, errors included: none of them should be
		// cached by a proxy or framed by another site.
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")

		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// Anything else (favicon.ico above all) would otherwise cost a full
		// read of the books per browser request.
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		body, err := render(r.Context(), src)
		if err != nil {
			http.Error(w, "dashboard unavailable: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})
}

// render runs the whole template into memory first, so a failure half-way
// becomes a clean 500 instead of a truncated page with a 200 status.
func render(ctx context.Context, src func(context.Context) (*View, error)) ([]byte, error) {
	v, err := src(ctx)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, errors.New("no data")
	}
	vv := *v // a copy: filling in defaults must not touch the caller's View
	if vv.Title == "" {
		vv.Title = defaultTitle
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, &vv); err != nil {
		// Template errors name internals; the page only needs to say it failed.
		return nil, errors.New("rendering failed")
	}
	return buf.Bytes(), nil
}
