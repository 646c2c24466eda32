package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/hostlink"
	"github.com/cocoon-appliance/cocoon/host/launch"
)

// TestStatusWriter: console lines do not each rewrite the status file; a
// state change does.
func TestStatusWriter(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status.json")
	w := &statusWriter{path: p, s: status{State: "booting"}}
	w.write()
	before, _ := os.Stat(p)
	same := func(*status) bool { return false }
	for i := 0; i < 100; i++ {
		w.note("kernel line", same)
	}
	after, _ := os.Stat(p)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("status file rewritten for ordinary console lines")
	}
	w.note("cocoon-init: worker started (pid 7)", func(s *status) bool { s.State = "running"; return true })
	var got status
	b, _ := os.ReadFile(p)
	if err := json.Unmarshal(b, &got); err != nil || got.State != "running" || got.LastLine != "cocoon-init: worker started (pid 7)" {
		t.Fatalf("status %+v %v", got, err)
	}
}

func TestGuestLine(t *testing.T) {
	hb := time.Date(2026, 11, 2, 10, 0, 5, 0, time.UTC)
	for _, tc := range []struct {
		g    *guestHealth
		want string
	}{
		{nil, "no health report this boot"},
		{&guestHealth{State: "ready", Heartbeat: hb}, "ready (last heartbeat 2026-11-02T10:00:05Z, 3s ago)"},
		{&guestHealth{State: "failed", Detail: "no GPU\x1b[2J", Heartbeat: hb}, `failed: no GPU\x1b[2J (last heartbeat 2026-11-02T10:00:05Z, 3s ago)`},
	} {
		if got := guestLine(tc.g, hb.Add(3200*time.Millisecond)); got != tc.want {
			t.Errorf("guestLine = %q, want %q", got, tc.want)
		}
	}
}

// TestStatusHealth: the launcher records the guest's health; `cocoon host
// status` shows it.
func TestStatusHealth(t *testing.T) {
	dir := t.TempDir()
	w := &statusWriter{path: filepath.Join(dir, "status.json"), s: status{State: "running", Since: time.Now()}}
	w.health(launch.Health{State: hostlink.Ready, Detail: "model loaded", Received: time.Now()})
	code, out, stderr := execute("host", "status", "--state", dir)
	if code != 0 || !strings.Contains(out, "guest      ready: model loaded (last heartbeat ") {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	var got status
	b, _ := os.ReadFile(w.path)
	if err := json.Unmarshal(b, &got); err != nil || got.Guest == nil || got.Guest.State != "ready" {
		t.Fatalf("status %s: %v", b, err)
	}
}
