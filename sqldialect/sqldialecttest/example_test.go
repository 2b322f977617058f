package sqldialecttest_test

import (
	"database/sql"
	"testing"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/sqldialect/sqldialecttest"
)

// A driver's test runs the whole suite against its real database, with a
// fresh database or schema per test. (Not run: a suite runs inside a test.)
func ExampleRun() {
	openEmptyDatabase := func(t *testing.T) *sql.DB { panic("open an isolated database, dropped by t.Cleanup") }
	_ = func(t *testing.T) { // func TestConformance(t *testing.T)
		t.Parallel()
		sqldialecttest.Run(t, &sqldialecttest.Harness{
			NewDriver: func(t *testing.T) sqldialect.DB {
				return databasesql.New(openEmptyDatabase(t), sqldialect.Postgres())
			},
			TimestampType: "TIMESTAMPTZ",
		})
	}
}
