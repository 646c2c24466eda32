package wire

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// An answer that is not ours (a proxy's page) still comes back as *Error.
func TestClientForeignError(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer ts.Close()
	_, err := (&Client{BaseURL: ts.URL + "/"}).Prices(context.Background())
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway || ae.Code != "" || ae.Message != "bad gateway" {
		t.Fatalf("%#v", err)
	}
	if errors.Is(err, ErrInternal) {
		t.Fatal("502 matched the 500 sentinel")
	}
}

// An error body of ours keeps its code, and matches its status's sentinel.
func TestClientErrorBody(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"code":"unknown_worker","message":"no worker x"}}`))
	}))
	defer ts.Close()
	_, err := (&Client{BaseURL: ts.URL}).Worker(context.Background(), "x")
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeUnknownWorker || ae.Message != "no worker x" {
		t.Fatalf("%#v", err)
	}
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("%v does not match ErrNotFound", err)
	}
}
