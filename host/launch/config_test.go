package launch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const devConfig = `{
  "schema": "cocoon-host/v1", "profile": "dev", "image": "img", "cpus": 1, "memory_mib": 1024,
  "direct_boot": true, "forwards": [{"host": "127.0.0.1:18080", "guest_port": 8080}],
  "restart": {"max": 2},
  "guest": {"static": {"model": "tiny"}, "runtime": {"network": {"mode": "static", "address": "10.0.2.15/24"}}}
}`

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "host.json")
	os.WriteFile(p, []byte(devConfig), 0o644)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.ImageDir() != filepath.Join(dir, "img") || c.Restart.Policy().Backoff.Seconds() != 1 {
		t.Fatalf("%+v", c)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"schema", "cocoon-host/v1", "cocoon-host/v2"},
		{"profile", `"dev"`, `"sev"`},
		{"cpus", `"cpus": 1`, `"cpus": 0`},
		{"memory", `"memory_mib": 1024`, `"memory_mib": 1`},
		{"forward", "127.0.0.1:18080", "localhost"},
		{"guest port", `"guest_port": 8080`, `"guest_port": 0`},
		{"gpus on dev", `"restart"`, `"gpus": ["0000:17:00.0"], "restart"`},
		{"unknown field", `"restart"`, `"turbo": true, "restart"`},
		{"no guest", `"guest": {"static": {"model": "tiny"}, "runtime": {"network": {"mode": "static", "address": "10.0.2.15/24"}}}`, `"vsock_cid": 3`},
		{"bad guest network", `"address": "10.0.2.15/24"`, `"address": "10.0.2.15"`},
		{"unknown guest field", `"model": "tiny"`, `"model": "tiny", "gpus": 8`},
		{"negative restart", `"max": 2`, `"max": -1`},
		{"host channel transport", `"restart"`, `"host_channel": {"transport": "tcp"}, "restart"`},
		{"vsock without cid", `"restart"`, `"host_channel": {"transport": "vsock"}, "restart"`},
		{"short health timeout", `"restart"`, `"host_channel": {"health_timeout_ms": 5000}, "restart"`},
		{"unknown host channel field", `"restart"`, `"host_channel": {"port": 1024}, "restart"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := strings.Replace(devConfig, tc.from, tc.to, 1)
			if s == devConfig {
				t.Fatal("test edit did not apply")
			}
			if _, err := ParseConfig(strings.NewReader(s)); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	tdx := strings.NewReplacer(`"dev"`, `"tdx"`, `"direct_boot": true, "forwards": [{"host": "127.0.0.1:18080", "guest_port": 8080}],`, `"gpus": ["0000:17:00.0"],`).Replace(devConfig)
	if _, err := ParseConfig(strings.NewReader(tdx)); err != nil {
		t.Fatalf("tdx config: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(devConfig)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfig(strings.NewReader(s))
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted invalid config: %v", err)
		}
	})
}

func TestForwardSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port uint16
		ok   bool
	}{
		{"127.0.0.1:18080", "127.0.0.1", 18080, true},
		{"[::1]:8443", "::1", 8443, true},
		{"127.0.0.1:0", "", 0, false},
		{"127.0.0.1:70000", "", 0, false},
		{"localhost:80", "", 0, false},
	} {
		h, p, err := Forward{Host: tc.in}.Split()
		if (err == nil) != tc.ok || h != tc.host || p != tc.port {
			t.Errorf("%s: %q %d %v", tc.in, h, p, err)
		}
	}
}
