package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers driver "sqlite"
)

// busyTimeoutMS is how long a SQLite connection waits for another
// process's lock before failing: within one process writes are already
// queued on the single write connection.
const busyTimeoutMS = 10000

// Open opens the books named by dsn and brings their schema up to date:
//
//	sqlite:PATH          a SQLite file, created when missing
//	sqlite::memory:      a private in-memory SQLite database (tests)
//	postgres://...       PostgreSQL (also postgresql://...), as pgx reads it
//
// Anything else is ErrDSN. The migrations run in one transaction before
// Open returns, so a Store is never used on an old schema.
func Open(ctx context.Context, dsn string) (Store, error) {
	t, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	var s *sqlStore
	switch t.engine {
	case engineSQLite:
		s, err = openSQLite(ctx, t.path)
	default:
		s, err = openPostgres(ctx, t.url)
	}
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, s.w, s.d); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openSQLite opens two pools on one file: a single write connection, so
// that writers queue in Go instead of failing with SQLITE_BUSY, whose
// transactions start with BEGIN IMMEDIATE (a deferred transaction that
// reads and then writes can deadlock against another writer); and
// read-only connections that WAL lets run beside the writer.
//
// synchronous=FULL in WAL mode syncs the log at every commit: nothing
// acknowledged is lost on power loss, which NORMAL does not promise.
func openSQLite(ctx context.Context, path string) (*sqlStore, error) {
	name := sqliteName(path)
	common := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1&_synchronous=FULL", busyTimeoutMS)
	if path == memoryPath {
		// Every connection to ":memory:" is a database of its own: one
		// connection serves reads and writes alike.
		w, err := sqliteDB(ctx, name+"?"+common+"&_txlock=immediate", 1)
		if err != nil {
			return nil, err
		}
		return &sqlStore{d: &sqliteDialect, w: w, r: w}, nil
	}
	w, err := sqliteDB(ctx, name+"?"+common+"&_journal_mode=WAL&_txlock=immediate", 1)
	if err != nil {
		return nil, err
	}
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		w.Close()
		return nil, fmt.Errorf("sqlite %s: journal_mode = %q (%v), want wal", path, mode, err)
	}
	r, err := sqliteDB(ctx, name+"?"+common+"&_query_only=1", 4)
	if err != nil {
		w.Close()
		return nil, err
	}
	return &sqlStore{d: &sqliteDialect, w: w, r: r}, nil
}

func sqliteDB(ctx context.Context, name string, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	// An idle in-memory connection closed by the pool would take the
	// database with it; file connections are cheap to keep.
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return db, nil
}

// openPostgres opens a pgx pool. Write transactions run at READ COMMITTED
// and take row locks (SELECT ... FOR UPDATE, or UPDATE itself) on what they
// change, in a fixed order, so several registries can share the database;
// the rare deadlock or serialization failure is retried (sqlStore.write).
func openPostgres(ctx context.Context, url string) (*sqlStore, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDSN, err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres %s@%s/%s: %w", cfg.User, cfg.Host, cfg.Database, err)
	}
	return &sqlStore{d: &postgresDialect, w: db, r: db}, nil
}
