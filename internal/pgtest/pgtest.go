// Package pgtest starts a throwaway PostgreSQL server for tests, from the
// distribution's packages (Debian: /usr/lib/postgresql/*/bin), and gives
// each test a fresh database on it.
//
// One server serves a whole test binary: initdb is the slow part (about a
// second), CREATE DATABASE is cheap. The server lives in a temporary
// directory, listens only on a unix socket there, runs with fsync=off
// (a crash loses nothing a test needs), and is stopped and its directory
// removed when the test binary exits, even when it is killed: a small
// shell parent waits for the binary's end of a pipe to close.
//
// PostgreSQL refuses to run as root; as root the server runs as the
// "postgres" system user.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
)

// RequireEnv, set to 1, turns "PostgreSQL cannot start" from a skip into
// a failure, for CI machines that are meant to have it.
const RequireEnv = "COCOON_REQUIRE_POSTGRES"

// port only names the socket file (.s.PGSQL.<port>): nothing listens on
// TCP, so servers of concurrent test binaries cannot clash.
const port = 5432

var (
	mu      sync.Mutex
	started *server
	failed  error // why the server could not start; later calls skip at once
	dbs     atomic.Int64
)

type server struct {
	sock  string  // unix socket directory
	admin *sql.DB // to the "postgres" database, for CREATE/DROP DATABASE
	// createOpts make CREATE DATABASE fast: copying the pristine
	// template0's files (STRATEGY FILE_COPY, PostgreSQL 15+) takes a
	// third of the time of logging every page, the default since 15.
	createOpts string
	// stop is the write end of the pipe whose closing stops the server.
	// Held in a package variable so that no finalizer closes it early.
	stop *os.File
}

// Start returns the DSN (postgres://...) of a new, empty database for t,
// dropped at t's cleanup. It skips t when PostgreSQL cannot start (not
// installed, no postgres user), or fails it when COCOON_REQUIRE_POSTGRES=1.
func Start(t testing.TB) (dsn string) {
	t.Helper()
	s, err := shared()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("pgtest: PostgreSQL did not start (%s=1): %v", RequireEnv, err)
		}
		t.Skipf("pgtest: PostgreSQL did not start, skipping (set %s=1 to fail instead): %v", RequireEnv, err)
	}
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+name+s.createOpts); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE: a test that forgot to close its pool must not keep its
		// database alive.
		if _, err := s.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.dsn(name)
}

func (s *server) dsn(db string) string {
	q := url.Values{"host": {s.sock}, "port": {strconv.Itoa(port)}, "sslmode": {"disable"}}
	return "postgres://postgres@/" + db + "?" + q.Encode()
}

// shared starts the server on first use.
func shared() (*server, error) {
	mu.Lock()
	defer mu.Unlock()
	if started == nil && failed == nil {
		started, failed = start()
	}
	return started, failed
}

// bindir finds the newest installed PostgreSQL: Debian keeps each major
// version in /usr/lib/postgresql/N/bin, other systems put it on PATH.
func bindir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && isExec(filepath.Join(filepath.Dir(p), "postgres")) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no initdb and postgres in /usr/lib/postgresql/*/bin or on PATH (Debian: apt-get install postgresql)")
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
