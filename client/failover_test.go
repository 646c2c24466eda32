package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/client"
	"github.com/cocoon-appliance/cocoon/client/clienttest"
)

// breaking streams one token, then drops the connection.
func breaking(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	fmt.Fprint(w, `data: {"object":"chat.completion.chunk","choices":[{"delta":{"role":"assistant","content":""}}]}`+"\n\n")
	fmt.Fprint(w, `data: {"object":"chat.completion.chunk","choices":[{"delta":{"content":"Once"}}]}`+"\n\n")
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

// TestFailoverWhenSafe: table of misbehaving first choices (attested and
// verified, but failing after the handshake), with a live worker behind
// them. Failures before any output reached the caller go to the live
// worker; a stream that broke after a token was delivered is not retried.
func TestFailoverWhenSafe(t *testing.T) {
	for _, tc := range []struct {
		name     string
		h        http.HandlerFunc
		stream   bool
		wantErr  error // nil: the live worker answers, attempt 2
		wantText string
	}{
		{"503 before any output", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":{"message":"overloaded","type":"server_error","code":"overloaded"}}`, 503)
		}, true, nil, ""},
		{"429 busy", func(w http.ResponseWriter, r *http.Request) { http.Error(w, `{"error":{"message":"busy"}}`, 429) }, false, nil, ""},
		{"whole answer cut short", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.Write([]byte(`{"choices":[`))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, false, nil, ""},
		{"stream broke before any token", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, true, nil, ""},
		{"stream broke after a token", breaking, true, client.ErrPartial, "Once"},
		{"400 is final", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":{"message":"bad","type":"invalid_request_error","code":"bad"}}`, 400)
		}, false, client.ErrRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := clienttest.New(t)
			bad := n.StartFake("", true, tc.h)
			live := n.StartWorker(clienttest.WorkerOptions{Name: "live"})
			n.Register(bad, "", 500_000)
			n.Register(live, "", 5_000_000)
			c := tofu(t, n)
			defer c.Close()
			var got strings.Builder
			res, err := c.Chat(context.Background(), chatReq(tc.stream), func(s string) { got.WriteString(s) })
			if tc.wantErr == nil {
				if err != nil || res.Worker != live.ID || res.Attempts != 2 {
					t.Fatalf("res %+v, err %v; want the live worker after 2 attempts", res, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if tc.wantText != "" && (res == nil || res.Text != tc.wantText || res.Attempts != 1 || got.String() != tc.wantText) {
				t.Fatalf("partial result %+v, delivered %q", res, got.String())
			}
		})
	}
}

// TestProxyNoRetryAfterOutput: once the proxy has relayed a worker's
// headers, a broken stream ends the answer there: no second worker's
// tokens are spliced in.
func TestProxyNoRetryAfterOutput(t *testing.T) {
	n := clienttest.New(t)
	bad := n.StartFake("", true, http.HandlerFunc(breaking))
	live := n.StartWorker(clienttest.WorkerOptions{Name: "live"})
	n.Register(bad, "", 500_000)
	n.Register(live, "", 5_000_000)
	c := tofu(t, n)
	defer c.Close()
	srv := httptest.NewServer(c.Proxy())
	defer srv.Close()
	req := sdkRequest(t, "POST", srv.URL+"/v1/chat/completions", clienttest.ChatBody("Once upon a time", 8, true))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get(client.HeaderWorker) != bad.ID || resp.Header.Get(client.HeaderAttempts) != "1" {
		t.Fatalf("answered by %.12s after %s attempts", resp.Header.Get(client.HeaderWorker), resp.Header.Get(client.HeaderAttempts))
	}
	b := make([]byte, 4096)
	var body strings.Builder
	for {
		n, err := resp.Body.Read(b)
		body.Write(b[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(body.String(), `"Once"`) || strings.Contains(body.String(), "[DONE]") {
		t.Errorf("relayed %q: want the partial stream and no [DONE]", body.String())
	}
}
