package api

import (
	"context"
	"crypto/tls"
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
