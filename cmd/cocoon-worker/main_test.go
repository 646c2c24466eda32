package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHealthz(t *testing.T) {
	srv := httptest.NewServer(handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok cocoon-worker "+version+"\n" {
		t.Errorf("GET /healthz = %d %q", resp.StatusCode, body)
	}
	resp, err = http.Post(srv.URL+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
	}
}

func TestVersion(t *testing.T) {
	var b bytes.Buffer
	if err := run([]string{"-version"}, &b); err != nil || b.String() != "cocoon-worker "+version+"\n" {
		t.Errorf("-version: %q, %v", b.String(), err)
	}
	if err := run([]string{"-listen", "bad:addr:x"}, &b); err == nil {
		t.Error("bad -listen accepted")
	}
}
