package store

import (
	"fmt"
	"strings"
)

// engine is a database engine Open knows.
type engine int

const (
	engineSQLite engine = iota + 1
	enginePostgres
)

// memoryPath is the SQLite path of a private in-memory database.
const memoryPath = ":memory:"

// target is a parsed DSN.
type target struct {
	engine engine
	// path is the SQLite file (or memoryPath); url is the PostgreSQL
	// connection URL as given, parsed later by pgx.
	path string
	url  string
}

// parseDSN splits a DSN into its engine and the part that engine reads.
//
// A SQLite path is taken literally: no query parameters, since the driver
// would read anything after '?' as its own options and a DSN from a config
// file must not be able to change durability settings (or, through
// _pragma, run SQL).
func parseDSN(dsn string) (target, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		p := strings.TrimPrefix(dsn, "sqlite:")
		if p == "" {
			return target{}, fmt.Errorf("DSN %q: want sqlite:PATH, found no path: %w", dsn, ErrDSN)
		}
		if i := strings.IndexAny(p, "?\x00"); i >= 0 {
			return target{}, fmt.Errorf("DSN %q: SQLite path has %q at %d, want a plain path without options or NUL: %w", dsn, p[i], i, ErrDSN)
		}
		return target{engine: engineSQLite, path: p}, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return target{engine: enginePostgres, url: dsn}, nil
	}
	return target{}, fmt.Errorf("DSN %q: want sqlite:PATH, postgres://... or postgresql://...: %w", redact(dsn), ErrDSN)
}

// redact shortens an unrecognised DSN for an error message: one with an
// '@' may be a mistyped URL carrying a password, so only its scheme is shown.
func redact(dsn string) string {
	if strings.Contains(dsn, "@") {
		scheme, _, _ := strings.Cut(dsn, ":")
		if strings.Contains(scheme, "@") {
			return "…"
		}
		return scheme + ":…"
	}
	if len(dsn) > 40 {
		return dsn[:40] + "…"
	}
	return dsn
}

// sqliteName is the name given to the SQLite driver for path. A relative
// path that happens to start with "file:" would be read as a SQLite URI,
// so it is made explicitly relative.
func sqliteName(path string) string {
	if path != memoryPath && strings.HasPrefix(path, "file:") {
		return "./" + path
	}
	return path
}
