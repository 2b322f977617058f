// Package cqrsynctesting holds helpers shared by cqrsync's own tests.
package cqrsynctesting

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the tests' embedded database

	"github.com/cqrsync/cqrsync/sqldialect"
)

// VectorsDir returns the directory of the django-cqrs wire vectors,
// testdata/interop/vectors at the repository's root (a copy of
// shared/interop/vectors, so a plain clone runs every test). It fails the
// test when the directory is missing: the interop tests must never pass on
// nothing.
func VectorsDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("cqrsynctesting: go.mod not found above the test's directory")
		}
		dir = parent
	}
	vectors := filepath.Join(dir, "testdata", "interop", "vectors")
	if _, err := os.Stat(filepath.Join(vectors, "INDEX.json")); err != nil {
		tb.Fatalf("cqrsynctesting: wire vectors not found at %s: %v", vectors, err)
	}
	return vectors
}

// OpenSQLite opens a new SQLite database file in a temporary directory,
// runs cqrsync's migration and the given DDL statements, and closes it when
// the test ends.
func OpenSQLite(tb testing.TB, ddl ...string) *sql.DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "test.db")
	// synchronous(NORMAL): tests need no fsync per commit.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if err := sqldialect.SQLite().Migrate(tb.Context(), sqldialect.FromSQL(db)); err != nil {
		tb.Fatal(err)
	}
	for _, stmt := range ddl {
		if _, err := db.ExecContext(tb.Context(), stmt); err != nil {
			tb.Fatalf("%s: %v", stmt, err)
		}
	}
	return db
}

// SplitRounds splits n into at most k rounds of nearly equal size, for
// benchmarks that alternate kinds of work in rounds.
func SplitRounds(n, k int) []int {
	k = max(1, min(k, n))
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

// RowsByID runs query, whose first column is an integer id, and returns
// each row's other columns joined by "/", by id: two tables' rows compare
// with ==.
func RowsByID(tb testing.TB, db *sql.DB, query string) map[int64]string {
	tb.Helper()
	rows, err := db.QueryContext(tb.Context(), query)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[int64]string{}
	var id int64
	rest := make([]sql.NullString, len(cols)-1)
	dest := []any{&id}
	for i := range rest {
		dest = append(dest, &rest[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			tb.Fatal(err)
		}
		parts := make([]string, len(rest))
		for i, r := range rest {
			parts[i] = r.String
		}
		out[id] = strings.Join(parts, "/")
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}
