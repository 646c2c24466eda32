package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/client"
	"github.com/cocoon-appliance/cocoon/client/clienttest"
	"github.com/cocoon-appliance/cocoon/registry/wire"
)

func TestPolicyFromRegistry(t *testing.T) {
	n := clienttest.New(t)
	ctx := context.Background()
	// Nothing allowlisted yet: the template still parses, and admits no
	// image.
	p, err := client.FetchPolicy(ctx, n.Registry)
	if err != nil {
		t.Fatal(err)
	}
	if p.TDX == nil || !p.TDX.AllowSimulated || len(p.TDX.ImageHashes) != 0 || p.SimRoot == nil || !p.SimRoot.Equal(n.SimRoot) || p.VTPM != nil || !p.AllowsSimulated() {
		t.Fatalf("empty allowlist: %+v", p)
	}
	hash := strings.Repeat("ab", 32)
	n.Allow(hash)
	if p, err = client.FetchPolicy(ctx, n.Registry); err != nil || len(p.TDX.ImageHashes) != 1 || p.TDX.ImageHashes[0][0] != 0xab {
		t.Fatalf("one allowlisted: %+v %v", p.TDX, err)
	}
	// Extra hashes are added once; bad ones are refused.
	if err := p.AllowImageHashes(hash, strings.Repeat("cd", 32)); err != nil || len(p.TDX.ImageHashes) != 2 {
		t.Errorf("AllowImageHashes: %v, %d hashes", err, len(p.TDX.ImageHashes))
	}
	for _, bad := range []string{"", "xyz", strings.Repeat("ab", 31), strings.Repeat("ab", 33)} {
		if err := p.AllowImageHashes(bad); !errors.Is(err, client.ErrPolicy) {
			t.Errorf("AllowImageHashes(%q): %v", bad, err)
		}
	}
	// A bare policy from image hashes alone: real TDX only.
	var bare client.Policy
	if err := bare.AllowImageHashes(hash); err != nil || bare.TDX == nil || bare.TDX.AllowSimulated || bare.AllowsSimulated() {
		t.Errorf("bare: %+v %v", bare.TDX, err)
	}

	for _, tc := range []struct {
		name string
		info wire.PolicyInfo
	}{
		{"bad tdx policy", wire.PolicyInfo{TDXPolicy: json.RawMessage(`{"schema":"nope"}`)}},
		{"bad vtpm policy", wire.PolicyInfo{VTPMPolicy: json.RawMessage(`{"schema":"cocoon-vtpm-policy/v1"}`)}},
		{"bad sim root", wire.PolicyInfo{AllowSimulated: true, SimRoot: []byte("not DER")}},
		{"bad image hash", wire.PolicyInfo{TDXPolicy: json.RawMessage(`{"schema":"cocoon-policy/v1"}`), ImageHashes: []string{"zz"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := client.PolicyFromRegistry(&tc.info); !errors.Is(err, client.ErrPolicy) {
				t.Errorf("err %v, want ErrPolicy", err)
			}
		})
	}
	// Not allowing simulation drops the root.
	if p, err := client.PolicyFromRegistry(&wire.PolicyInfo{SimRoot: n.SimRoot.Raw}); err != nil || p.SimRoot != nil || p.TDX != nil {
		t.Errorf("no allow_simulated: %+v %v", p, err)
	}
}

func TestLoadPolicy(t *testing.T) {
	n := clienttest.New(t)
	dir := t.TempDir()
	tdx := filepath.Join(dir, "policy.json")
	os.WriteFile(tdx, []byte(`{"schema":"cocoon-policy/v1","allow_simulated":true,"image_hashes":["`+strings.Repeat("ab", 32)+`"]}`), 0o644)
	root := n.WriteSimRoot(dir)
	p, err := client.LoadPolicy(client.PolicyFiles{TDX: tdx, SimRoot: root})
	if err != nil || !p.AllowsSimulated() || !p.SimRoot.Equal(n.SimRoot) || len(p.TDX.ImageHashes) != 1 {
		t.Fatalf("%+v %v", p, err)
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("junk"), 0o644)
	for _, f := range []client.PolicyFiles{
		{TDX: junk}, {VTPM: junk}, {SimRoot: junk}, {TDX: filepath.Join(dir, "missing")}, {SimRoot: tdx},
	} {
		if _, err := client.LoadPolicy(f); !errors.Is(err, client.ErrPolicy) {
			t.Errorf("LoadPolicy(%+v): %v, want ErrPolicy", f, err)
		}
	}
}
