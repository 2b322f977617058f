package pgxv5_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/pgxv5"
	"github.com/cqrsync/cqrsync/sqldialect/sqldialecttest"
)

// newPool opens a pgx pool on an empty schema of the real server, closed
// when the test ends (before its schema is dropped).
func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), cqrsynctesting.PostgresDSN(t))
	if err != nil {
		t.Fatalf("pgxpool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// The conformance suite every driver passes, on pgx-native PostgreSQL.
func TestConformance(t *testing.T) {
	t.Parallel()
	sqldialecttest.Run(t, &sqldialecttest.Harness{
		NewDriver:     func(t *testing.T) sqldialect.DB { t.Helper(); return pgxv5.New(newPool(t)) },
		TimestampType: "TIMESTAMPTZ",
		BinaryTypes:   []sqldialecttest.SizedType{{Type: "BYTEA"}},
	})
}
