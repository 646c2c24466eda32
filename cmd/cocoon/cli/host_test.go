package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
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
