package client_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/client"
	"github.com/cocoon-appliance/cocoon/client/clienttest"
	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
)

func otherRoot(t *testing.T) *x509.Certificate {
	t.Helper()
	s, err := sim.New(sim.Options{Seed: bytes.Repeat([]byte{9}, sim.SeedSize)})
	if err != nil {
		t.Fatal(err)
	}
	return s.Root()
}

func zero() *float64 { var f float64; return &f }

func chatReq(stream bool) client.ChatRequest {
	return client.ChatRequest{Model: clienttest.Model, Messages: []client.Message{{Role: "user", Content: "Once upon a time"}},
		MaxTokens: 12, Temperature: zero(), Stream: stream}
}

// TestChat: a chat completion from the verified worker, whole and
// streamed, with usage, cost and the worker's identity.
func TestChat(t *testing.T) {
	ctx := context.Background()
	n := clienttest.New(t)
	w := n.StartWorker(clienttest.WorkerOptions{Allow: true})
	const price = 3_000_000
	n.Register(w, "", price)
	c := tofu(t, n)
	defer c.Close()

	res, err := c.Chat(ctx, chatReq(false), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Worker != w.ID || res.Attempts != 1 || res.Text == "" || res.PromptTokens <= 0 || res.CompletionTokens <= 0 || !res.Simulated {
		t.Fatalf("non-stream: %+v", res)
	}
	if want := uint64(res.PromptTokens+res.CompletionTokens) * price / 1_000_000; res.CostNanoton != want || res.Price != price {
		t.Errorf("cost %d at price %d, want %d", res.CostNanoton, res.Price, want)
	}

	var deltas []string
	sres, err := c.Chat(ctx, chatReq(true), func(s string) { deltas = append(deltas, s) })
	if err != nil {
		t.Fatal(err)
	}
	if len(deltas) < 2 || strings.Join(deltas, "") != sres.Text {
		t.Errorf("stream: %d deltas %q, text %q", len(deltas), deltas, sres.Text)
	}
	// Temperature 0: the same answer both ways.
	if sres.Text != res.Text || sres.CompletionTokens != res.CompletionTokens || sres.PromptTokens != res.PromptTokens {
		t.Errorf("stream %q (%d+%d tokens), whole %q (%d+%d)", sres.Text, sres.PromptTokens, sres.CompletionTokens, res.Text, res.PromptTokens, res.CompletionTokens)
	}
	if sres.FinishReason == "" || sres.CostNanoton == 0 {
		t.Errorf("stream result %+v", sres)
	}

	// A request the worker refuses (4xx) is not retried elsewhere.
	bad := chatReq(false)
	bad.MaxTokens = 1 << 30
	if _, err := c.Chat(ctx, bad, nil); !errors.Is(err, client.ErrRequest) {
		t.Errorf("max_tokens 2^30: %v, want ErrRequest", err)
	} else {
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Worker != w.ID {
			t.Errorf("APIError %+v", ae)
		}
	}
}

// TestChatFailover: the cheapest verified worker's endpoint is dead; the
// request goes to the next one, and says so.
func TestChatFailover(t *testing.T) {
	n := clienttest.New(t)
	dead := n.StartWorker(clienttest.WorkerOptions{Name: "dead", Allow: true})
	live := n.StartWorker(clienttest.WorkerOptions{Name: "live"})
	n.Register(dead, clienttest.DeadEndpoint(t), 500_000)
	n.Register(live, "", 5_000_000)
	c := tofu(t, n)
	defer c.Close()
	for _, stream := range []bool{false, true} {
		res, err := c.Chat(context.Background(), chatReq(stream), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Worker != live.ID || res.Attempts != 2 || res.Text == "" {
			t.Errorf("stream %v: worker %.12s after %d attempts, want %.12s after 2", stream, res.Worker, res.Attempts, live.ID)
		}
	}
}

// TestEndpointSwap: the registry lists worker A's (genuine, verified)
// certificate with worker B's endpoint. B is attested too, but it is not
// the worker that was verified: the handshake is refused by the pin and
// the prompt is never sent. With B listed honestly as well, the request
// fails over to B.
func TestEndpointSwap(t *testing.T) {
	n := clienttest.New(t)
	a := n.StartWorker(clienttest.WorkerOptions{Name: "a", Allow: true})
	b := n.StartWorker(clienttest.WorkerOptions{Name: "b"})
	n.Register(a, b.Addr, 500_000)
	c := tofu(t, n)
	defer c.Close()
	list, err := c.Workers(context.Background(), "")
	if err != nil || len(list) != 1 || !list[0].Verified() {
		t.Fatalf("the listing itself verifies (the certificate is A's): %v %+v", err, list)
	}
	_, err = c.Chat(context.Background(), chatReq(false), nil)
	if !errors.Is(err, client.ErrPinned) || !errors.Is(err, client.ErrWorker) {
		t.Fatalf("swapped endpoint: %v, want ErrPinned", err)
	}
	n.Register(b, "", 5_000_000)
	res, err := c.Chat(context.Background(), chatReq(false), nil)
	if err != nil || res.Worker != b.ID || res.Attempts != 2 {
		t.Fatalf("with B listed: %+v, %v; want B after 2 attempts", res, err)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
