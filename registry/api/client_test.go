package api

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestClientRegisterTLS(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.cl.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := e.cl.RegisterTLS(ctx, fxWorker.cert, Registration{
		Payout: payoutAddr, Endpoint: "w:1", Models: []string{model}, Price: minPrice,
	})
	if err != nil || info.ID != fxWorker.id {
		t.Fatalf("%+v %v", info, err)
	}
	if _, err := e.cl.RegisterTLS(ctx, tls.Certificate{}, Registration{}); err == nil {
		t.Fatal("a certificate without an Ed25519 key was accepted")
	}
}

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
