package cli

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// writeRegistryConfig writes a registry of vTPM workers (no simulator, no
// TDX template) with an emulated ledger, admin token and payouts on demand.
func writeRegistryConfig(t *testing.T, listen string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"admin.token": strings.Repeat("ab", 20) + "\n",
		"vtpm.json":   `{"schema":"cocoon-vtpm-policy/v1","allow_any_ak":true,"pcrs":[{"4":"` + strings.Repeat("11", 32) + `"}]}`,
		"registry.json": `{"schema":"cocoon-registry/v1","listen":"` + listen + `","store":"sqlite:r.db","admin_token_file":"admin.token",
			"vtpm_policy":"vtpm.json","models":{"m":{"base":1000,"min":100,"max":10000}},
			"chain":{"kind":"emulated","fund":5000000000},"payout":{"interval_s":0}}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "registry.json")
}

// TestRegistryCLI serves a registry through `cocoon registry serve` and
// drives its admin commands against it, good input and bad.
func TestRegistryCLI(t *testing.T) {
	cfg := writeRegistryConfig(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr strings.Builder
	c := Context{Stdin: strings.NewReader(""), Stdout: pw, Stderr: &stderr, Args: []string{"registry", "serve", "--config", cfg}}
	done := make(chan int, 1)
	go func() { done <- c.Execute(ctx); pw.Close() }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("registry serve exited %d: %s", code, stderr.String())
		}
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("registry serve: %v (%s)", err, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(`serving (http://[0-9.:]+) .*hot wallet (\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("first line %q", line)
	}
	url := m[1]
	hash := strings.Repeat("c0", 32)
	run := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := execute(args...)
		if code != want {
			t.Fatalf("%v: exit %d, want %d; stdout %q stderr %q", args, code, want, out, errOut)
		}
		return out + errOut
	}
	if out := run(0, "registry", "allow", "--config", cfg, "--registry", url, "--note", "release 1", hash); !strings.Contains(out, "allowlisted "+hash) {
		t.Fatalf("allow: %s", out)
	}
	if out := run(0, "registry", "allow", "--config", cfg, "--registry", url); !strings.Contains(out, hash) || !strings.Contains(out, "release 1") {
		t.Fatalf("allow list: %s", out)
	}
	run(0, "registry", "allow", "--config", cfg, "--registry", url, "--remove", hash)
	if out := run(0, "registry", "allow", "--config", cfg, "--registry", url); strings.Contains(out, hash) {
		t.Fatalf("removed hash still listed: %s", out)
	}
	if out := run(0, "registry", "payouts", "--config", cfg, "--registry", url, "--run"); !strings.Contains(out, "payout run: planned 0") {
		t.Fatalf("payouts --run: %s", out)
	}
	if out := run(0, "registry", "payouts", "--config", cfg, "--registry", url); !strings.Contains(out, "BATCH") {
		t.Fatalf("payouts: %s", out)
	}
	// Bad input: a clear usage error, nothing sent.
	if out := run(2, "registry", "allow", "--config", cfg, "--registry", url, "xyz"); !strings.Contains(out, "want 64 hex digits") {
		t.Fatalf("bad hash: %s", out)
	}
	if out := run(2, "registry", "allow", "--registry", url, hash); !strings.Contains(out, "admin token") {
		t.Fatalf("no token: %s", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.token")
	os.WriteFile(bad, []byte(strings.Repeat("x", 40)), 0o600)
	if out := run(1, "registry", "allow", "--token-file", bad, "--registry", url, hash); !strings.Contains(strings.ToLower(out), "token") {
		t.Fatalf("wrong token: %s", out)
	}
	if out := run(2, "registry", "serve"); !strings.Contains(out, "needs --config") {
		t.Fatalf("serve without config: %s", out)
	}
	if out := run(1, "registry", "serve", "--config", filepath.Join(t.TempDir(), "none.json")); !strings.Contains(out, "no such file") {
		t.Fatalf("missing config: %s", out)
	}
}
