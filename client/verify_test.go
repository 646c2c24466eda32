package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/client"
	"github.com/cocoon-appliance/cocoon/client/clienttest"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/measure/policy"
)

// otherStatic is a dev static config of other bytes: another image hash.
const otherStatic = clienttest.DevStatic + "\n"

// tofu is a client that takes the registry's policy (trust on first use),
// lists afresh for every request, and logs nothing.
func tofu(t *testing.T, n *clienttest.Network) *client.Client {
	t.Helper()
	pol, err := client.FetchPolicy(context.Background(), n.Registry)
	if err != nil {
		t.Fatal(err)
	}
	return &client.Client{Registry: n.Registry, Policy: pol, Log: clienttest.Quiet(), ListTTL: -1}
}

func byID(t *testing.T, list []client.Checked, id string) client.Checked {
	t.Helper()
	for _, c := range list {
		if c.Info.ID == id {
			return c
		}
	}
	t.Fatalf("worker %s not listed", id)
	return client.Checked{}
}

func checkNamed(c client.Checked, name string) (client.Check, bool) {
	for _, ch := range c.Checks {
		if ch.Name == name {
			return ch, true
		}
	}
	return client.Check{}, false
}

// TestWorkersVerification: a good worker is VERIFIED with every check
// passed; a worker the registry still lists but whose image hash is no
// longer allowlisted is REFUSED, whatever the registry decided when it
// admitted it; and a local policy decides alone, for good and for bad.
func TestWorkersVerification(t *testing.T) {
	ctx := context.Background()
	n := clienttest.New(t)
	good := n.StartWorker(clienttest.WorkerOptions{Name: "good", Allow: true})
	n.Register(good, "", 1_000_000)
	stale := n.StartWorker(clienttest.WorkerOptions{Name: "stale", Static: otherStatic, Allow: true})
	n.Register(stale, "", 1_000_000)
	if good.ImageHash == stale.ImageHash {
		t.Fatal("the two static configs measure the same image")
	}
	// The registry admitted stale's image, then dropped it: it still
	// lists the worker (with its admission-time evidence).
	n.Disallow(stale.ImageHash)

	c := tofu(t, n)
	list, err := c.Workers(ctx, clienttest.Model)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("%d workers listed, want 2", len(list))
	}
	g := byID(t, list, good.ID)
	if !g.Verified() || g.Err != nil || !g.Simulated() || g.ImageHash() != good.ImageHash {
		t.Fatalf("good worker: verified %v, err %v, simulated %v, image %s", g.Verified(), g.Err, g.Simulated(), g.ImageHash())
	}
	for _, name := range []string{client.CheckCertificate, client.CheckValidity, client.CheckEvidence, client.CheckBinding,
		client.CheckPolicy, client.CheckImage, client.CheckIdentity, client.CheckModel} {
		ch, ok := checkNamed(g, name)
		if !ok || !ch.OK {
			t.Errorf("good worker: check %q = %+v (listed %v)", name, ch, ok)
		}
	}
	if ch, _ := checkNamed(g, client.CheckEvidence); !strings.Contains(ch.Detail, "SIMULATED") {
		t.Errorf("simulated evidence not said: %q", ch.Detail)
	}
	s := byID(t, list, stale.ID)
	if s.Verified() || !errors.Is(s.Err, client.ErrRefused) || !errors.Is(s.Err, client.ErrImage) {
		t.Fatalf("stale worker: verified %v, err %v; want ErrImage", s.Verified(), s.Err)
	}
	if ch, ok := checkNamed(s, client.CheckImage); !ok || ch.OK || !strings.Contains(ch.Detail, stale.ImageHash) {
		t.Errorf("stale worker's image check: %+v", ch)
	}
	if p, err := client.Pick(list, clienttest.Model); err != nil || p.Info.ID != good.ID {
		t.Errorf("Pick = %s, %v; want the good worker", p.Info.ID, err)
	}

	// Local policies: the registry's word plays no part.
	hash := func(s string) [32]byte {
		h, err := client.ParseImageHash(s)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		name      string
		pol       client.Policy
		goodErr   error // nil: verified
		staleErr  error
		goodCheck string // the failing check's name
	}{
		{"dev policy, both images", client.Policy{TDX: &policy.Policy{AllowSimulated: true, ImageHashes: [][32]byte{hash(good.ImageHash), hash(stale.ImageHash)}}, SimRoot: n.SimRoot},
			nil, nil, ""},
		{"dev policy, stale's image only", client.Policy{TDX: &policy.Policy{AllowSimulated: true, ImageHashes: [][32]byte{hash(stale.ImageHash)}}, SimRoot: n.SimRoot},
			client.ErrImage, nil, client.CheckImage},
		{"production policy refuses the simulator", client.Policy{TDX: &policy.Policy{ImageHashes: [][32]byte{hash(good.ImageHash)}}, SimRoot: n.SimRoot},
			policy.ErrSimulated, policy.ErrSimulated, client.CheckPolicy},
		{"no simulator root pinned", client.Policy{TDX: &policy.Policy{AllowSimulated: true, ImageHashes: [][32]byte{hash(good.ImageHash)}}},
			ratls.ErrQuote, ratls.ErrQuote, client.CheckEvidence},
		{"another simulator's root", client.Policy{TDX: &policy.Policy{AllowSimulated: true, ImageHashes: [][32]byte{hash(good.ImageHash)}}, SimRoot: otherRoot(t)},
			ratls.ErrQuote, ratls.ErrQuote, client.CheckEvidence},
		{"no policy at all", client.Policy{}, ratls.ErrQuote, ratls.ErrQuote, client.CheckEvidence},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &client.Client{Registry: n.Registry, Policy: tc.pol, Log: clienttest.Quiet()}
			list, err := c.Workers(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []struct {
				id   string
				want error
			}{{good.ID, tc.goodErr}, {stale.ID, tc.staleErr}} {
				got := byID(t, list, w.id)
				switch {
				case w.want == nil && !got.Verified():
					t.Errorf("worker %.12s refused: %v", w.id, got.Err)
				case w.want != nil && (got.Verified() || !errors.Is(got.Err, w.want) || !errors.Is(got.Err, client.ErrRefused)):
					t.Errorf("worker %.12s: err %v, want %v", w.id, got.Err, w.want)
				}
			}
			if tc.goodCheck != "" {
				if ch, ok := checkNamed(byID(t, list, good.ID), tc.goodCheck); !ok || ch.OK {
					t.Errorf("check %q: %+v, want failed", tc.goodCheck, ch)
				}
			}
		})
	}
}

// TestWorkersModel: asking for a model the worker does not list refuses it
// with ErrModel (the registry filters by model too; the client checks).
func TestWorkersModel(t *testing.T) {
	n := clienttest.New(t)
	w := n.StartWorker(clienttest.WorkerOptions{Allow: true})
	n.Register(w, "", 1_000_000)
	c := tofu(t, n)
	list, err := c.Workers(context.Background(), "")
	if err != nil || len(list) != 1 {
		t.Fatalf("%d workers, %v", len(list), err)
	}
	if _, err := client.Pick(list, "no-such-model"); !errors.Is(err, client.ErrNoWorker) {
		t.Errorf("Pick(no-such-model): %v, want ErrNoWorker", err)
	}
	if got := client.Models(list); len(got) != 1 || got[0] != clienttest.Model {
		t.Errorf("Models = %q", got)
	}
}
