package gormcqrs_test

// The suite runs here on SQLite through github.com/glebarez/sqlite, GORM's
// pure-Go SQLite driver; internal/servertest runs it on PostgreSQL and
// MariaDB, in a binary of its own: the glebarez driver registers the
// database/sql name "sqlite", as the driver of cqrsync's test helpers
// does, and one binary cannot hold both.

import (
	"path/filepath"
	"testing"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"

	"github.com/cqrsync/cqrsync/gormcqrs/internal/gormtest"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// openSQLite opens a new SQLite database file with cqrsync's migration run.
func openSQLite(t testing.TB, cfg *gorm.Config) *gorm.DB {
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := gorm.Open(sqlite.Open("file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqlDB.Close() })
	if err := sqldialect.SQLite().Migrate(t.Context(), sqldialect.FromSQL(sqlDB)); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestEvents(t *testing.T)   { t.Parallel(); gormtest.RunEvents(t, openSQLite) }
func TestRollback(t *testing.T) { t.Parallel(); gormtest.RunRollback(t, openSQLite) }
func TestReplica(t *testing.T)  { t.Parallel(); gormtest.RunReplica(t, openSQLite) }

// BenchmarkGORMCaptureCreate and BenchmarkGORMCaptureUpdate compare GORM
// with the plugin to plain GORM and to database/sql on SQLite (see
// gormtest.BenchCapture; internal/servertest has PostgreSQL and MariaDB).
func BenchmarkGORMCaptureCreate(b *testing.B) { gormtest.BenchCapture(b, openSQLite, false) }
func BenchmarkGORMCaptureUpdate(b *testing.B) { gormtest.BenchCapture(b, openSQLite, true) }

func TestAssociations(t *testing.T) { t.Parallel(); gormtest.RunAssociations(t, openSQLite) }

func TestPreparedStatements(t *testing.T) {
	t.Parallel()
	gormtest.RunPreparedStatements(t, openSQLite)
}

func TestUpdateByKey(t *testing.T) { t.Parallel(); gormtest.RunUpdateByKey(t, openSQLite) }
