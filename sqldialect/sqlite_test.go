package sqldialect_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/sqldialect/sqldialecttest"
)

func TestSQLite(t *testing.T) {
	t.Parallel()
	sqldialecttest.Run(t, &sqldialecttest.Harness{
		NewDriver: func(t *testing.T) sqldialect.DB {
			t.Helper()
			db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "test.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return databasesql.New(db, sqldialect.SQLite())
		},
		TimestampType: "DATETIME",
		BinaryTypes:   []sqldialecttest.SizedType{{Type: "BLOB"}},
	})
}
