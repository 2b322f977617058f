// Package sqlitetest runs the GORM plugin's suite on SQLite through
// github.com/glebarez/sqlite, GORM's pure-Go SQLite driver. It is a binary
// of its own: that driver registers the database/sql name "sqlite", as the
// driver of cqrsync's other tests does, and one binary cannot hold both.
package sqlitetest

import (
	"path/filepath"
	"testing"

	"github.com/glebarez/sqlite"
	"go.uber.org/goleak"
	"gorm.io/gorm"

	"github.com/cqrsync/cqrsync/gormcqrs/internal/gormtest"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// TestMain fails the package's tests if a goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// open opens a new SQLite database file with cqrsync's migration run.
func open(t *testing.T, cfg *gorm.Config) *gorm.DB {
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := gorm.Open(sqlite.Open("file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"), cfg)
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

func TestEvents(t *testing.T)   { t.Parallel(); gormtest.RunEvents(t, open) }
func TestRollback(t *testing.T) { t.Parallel(); gormtest.RunRollback(t, open) }
func TestReplica(t *testing.T)  { t.Parallel(); gormtest.RunReplica(t, open) }
