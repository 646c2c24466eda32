package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/client"
	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/guest/receipt"
	"github.com/cocoon-appliance/cocoon/guest/worker"
	initconfig "github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/registry/api"
)

// TestE2EDevNoVM is `cocoon dev up --no-vm` asserted step by step, then
// one hostile case per layer: a worker of another image is refused by the
// registry and, when a careless registry lists it anyway, by the client; a
// receipt whose token count was inflated after signing earns nothing.
func TestE2EDevNoVM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	d := &devNet{c: &Context{Stdout: &out, Stderr: &out}, dir: t.TempDir(), noVM: true, start: time.Now(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	defer d.close()
	defer func() {
		if t.Failed() {
			t.Logf("dev up output:\n%s", out.String())
		}
	}()
	steps := []struct {
		name string
		run  func() error
	}{
		{"simulator", d.simulator},
		{"registry", func() error { return d.startRegistry(ctx) }},
		{"payout address", d.payoutAddress},
		{"worker", func() error { return d.startLocalWorker(ctx) }},
		{"registered", func() error { return d.waitRegistered(ctx) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	cl, err := d.client()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.verify(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if len(d.checked) != 1 || !d.checked[0].Verified() || d.checked[0].Info.ID != d.workerID {
		t.Fatalf("client's view: %+v", d.checked)
	}
	if err := d.chat(ctx, cl, "Once upon a time", 16); err != nil {
		t.Fatal(err)
	}
	if d.picked != d.workerID || d.usage.Completion == 0 || d.usage.Completion > 16 {
		t.Fatalf("chat: worker %s usage %+v", d.picked, d.usage)
	}
	if err := d.waitEarned(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.pay(ctx); err != nil {
		t.Fatal(err)
	}
	// The ledger proves the payout: the owner's new account holds exactly
	// what the worker earned, and the registry owes it nothing more.
	if d.paidBal != d.earned.Earned || d.batch.Total != d.earned.Earned {
		t.Fatalf("ledger balance %d, batch total %d, earned %d", d.paidBal, d.batch.Total, d.earned.Earned)
	}
	bal := d.balance(ctx, t, d.workerID)
	if bal.Paid != bal.Earned || bal.Unpaid != 0 || bal.InFlight != 0 {
		t.Fatalf("balance after payout %+v", bal)
	}
	d.summary()
	for _, want := range []string{"VERIFIED by the client", "ledger tx", "earned"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q", want)
		}
	}

	t.Run("registry refuses another image", func(t *testing.T) {
		rogue, rogueHash := d.rogueWorker(ctx, t)
		_, err := d.admin.RegisterTLS(ctx, *rogue.Certificate(), api.Registration{Payout: d.payout.String(), Endpoint: "127.0.0.1:1", Models: []string{devModel}, Price: devPrice})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != api.CodeImage {
			t.Fatalf("registration of image %x: %v, want 403 %s", rogueHash, err, api.CodeImage)
		}
		// A careless (or captured) registry allowlists it: the client,
		// holding its own policy, still refuses it.
		if _, err := d.admin.AllowImage(ctx, hex.EncodeToString(rogueHash[:]), "careless operator"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.admin.RegisterTLS(ctx, *rogue.Certificate(), api.Registration{Payout: d.payout.String(), Endpoint: "127.0.0.1:1", Models: []string{devModel}, Price: devPrice}); err != nil {
			t.Fatalf("registry with the rogue image allowlisted: %v", err)
		}
		checked, err := cl.Workers(ctx, devModel)
		if err != nil {
			t.Fatal(err)
		}
		var seen bool
		for _, ch := range checked {
			if ch.Info.ID == rogue.ID() {
				seen = true
				if ch.Verified() || !errors.Is(ch.Err, client.ErrImage) {
					t.Fatalf("client accepted the rogue image: %v", ch.Err)
				}
			} else if !ch.Verified() {
				t.Fatalf("the honest worker is refused: %v", ch.Err)
			}
		}
		if !seen {
			t.Fatal("the registry did not list the rogue worker")
		}
	})

	t.Run("inflated receipt earns nothing", func(t *testing.T) {
		// A worker that does not send its own receipts, registered by hand,
		// so the test holds its signed receipt.
		w, endpoint, err := d.localWorker(ctx, "tamper", filepath.Join(d.dir, "static.json"), false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.admin.RegisterTLS(ctx, *w.Certificate(), api.Registration{Payout: d.payout.String(), Endpoint: endpoint, Models: []string{devModel}, Price: devPrice}); err != nil {
			t.Fatal(err)
		}
		// Ask this worker itself, over RA-TLS, as the client verified it.
		cl.Refresh()
		checked, err := cl.Workers(ctx, devModel)
		if err != nil {
			t.Fatal(err)
		}
		var target *client.Checked
		for i := range checked {
			if checked[i].Info.ID == w.ID() {
				target = &checked[i]
			}
		}
		if target == nil || !target.Verified() {
			t.Fatalf("tamper worker not verified: %+v", target)
		}
		hc, err := cl.HTTPClient(target)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Post(client.WorkerURL(target, "/v1/chat/completions"), "application/json",
			strings.NewReader(`{"model":"`+devModel+`","messages":[{"role":"user","content":"hello"}],"max_tokens":8}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("chat: %s", resp.Status)
		}
		// The gateway journals the receipt as the handler returns, which
		// may be just after the client read the last byte.
		var pending []receipt.Signed
		for deadline := time.Now().Add(5 * time.Second); len(pending) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			pending = w.Receipts().Pending(10)
		}
		if len(pending) == 0 {
			t.Fatal("no receipt journalled")
		}
		before := d.balance(ctx, t, w.ID())
		tampered := make([]receipt.Signed, len(pending))
		copy(tampered, pending)
		tampered[0].Receipt.Usage.Completion *= 100
		_, err = d.admin.SubmitReceipts(ctx, w.ID(), tampered)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status/100 != 4 {
			t.Fatalf("inflated receipt: %v, want a 4xx", err)
		}
		if after := d.balance(ctx, t, w.ID()); after != before {
			t.Fatalf("balance moved on a refused receipt: %+v -> %+v", before, after)
		}
		// The honest receipt, as signed, is credited once; its replay adds
		// nothing.
		for i := 0; i < 2; i++ {
			if _, err := d.admin.SubmitReceipts(ctx, w.ID(), pending); err != nil {
				t.Fatalf("honest receipt (try %d): %v", i, err)
			}
		}
		after := d.balance(ctx, t, w.ID())
		if after.Earned == before.Earned {
			t.Fatalf("the honest receipt earned nothing: %+v", after)
		}
		once := after.Earned
		d.admin.SubmitReceipts(ctx, w.ID(), pending)
		if d.balance(ctx, t, w.ID()).Earned != once {
			t.Fatal("a replayed receipt was credited twice")
		}
	})
}

// balance is one worker's balance from the admin API (zero if none yet).
func (d *devNet) balance(ctx context.Context, t *testing.T, id string) api.Balance {
	t.Helper()
	bal, err := d.admin.Balances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bal {
		if b.Worker == id {
			return b
		}
	}
	return api.Balance{Worker: id}
}

// rogueWorker runs a worker with the same simulator but another static
// config (another model name): RTMR3, so the image hash, differs.
func (d *devNet) rogueWorker(ctx context.Context, t *testing.T) (*worker.Worker, [32]byte) {
	t.Helper()
	static, err := initconfig.Static{Model: "rogue", Policy: "dev"}.StaticBytes()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d.dir, "rogue-static.json")
	if err := os.WriteFile(path, static, 0o644); err != nil {
		t.Fatal(err)
	}
	w, _, err := d.localWorker(ctx, "rogue", path, false)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.New(sim.Options{Seed: d.simSeed})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range runtime.BootLog(static, nil) {
		s.Extend(e)
	}
	m, err := s.Measurements()
	if err != nil {
		t.Fatal(err)
	}
	return w, m.ImageHash()
}

// TestE2EDevVM is `cocoon dev up` itself: the image built, booted under
// QEMU (TCG, OVMF, swtpm) through the host launcher, its vTPM evidence
// admitted by the registry and verified by the client against the
// predicted PCRs, a chat through the proxy, the receipt credited and paid
// on the emulated ledger. COCOON_E2E_VM=1 (make e2e) runs it.
func TestE2EDevVM(t *testing.T) {
	if os.Getenv("COCOON_E2E_VM") != "1" {
		t.Skip("boots the appliance under QEMU (~30 s after the image build): COCOON_E2E_VM=1, or make e2e")
	}
	img := e2eImage(t)
	dir := t.TempDir()
	code, out, stderr := execute("dev", "up", "--image", img, "--dir", dir, "--max-tokens", "16")
	if code != 0 {
		b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
		t.Fatalf("dev up: exit %d\n%s\n%s\nconsole tail:\n%s", code, out, stderr, strings.Join(tail(strings.Split(string(b), "\n"), 40), "\n"))
	}
	t.Log(out)
	for _, want := range []string{
		"registered: vtpm evidence, admitted by \"vtpm policy\"",
		"locally: VERIFIED",
		"receipt credited",
		"payout batch 1 confirmed on the ledger",
		"mode              appliance under QEMU",
		"VERIFIED by the client",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dev up output lacks %q", want)
		}
	}
}
