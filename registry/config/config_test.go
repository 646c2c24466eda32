package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `{
  "schema": "cocoon-registry/v1",
  "store": "sqlite:reg.db",
  "policy": "policy.json",
  "allow": ["69AAAD308A05D8033B2F6B776A83F85376860325D1BD2280D820B942B2734A51"],
  "models": {"tiny": {"base": 1000, "min": 10, "max": 100000}},
  "chain": {"kind": "emulated", "fund": 5},
  "wallet": {"timeout_s": 600},
  "payout": {"min": 7, "every_s": 60, "interval_s": 0}
}`

func TestParseGood(t *testing.T) {
	c, err := Parse(strings.NewReader(good), "/etc/reg")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"listen", c.Listen, "127.0.0.1:8480"},
		{"store", c.Store, "sqlite:/etc/reg/reg.db"},
		{"policy", c.Policy, "/etc/reg/policy.json"},
		{"state", c.Chain.State, "/etc/reg/ledger.json"},
		{"key", c.Wallet.KeyFile, "/etc/reg/hot-wallet.key"},
		{"allow", c.Allow[0], "69aaad308a05d8033b2f6b776a83f85376860325d1bd2280d820b942b2734a51"},
	}
	for _, k := range checks {
		if k.got != k.want {
			t.Errorf("%s = %q, want %q", k.name, k.got, k.want)
		}
	}
	if c.Payout.Interval() != 0 || c.Payout.MaxBatch != 200 || c.Wallet.Timeout().Seconds() != 600 {
		t.Errorf("payout %+v wallet %+v", c.Payout, c.Wallet)
	}
}

// A registry of vTPM workers only needs no TDX policy template.
func TestParseVTPMOnly(t *testing.T) {
	in := strings.Replace(good, `"policy.json"`, `"", "vtpm_policy": "vtpm.json"`, 1)
	c, err := Parse(strings.NewReader(in), "/etc/reg")
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy != "" || c.VTPMPolicy != "/etc/reg/vtpm.json" {
		t.Fatalf("policy %q vtpm %q", c.Policy, c.VTPMPolicy)
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"schema", `"cocoon-registry/v1"`, `"cocoon-registry/v2"`, "schema"},
		{"unknown field", `"store":`, `"stor": 1, "store":`, "unknown field"},
		{"listen", `"store"`, `"listen": "8480", "store"`, "listen"},
		{"store", `"sqlite:reg.db"`, `"mysql://x:secret@h/db"`, "want sqlite:PATH"},
		{"no policy", `"policy.json"`, `""`, "policy: required"},
		{"allow", `"69AAAD`, `"zz`, "allow[0]"},
		{"model bounds", `"min": 10`, `"min": 10000`, "min <= base <= max"},
		{"chain kind", `"emulated"`, `"testnet"`, "chain.kind"},
		{"lite fund", `"emulated", "fund": 5`, `"lite", "global_config": "g.json", "fund": 5`, "chain.fund"},
		{"timeout", `"timeout_s": 600`, `"timeout_s": 5`, "wallet.timeout_s"},
		{"batch", `"min": 7`, `"max_batch": 70000, "min": 7`, "payout.max_batch"},
		{"trailing", "}\n}", "}\n}{}", "after the JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.Replace(good, tc.from, tc.to, 1)
			if in == good {
				t.Fatalf("replacement %q not found", tc.from)
			}
			_, err := Parse(strings.NewReader(in), "/x")
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := Parse(strings.NewReader(strings.Replace(good, `"sqlite:reg.db"`, `"mysql://u:hunter2@h/db"`, 1)), "/x"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("password leak: %v", err)
	}
}

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse(strings.NewReader(good), dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := c.AdminToken(); tok != "" || err != nil {
		t.Fatalf("no token file: %q %v", tok, err)
	}
	c.AdminTokenFile = filepath.Join(dir, "tok")
	os.WriteFile(c.AdminTokenFile, []byte("short\n"), 0o600)
	if _, err := c.AdminToken(); !errors.Is(err, ErrConfig) {
		t.Fatalf("short token: %v", err)
	}
	seed, created, err := c.WalletKey(bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	if err != nil || !created || seed[0] != 7 {
		t.Fatalf("create key: %x %v %v", seed, created, err)
	}
	if fi, _ := os.Stat(c.Wallet.KeyFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode())
	}
	again, created, err := c.WalletKey(bytes.NewReader(nil))
	if err != nil || created || !bytes.Equal(again, seed) {
		t.Fatalf("reload key: %x %v %v", again, created, err)
	}
	os.WriteFile(c.Wallet.KeyFile, []byte("nothex"), 0o600)
	if _, _, err := c.WalletKey(bytes.NewReader(nil)); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad key: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"schema":"cocoon-registry/v1","policy":"p","chain":{"kind":"lite","global_config":"g"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(bytes.NewReader(b), "/d")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error without ErrConfig: %v", err)
			}
			return
		}
		if c.Schema != Schema || c.Policy == "" {
			t.Fatalf("accepted %+v", c)
		}
	})
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://reg:s3cret@db:5432/reg": "postgres://reg:***@db:5432/reg",
		"postgres://reg@db/reg":             "postgres://reg@db/reg",
		"sqlite:/var/lib/reg.db":            "sqlite:/var/lib/reg.db",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
