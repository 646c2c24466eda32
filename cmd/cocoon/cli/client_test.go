package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/client/clienttest"
)

// clientNet is a registry with two workers: "good" (its image
// allowlisted) and "stale" (admitted, then its image was taken off the
// allowlist: still listed, refused by a client that checks).
func clientNet(t *testing.T) (n *clienttest.Network, good, stale *clienttest.Worker) {
	n = clienttest.New(t)
	good = n.StartWorker(clienttest.WorkerOptions{Name: "good", Allow: true})
	n.Register(good, "", 1_000_000)
	stale = n.StartWorker(clienttest.WorkerOptions{Name: "stale", Static: clienttest.DevStatic + "\n", Allow: true})
	n.Register(stale, "", 2_000_000)
	n.Disallow(stale.ImageHash)
	return n, good, stale
}

// rowOf is the table line of a worker.
func rowOf(t *testing.T, out, id string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, id[:12]) {
			return l
		}
	}
	t.Fatalf("no row for %.12s in\n%s", id, out)
	return ""
}

func TestClientWorkers(t *testing.T) {
	n, good, stale := clientNet(t)

	// Trust on first use: the registry's policy, said loudly.
	code, out, stderr := execute("client", "workers", "--registry", n.URL)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "TRUST ON FIRST USE") || !strings.Contains(stderr, "SIMULATED") {
		t.Errorf("no TOFU / simulation warning:\n%s", stderr)
	}
	if r := rowOf(t, out, good.ID); !strings.Contains(r, "VERIFIED (SIMULATED") || !strings.Contains(r, "127.0.0.1:") || !strings.Contains(r, "cocoon-test") || !strings.Contains(r, "0.001") {
		t.Errorf("good row: %q", r)
	}
	if r := rowOf(t, out, stale.ID); !strings.Contains(r, "REFUSED: image hash allowlisted") || !strings.Contains(r, stale.ImageHash) {
		t.Errorf("stale row: %q", r)
	}

	// -v prints every check.
	_, out, _ = execute("client", "workers", "--registry", n.URL, "-v")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^  ok +quote signature/chain +SIMULATED`),
		regexp.MustCompile(`(?m)^  ok +public key = listed id`),
		regexp.MustCompile(`(?m)^  FAIL +image hash allowlisted +.*` + stale.ImageHash),
	} {
		if !want.MatchString(out) {
			t.Errorf("-v output lacks %s:\n%s", want, out)
		}
	}

	// A local policy decides alone: here it allowlists stale's image only.
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.json")
	os.WriteFile(pol, []byte(`{"schema":"cocoon-policy/v1","allow_simulated":true,"image_hashes":["`+stale.ImageHash+`"]}`), 0o644)
	code, out, stderr = execute("client", "workers", "--registry", n.URL, "--policy", pol, "--sim-root", n.WriteSimRoot(dir), "--json")
	if code != 0 || strings.Contains(stderr, "TRUST ON FIRST USE") {
		t.Fatalf("local policy: exit %d\n%s", code, stderr)
	}
	var list []struct {
		ID        string `json:"id"`
		Verified  bool   `json:"verified"`
		Simulated bool   `json:"simulated"`
		ImageHash string `json:"image_hash"`
		Error     string `json:"error"`
		Checks    []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	for _, w := range list {
		switch w.ID {
		case good.ID:
			if w.Verified || !strings.Contains(w.Error, "image") {
				t.Errorf("good under the local policy: %+v", w)
			}
		case stale.ID:
			if !w.Verified || !w.Simulated || w.ImageHash != stale.ImageHash || len(w.Checks) != 7 {
				t.Errorf("stale under the local policy: %+v", w)
			}
		}
	}

	// --image-hash adds to the allowlist in use.
	_, out, _ = execute("client", "workers", "--registry", n.URL, "--image-hash", stale.ImageHash)
	if r := rowOf(t, out, stale.ID); !strings.Contains(r, "VERIFIED") {
		t.Errorf("--image-hash: %q", r)
	}

	// No verified worker: exit 1 with the reason.
	os.WriteFile(pol, []byte(`{"schema":"cocoon-policy/v1","allow_simulated":true,"image_hashes":["`+strings.Repeat("0", 64)+`"]}`), 0o644)
	code, _, stderr = execute("client", "workers", "--registry", n.URL, "--policy", pol, "--sim-root", filepath.Join(dir, "sim-root.pem"))
	if code != 1 || !strings.Contains(stderr, "no verified worker") {
		t.Errorf("none verified: exit %d: %s", code, stderr)
	}
}

func TestClientUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"client"}, 2, "cocoon client needs a command"},
		{[]string{"client", "workers", "--image-hash", "xyz"}, 2, "want 64 hex digits"},
		{[]string{"client", "workers", "--rebuild", "--image", "x"}, 2, "give one of them"},
		{[]string{"client", "chat", "--registry", "http://127.0.0.1:1"}, 2, "needs a prompt"},
		{[]string{"client", "chat", "--temperature", "hot", "hi"}, 2, "--temperature"},
		{[]string{"client", "workers", "--registry", "http://127.0.0.1:1", "--policy", "/nonexistent"}, 1, "bad policy"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := execute(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d containing %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

// TestClientWorkersImage: --image measures a built image with `measure
// tdx/tpm`; a folder that is no image fails with both reasons.
func TestClientWorkersImage(t *testing.T) {
	n, _, _ := clientNet(t)
	code, _, stderr := execute("client", "workers", "--registry", n.URL, "--image", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "tdx:") || !strings.Contains(stderr, "tpm:") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

func TestClientChat(t *testing.T) {
	n, good, _ := clientNet(t)
	code, out, stderr := execute("client", "chat", "--registry", n.URL, "--max-tokens", "8", "--temperature", "0", "Once upon a time")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	answer, summary, ok := strings.Cut(out, "\n\n-- worker ")
	if !ok || strings.TrimSpace(answer) == "" {
		t.Fatalf("no answer then summary:\n%q", out)
	}
	re := regexp.MustCompile(`^` + good.ID[:12] + ` at 127\.0\.0\.1:\d+ \[SIMULATED attestation\]: \d+ prompt \+ 8 completion tokens, cost 0\.\d+ TON \(at most; 0\.001 TON per 1M tokens\), 1 attempt\(s\)\n$`)
	if !re.MatchString(summary) {
		t.Errorf("summary %q does not match %s", summary, re)
	}
	if !strings.Contains(stderr, "TRUST ON FIRST USE") {
		t.Errorf("no TOFU warning: %s", stderr)
	}
	// The prompt from stdin.
	var o, e strings.Builder
	c := Context{Stdin: strings.NewReader("Once upon a time\n"), Stdout: &o, Stderr: &e, Args: []string{"client", "chat", "--registry", n.URL, "--max-tokens", "4", "-"}}
	if code := c.Execute(context.Background()); code != 0 || !strings.Contains(o.String(), "4 completion tokens") {
		t.Errorf("stdin prompt: exit %d\n%s\n%s", code, o.String(), e.String())
	}
	// A model no verified worker serves.
	if code, _, stderr := execute("client", "chat", "--registry", n.URL, "--model", "gpt-4o", "hi"); code != 1 || !strings.Contains(stderr, "no verified worker") {
		t.Errorf("unknown model: exit %d: %s", code, stderr)
	}
}

// lockedWriter is an io.Writer the test may read while the command runs.
type lockedWriter struct {
	lines chan string
	buf   strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	for {
		s := w.buf.String()
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		w.lines <- s[:i]
		w.buf.Reset()
		w.buf.WriteString(s[i+1:])
	}
	return len(p), nil
}

func TestClientProxy(t *testing.T) {
	n, good, _ := clientNet(t)
	stdout := &lockedWriter{lines: make(chan string, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := Context{Stdin: strings.NewReader(""), Stdout: stdout, Stderr: io.Discard,
		Args: []string{"client", "proxy", "--registry", n.URL, "--listen", "127.0.0.1:0"}}
	done := make(chan int, 1)
	go func() { done <- c.Execute(ctx) }()
	var first string
	select {
	case first = <-stdout.lines:
	case code := <-done:
		t.Fatalf("exited %d before listening", code)
	case <-time.After(30 * time.Second):
		t.Fatal("no listen line")
	}
	m := regexp.MustCompile(`^cocoon client proxy: listening on (http://127\.0\.0\.1:\d+/v1) `).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("first line %q", first)
	}
	resp, err := http.Post(m[1]+"/chat/completions", "application/json", strings.NewReader(clienttest.ChatBody("Once upon a time", 4, false)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Cocoon-Worker") != good.ID || !strings.Contains(string(b), `"chat.completion"`) {
		t.Errorf("%d %v %s", resp.StatusCode, resp.Header, b)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after the context ended", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the proxy did not stop")
	}
}
