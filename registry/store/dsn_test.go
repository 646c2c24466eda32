package store

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDSN(t *testing.T) {
	for _, c := range []struct {
		dsn  string
		want target
		err  bool
	}{
		{"sqlite:/var/lib/cocoon/registry.db", target{engine: engineSQLite, path: "/var/lib/cocoon/registry.db"}, false},
		{"sqlite:registry.db", target{engine: engineSQLite, path: "registry.db"}, false},
		{"sqlite::memory:", target{engine: engineSQLite, path: ":memory:"}, false},
		{"sqlite:/tmp/a#b.db", target{engine: engineSQLite, path: "/tmp/a#b.db"}, false},
		{"postgres://u:p@db:5432/books?sslmode=verify-full", target{engine: enginePostgres, url: "postgres://u:p@db:5432/books?sslmode=verify-full"}, false},
		{"postgresql:///books?host=/run/postgresql", target{engine: enginePostgres, url: "postgresql:///books?host=/run/postgresql"}, false},
		{"sqlite:", target{}, true},
		{"sqlite:x.db?mode=ro", target{}, true},
		{"SQLITE:x.db", target{}, true},
		{"postgres:/db", target{}, true},
		{"host=db user=u", target{}, true},
	} {
		got, err := parseDSN(c.dsn)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("parseDSN(%q) = %+v, %v; want %+v, error %v", c.dsn, got, err, c.want, c.err)
		}
		if err != nil && !errors.Is(err, ErrDSN) {
			t.Errorf("parseDSN(%q) = %v, want ErrDSN", c.dsn, err)
		}
	}
}

func TestSQLiteName(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b.db":       "/a/b.db",
		"b.db":          "b.db",
		":memory:":      ":memory:",
		"file:b.db":     "./file:b.db",
		"/x/file:b.db":  "/x/file:b.db",
		"file::memory:": "./file::memory:",
	} {
		if got := sqliteName(in); got != want {
			t.Errorf("sqliteName(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseDSN: any input is either refused with ErrDSN or split into an
// engine and a part that rebuilds the input; a SQLite path never reaches
// the driver with options or as a URI; a refused DSN with an '@' never
// shows what comes before it.
func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{"sqlite:/a.db", "sqlite::memory:", "sqlite:file:x?mode=memory", "postgres://u:pw@h/db",
		"postgresql://h", "mysql://root:hunter2@h/db", "", "sqlite:", "a@b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		tg, err := parseDSN(dsn)
		if err != nil {
			if !errors.Is(err, ErrDSN) {
				t.Fatalf("parseDSN(%q) = %v, want ErrDSN", dsn, err)
			}
			if tg != (target{}) {
				t.Fatalf("parseDSN(%q) failed but returned %+v", dsn, tg)
			}
			if !strings.HasPrefix(dsn, "sqlite:") && strings.Contains(err.Error(), "@") {
				t.Fatalf("error %q shows the part of %q with an '@'", err, dsn)
			}
			return
		}
		switch tg.engine {
		case engineSQLite:
			if "sqlite:"+tg.path != dsn || tg.path == "" || strings.ContainsAny(tg.path, "?\x00") {
				t.Fatalf("parseDSN(%q) = %+v", dsn, tg)
			}
			if n := sqliteName(tg.path); strings.HasPrefix(n, "file:") || strings.ContainsAny(n, "?") {
				t.Fatalf("sqliteName(%q) = %q: a URI or with options", tg.path, n)
			}
		case enginePostgres:
			if tg.url != dsn || !(strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")) {
				t.Fatalf("parseDSN(%q) = %+v", dsn, tg)
			}
		default:
			t.Fatalf("parseDSN(%q) = %+v: no engine", dsn, tg)
		}
	})
}
