package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/cocoon-appliance/cocoon/internal/strictjson"
)

// Body limits. A registration carries an RA-TLS certificate (at most
// ratls.MaxCertificateSize, 4/3 larger in base64); a receipt batch up to
// MaxBatch receipts of at most a few KiB each.
const (
	maxBody         = 1 << 20
	maxReceiptsBody = 8 << 20
	maxSmallBody    = 64 << 10 // heartbeats and admin requests
)

// decodeJSON reads r's body into v the strict way (internal/strictjson):
// application/json only (415), at most limit bytes (413), unknown fields
// and anything after the value refused (400).
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if err := jsonContentType(r); err != nil {
		return err
	}
	return decodeBody(http.MaxBytesReader(w, r.Body, limit), limit, v)
}

func jsonContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fail(http.StatusUnsupportedMediaType, CodeMediaType, nil, "Content-Type %q, want application/json", ct)
	}
	// JSON is UTF-8 (RFC 8259 §8.1); a declared charset must say so.
	if cs, ok := params["charset"]; ok && cs != "utf-8" && cs != "UTF-8" {
		return fail(http.StatusUnsupportedMediaType, CodeMediaType, nil, "charset %q, want utf-8", cs)
	}
	return nil
}

// decodeBody is decodeJSON without the HTTP parts (the fuzz tests call it).
func decodeBody(body io.Reader, limit int64, v any) error {
	err := strictjson.Decode(body, limit, v)
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe) || errors.Is(err, strictjson.ErrTooLarge):
		return fail(http.StatusRequestEntityTooLarge, CodeTooLarge, err, "body larger than %d bytes", limit)
	}
	return fail(http.StatusBadRequest, CodeMalformedJSON, err, "malformed JSON: %v", err)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Error: ErrorDetail{Code: CodeInternal, Message: "internal error"}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}
