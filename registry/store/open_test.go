package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenBadDSN(t *testing.T) {
	for _, dsn := range []string{
		"",
		"sqlite:",
		"sqlite",
		"/var/lib/registry.db",
		"mysql://user:secret@host/db",
		"sqlite:/tmp/x.db?_pragma=synchronous(OFF)",
		"sqlite:/tmp/x.db\x00",
		"postgres://host:notaport/db",
		"postgresql://%zz",
	} {
		s, err := Open(context.Background(), dsn)
		if !errors.Is(err, ErrDSN) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(%q) = %v, want ErrDSN", dsn, err)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q): error %q shows the password", dsn, err)
		}
	}
}

// TestOpenMemory: sqlite::memory: is a working store of its own.
func TestOpenMemory(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := newWorker(1)
	if err := s.PutWorker(ctx, w); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddReceipts(ctx, []Receipt{rcpt(w.ID, 1, 10)}, at(0)); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Balance(ctx, w.ID); err != nil || b.Earned != 10 {
		t.Errorf("Balance = %+v, %v; want earned 10", b, err)
	}
}

// TestSQLiteSettings: the durability and locking settings are those Open
// promises, on the write and the read connections.
func TestSQLiteSettings(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "file:books.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	for _, c := range []struct {
		pool   string
		pragma string
		want   string
	}{
		{"write", "journal_mode", "wal"},
		{"write", "synchronous", "2"}, // FULL
		{"write", "foreign_keys", "1"},
		{"write", "busy_timeout", "10000"},
		{"write", "query_only", "0"},
		{"read", "journal_mode", "wal"},
		{"read", "synchronous", "2"},
		{"read", "query_only", "1"},
	} {
		db := s.w
		if c.pool == "read" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s pool: PRAGMA %s = %s, want %s", c.pool, c.pragma, got, c.want)
		}
	}
}

func TestRebind(t *testing.T) {
	for _, c := range []struct{ in, sqlite, pg string }{
		{"SELECT 1", "SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = ? AND b = ?", "a = $1 AND b = $2"},
		{"x = '?' AND y = ?", "x = '?' AND y = ?", "x = '?' AND y = $1"},
	} {
		if got := sqliteDialect.q(c.in); got != c.sqlite {
			t.Errorf("sqlite q(%q) = %q, want %q", c.in, got, c.sqlite)
		}
		if got := postgresDialect.q(c.in); got != c.pg {
			t.Errorf("postgres q(%q) = %q, want %q", c.in, got, c.pg)
		}
	}
}
