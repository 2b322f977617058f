package sqldialect_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/sqldialecttest"
)

func TestSQLite(t *testing.T) {
	t.Parallel()
	sqldialecttest.Run(t, &sqldialecttest.Harness{
		Dialect: sqldialect.SQLite(),
		NewDB: func(t *testing.T) *sql.DB {
			t.Helper()
			db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "test.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		},
		TimestampType: "DATETIME",
		BinaryTypes:   []sqldialecttest.SizedType{{Type: "BLOB"}},
	})
}
