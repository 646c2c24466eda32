package store

import (
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// dialect is everything that differs between the engines. Queries are
// written once, in the common subset of SQLite and PostgreSQL, with '?'
// placeholders; the dialect rewrites them.
type dialect struct {
	name string
	// ddl fills the type placeholders of the migrations.
	ddl *strings.Replacer
	// forUpdate is appended to a SELECT that reads a row the transaction
	// then changes. SQLite needs none: one writer at a time.
	forUpdate string
	// readTx are the options of multi-statement reads that must see one
	// snapshot.
	readTx *sql.TxOptions
	// numbered: placeholders are $1, $2, ... instead of ?.
	numbered bool
	// lockMigrations, when not "", is run first in the migration
	// transaction so that registries starting at once migrate one by one.
	lockMigrations string
}

var sqliteDialect = dialect{
	name: "sqlite",
	ddl: strings.NewReplacer(
		// Only "INTEGER PRIMARY KEY" is an alias of the rowid, which
		// SQLite then assigns.
		"{{serial}}", "INTEGER PRIMARY KEY",
		"{{blob}}", "BLOB",
	),
	readTx: &sql.TxOptions{ReadOnly: true},
}

var postgresDialect = dialect{
	name: "postgres",
	ddl: strings.NewReplacer(
		"{{serial}}", "BIGSERIAL PRIMARY KEY",
		"{{blob}}", "BYTEA",
	),
	forUpdate: " FOR UPDATE",
	readTx:    &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead},
	numbered:  true,
	// Any constant works; this one is "cocoon" in ASCII.
	lockMigrations: "SELECT pg_advisory_xact_lock(108326641003374)",
}

// q rewrites query's '?' placeholders for the dialect. A '?' inside a
// quoted literal is left alone.
func (d *dialect) q(query string) string {
	if !d.numbered {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n, quoted := 0, false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// retryable says whether a failed write transaction may be run again:
// PostgreSQL aborts one side of a deadlock or a serialization conflict
// and expects the client to retry. SQLite, one writer at a time, has
// neither.
func (d *dialect) retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Code == "40001" || pe.Code == "40P01" // serialization_failure, deadlock_detected
}
