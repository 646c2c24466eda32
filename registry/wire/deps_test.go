package wire

import (
	"os/exec"
	"strings"
	"testing"
)

// The worker in the confidential VM links this package; the server's store
// and its database drivers nearly doubled its binary when it linked
// registry/api instead.
func TestNoServerDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool:", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, bad := range []string{"/registry/store", "/registry/market", "/registry/api", "jackc/pgx", "modernc.org/sqlite"} {
			if strings.Contains(p, bad) {
				t.Errorf("registry/wire depends on %s, want none of the server's packages or database drivers", p)
			}
		}
	}
}
