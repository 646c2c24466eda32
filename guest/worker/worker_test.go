package worker

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/attest"
	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/measure/policy"
)

func testConfig(t *testing.T, staticPolicy string) *Config {
	t.Helper()
	dir := t.TempDir()
	static := filepath.Join(dir, "static.json")
	if err := os.WriteFile(static, []byte(`{"model":"cocoon-test","gpu_required":false,"policy":"`+staticPolicy+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := `{"schema":"cocoon-worker/v1","worker_id":"w-test","static_config":"` + static + `","receipts_dir":"` + filepath.Join(dir, "receipts") + `",
		"model":{"id":"cocoon-test","engine":"builtin","checkpoint":"../engine/llama2/testdata/model.bin","tokenizer":"../engine/llama2/testdata/tokenizer.bin"}}`
	c, err := ParseConfig(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// simOnly opens a seeded simulator and refuses the hardware kinds, as on
// this machine.
func simOnly(s **sim.Simulator) func(string) (attest.Provider, error) {
	return func(kind string) (attest.Provider, error) {
		if kind != "sim" {
			return nil, attest.ErrUnavailable
		}
		p, err := sim.New(sim.Options{Seed: bytes.Repeat([]byte{7}, sim.SeedSize)})
		*s = p
		return p, err
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestServeOverRATLS is the worker end to end in one process: a dev guest
// (simulator), a client that verifies the RA-TLS certificate under a
// policy allowing simulation and this image, a chat completion from the
// built-in engine, and the signed receipt it leaves in the journal.
func TestServeOverRATLS(t *testing.T) {
	cfg := testConfig(t, "dev")
	var s *sim.Simulator
	w, err := New(context.Background(), cfg, Deps{Open: simOnly(&s), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	m, err := s.Measurements()
	if err != nil {
		t.Fatal(err)
	}
	pol := &policy.Policy{AllowSimulated: true, ImageHashes: [][32]byte{m.ImageHash()}}
	v := &ratls.Verifier{Now: time.Now, Evidence: map[attest.Kind]ratls.EvidenceVerifier{attest.Sim: &ratls.SimVerifier{Root: s.Root(), Policy: pol}}}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: ratls.ClientConfig(v)}, Timeout: 30 * time.Second}
	body := `{"model":"cocoon-test","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":12,"temperature":0}`
	resp, err := client.Post("https://"+ln.Addr().String()+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out struct {
		Usage struct {
			Prompt     int64 `json:"prompt_tokens"`
			Completion int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	// The gateway records after the response is flushed: the client may
	// read it before the receipt is journalled. Wait for it (the bound is
	// on a hang, not a timing assertion).
	var r []receipt.Signed
	for i := 0; i < 1000 && len(r) == 0; i++ {
		if r = w.Receipts().Pending(10); len(r) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(r) != 1 {
		t.Fatalf("%d receipts, want 1", len(r))
	}
	if err := r[0].Verify(); err != nil || r[0].Receipt.Model != "cocoon-test" || r[0].Receipt.Usage.Prompt == 0 || r[0].Receipt.Usage.Completion == 0 {
		t.Errorf("receipt %+v: %v", r[0].Receipt, err)
	}
	if u := r[0].Receipt.Usage; u.Prompt != out.Usage.Prompt || u.Completion != out.Usage.Completion {
		t.Errorf("receipt counts %+v, response usage %+v", u, out.Usage)
	}
	if got, want := r[0].Receipt.Worker, hex.EncodeToString(w.PublicKey()); got != want {
		t.Errorf("receipt worker %s, want the RA-TLS key %s", got, want)
	}

	// A production policy (no allow_simulated) refuses the worker in the
	// handshake: the prompt never leaves the client.
	prod := &ratls.Verifier{Now: time.Now, Evidence: map[attest.Kind]ratls.EvidenceVerifier{attest.Sim: &ratls.SimVerifier{Root: s.Root(), Policy: &policy.Policy{ImageHashes: [][32]byte{m.ImageHash()}}}}}
	c2 := &http.Client{Transport: &http.Transport{TLSClientConfig: ratls.ClientConfig(prod)}, Timeout: 30 * time.Second}
	if _, err := c2.Post("https://"+ln.Addr().String()+"/v1/chat/completions", "application/json", strings.NewReader(body)); err == nil || !strings.Contains(err.Error(), "simulat") {
		t.Errorf("production policy: err = %v, want a refusal naming the simulator", err)
	}
	// Plain TLS without our verification sees a self-signed certificate.
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{MinVersion: tls.VersionTLS13}); err == nil {
		t.Error("web-PKI TLS accepted the RA-TLS certificate")
	}
}

func TestAttestationChoice(t *testing.T) {
	var s *sim.Simulator
	// A production guest never falls back to the simulator.
	if _, err := New(context.Background(), testConfig(t, "production"), Deps{Open: simOnly(&s), Logger: quiet()}); !errors.Is(err, ErrNoAttestation) {
		t.Errorf("production without hardware: %v", err)
	}
	cfg := testConfig(t, "production")
	cfg.Attestation = "sim"
	if _, err := New(context.Background(), cfg, Deps{Open: simOnly(&s), Logger: quiet()}); !errors.Is(err, ErrNoAttestation) || !strings.Contains(err.Error(), `policy "dev"`) {
		t.Errorf("sim asked for under production: %v", err)
	}
	cfg = testConfig(t, "dev")
	cfg.StaticConfig = "/nonexistent/static.json"
	if _, err := New(context.Background(), cfg, Deps{Open: simOnly(&s), Logger: quiet()}); err == nil {
		t.Error("no static config accepted")
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"schema", `{"schema":"x","model":{"id":"m","engine":"builtin","checkpoint":"a","tokenizer":"b"}}`},
		{"unknown field", `{"schema":"cocoon-worker/v1","x":1,"model":{"id":"m","engine":"builtin","checkpoint":"a","tokenizer":"b"}}`},
		{"no model", `{"schema":"cocoon-worker/v1"}`},
		{"builtin without tokenizer", `{"schema":"cocoon-worker/v1","model":{"id":"m","engine":"builtin","checkpoint":"a"}}`},
		{"remote upstream", `{"schema":"cocoon-worker/v1","model":{"id":"m","engine":"openai","upstream_url":"http://10.0.0.5:8000"}}`},
		{"bad attestation", `{"schema":"cocoon-worker/v1","attestation":"sgx","model":{"id":"m","engine":"openai","upstream_url":"http://127.0.0.1:8000"}}`},
		{"bad listen", `{"schema":"cocoon-worker/v1","listen":"8443","model":{"id":"m","engine":"openai","upstream_url":"http://127.0.0.1:8000"}}`},
		{"short validity", `{"schema":"cocoon-worker/v1","cert_validity_s":5,"model":{"id":"m","engine":"openai","upstream_url":"http://127.0.0.1:8000"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseConfig(strings.NewReader(tc.doc)); !errors.Is(err, ErrConfig) {
				t.Errorf("err = %v, want ErrConfig", err)
			}
		})
	}
	c, err := ParseConfig(strings.NewReader(`{"schema":"cocoon-worker/v1","model":{"id":"m","engine":"openai","upstream_url":"http://127.0.0.1:8000"}}`))
	if err != nil || c.Listen != ":8443" || c.Attestation != "auto" || c.CertValidity() != time.Hour {
		t.Errorf("defaults: %+v %v", c, err)
	}
}

func TestHealthHandler(t *testing.T) {
	srv := httptest.NewServer(HealthHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok cocoon-worker "+Version+"\n" {
		t.Errorf("GET /healthz = %d %q", resp.StatusCode, b)
	}
	if resp, err := http.Get(srv.URL + "/v1/models"); err != nil || resp.StatusCode != 404 {
		t.Errorf("the plain side serves more than /healthz: %v", resp.Status)
	}
}
