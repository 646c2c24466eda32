package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/worker"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, &out); err != nil || out.String() != "cocoon-worker "+worker.Version+"\n" {
		t.Errorf("-version: %q %v", out.String(), err)
	}
}

func TestBadConfig(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-config", "main.go"}, &out); err == nil {
		t.Error("a Go file accepted as the worker config")
	}
}

const payoutAddr = "EQD4FPq-PRDieyQKkizFTRtSDyucUIqrj0v_zXJmqaDp6_0t"

// writeConfig writes a worker config with the given extra top-level
// fields (a leading comma each).
func writeConfig(t *testing.T, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "worker.json")
	doc := `{"schema":"cocoon-worker/v1","model":{"id":"m","engine":"openai","upstream_url":"http://127.0.0.1:8000"}` + extra + `}`
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFlags checks what the registry and simulator flags make of a
// config: they create or override its fields, and the result is validated.
func TestFlags(t *testing.T) {
	const section = `,"registry":{"url":"https://r.example","payout":"` + payoutAddr + `","endpoint":"w.example:8443","price":5}`
	for _, tc := range []struct {
		name, extra string
		args        []string
		want        *worker.Registry // nil: no registry section
		seed        string
		err         bool
	}{
		{name: "none", args: nil},
		{name: "sim seed", args: []string{"-sim-seed", "/run/sim.seed"}, seed: "/run/sim.seed"},
		{name: "all flags create the section",
			args: []string{"-registry", "http://10.0.0.1:8080", "-payout", payoutAddr, "-endpoint", "w1.example:443", "-price", "7"},
			want: &worker.Registry{URL: "http://10.0.0.1:8080", Payout: payoutAddr, Endpoint: "w1.example:443", Price: 7}},
		{name: "-registry overrides the url only", extra: section, args: []string{"-registry", "http://10.0.0.1:8080"},
			want: &worker.Registry{URL: "http://10.0.0.1:8080", Payout: payoutAddr, Endpoint: "w.example:8443", Price: 5}},
		{name: "-price overrides the section's", extra: section, args: []string{"-price", "9"},
			want: &worker.Registry{URL: "https://r.example", Payout: payoutAddr, Endpoint: "w.example:8443", Price: 9}},
		{name: "-registry alone lacks a payout", args: []string{"-registry", "http://10.0.0.1:8080"}, err: true},
		{name: "-payout without a registry", args: []string{"-payout", payoutAddr}, err: true},
		{name: "bad url", extra: section, args: []string{"-registry", "ftp://r.example"}, err: true},
		{name: "bad payout", extra: section, args: []string{"-payout", "EQxyz"}, err: true},
		{name: "bad endpoint", extra: section, args: []string{"-endpoint", "w.example"}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := worker.LoadConfig(writeConfig(t, tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			o, err := parseOverrides(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			err = o.apply(cfg)
			if tc.err {
				if !errors.Is(err, worker.ErrConfig) {
					t.Errorf("err = %v, want ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.SimSeedFile != tc.seed {
				t.Errorf("sim_seed_file %q, want %q", cfg.SimSeedFile, tc.seed)
			}
			switch {
			case tc.want == nil && cfg.Registry != nil:
				t.Errorf("registry %+v, want none", cfg.Registry)
			case tc.want != nil && (cfg.Registry == nil || *cfg.Registry != *tc.want):
				t.Errorf("registry %+v, want %+v", cfg.Registry, tc.want)
			}
		})
	}
}

// parseOverrides parses args as run does, for the override flags only.
func parseOverrides(args []string) (*overrides, error) {
	var o overrides
	fl := flag.NewFlagSet("test", flag.ContinueOnError)
	o.define(fl)
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	o.visit(fl)
	return &o, nil
}

// A bad flag stops the worker before it listens.
func TestRunFlagError(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-config", writeConfig(t, ""), "-listen", "127.0.0.1:0", "-payout", payoutAddr}, &out)
	if !errors.Is(err, worker.ErrConfig) || strings.Contains(out.String(), "listening") {
		t.Errorf("err = %v, output %q", err, out.String())
	}
}

// Without a worker config (a health-only image) the registry flags the
// init may pass are ignored, not fatal.
func TestRunHealthOnlyIgnoresRegistry(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"-config", filepath.Join(t.TempDir(), "none.json"), "-listen", "127.0.0.1:0", "-registry", "https://r.example"}, &out)
	if !errors.Is(err, context.Canceled) || !strings.Contains(out.String(), "ignored") || !strings.Contains(out.String(), "listening on") {
		t.Errorf("err = %v, output %q", err, out.String())
	}
}
