package cqrsync_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// checkDatabases are the databases the Check tests run on: the metadata
// comes from each one's catalog.
var checkDatabases = []struct {
	name    string
	dialect sqldialect.Dialect
	open    func(testing.TB, ...string) *sql.DB
	catalog string // a word of the dialect's TableColumns query
	ts, ph  string // the timestamp type for cqrs_updated, the first placeholder
}{
	{"sqlite", sqldialect.SQLite(), cqrsynctesting.OpenSQLite, "pragma_table_info", "DATETIME", "?"},
	{"postgres", sqldialect.Postgres(), cqrsynctesting.OpenPostgres, "pg_catalog", "TIMESTAMP WITH TIME ZONE", "$1"},
	{"mariadb", sqldialect.MySQL(), cqrsynctesting.OpenMySQL, "information_schema", "DATETIME(6)", "?"},
}

// catalogCounter is an Executor that counts the catalog queries run
// through it.
type catalogCounter struct {
	sqldialect.Executor
	word string
	n    *atomic.Int32
}

// countingDriver is a database/sql driver whose callers' transactions
// count their catalog queries.
type countingDriver struct {
	*databasesql.Driver
	word string
	n    *atomic.Int32
}

// UnwrapTx wraps tx's Executor in a catalogCounter.
func (d countingDriver) UnwrapTx(tx *sql.Tx) sqldialect.Executor {
	return catalogCounter{d.Driver.UnwrapTx(tx), d.word, d.n}
}

func (c catalogCounter) Query(ctx context.Context, query string, args ...any) (sqldialect.Rows, error) {
	if strings.Contains(query, c.word) {
		c.n.Add(1)
	}
	return c.Executor.Query(ctx, query, args...)
}

// wantProblems fails unless err wraps ErrSchema and names each of want.
func wantProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, cqrsync.ErrSchema) {
		t.Fatalf("Check = %v, want an error wrapping ErrSchema", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Check's error does not say %q:\n%v", w, err)
		}
	}
}

// TestMasterCheck: Master.Check lists every problem of the outbox and the
// models' tables at once, and once they are fixed it caches the metadata,
// so that a capture reads no catalog inside the caller's transaction.
func TestMasterCheck(t *testing.T) {
	t.Parallel()
	for _, dbx := range checkDatabases {
		t.Run(dbx.name, func(t *testing.T) {
			t.Parallel()
			db := dbx.open(t, `CREATE TABLE acct (id INTEGER PRIMARY KEY, name VARCHAR(50))`, `DROP TABLE cqrs_outbox`)
			var catalog atomic.Int32
			master, err := cqrsync.NewMaster[*sql.Tx](countingDriver{databasesql.New(db, dbx.dialect), dbx.catalog, &catalog}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, mm := range []*cqrsync.MasterModel{
				{CQRSID: "acct", Table: "acct", Fields: []string{"id", "name", "email"}, Types: map[string]cqrsync.ValueType{"kind": cqrsync.TypeString}},
				{CQRSID: "gone", Table: "gone"},
			} {
				if err := master.Register(mm); err != nil {
					t.Fatal(err)
				}
			}
			ex := sqldialect.FromSQL(db)
			wantProblems(t, master.Check(t.Context(), ex),
				"(5 problems)",
				"table cqrs_outbox does not exist: run cqrsync migrate",
				"master model acct: table acct has no column cqrs_revision, cqrs_updated: add them: ALTER TABLE",
				"master model acct: table acct has no column kind (declared in Types)",
				"master model acct: table acct has no column [email]",
				"master model gone: table gone does not exist: create it")
			wantProblems(t, cqrsync.CheckOutbox(t.Context(), master.DB()), "table cqrs_outbox does not exist: run cqrsync migrate")
			if err := master.Check(t.Context(), ex, "nope"); !errors.Is(err, cqrsync.ErrUnknownModel) {
				t.Errorf("Check of an unregistered model = %v, want ErrUnknownModel", err)
			}

			migrateAnd(t, dbx.dialect, db, addColumn(dbx.dialect, "acct", cqrsync.RevisionField), addColumn(dbx.dialect, "acct", cqrsync.UpdatedField),
				`ALTER TABLE acct ADD COLUMN email VARCHAR(50)`, `ALTER TABLE acct ADD COLUMN kind VARCHAR(50)`)
			if err := cqrsync.CheckOutbox(t.Context(), master.DB()); err != nil {
				t.Errorf("CheckOutbox after Migrate: %v", err)
			}
			if err := master.Check(t.Context(), ex, "acct"); err != nil {
				t.Fatalf("Check after the fixes: %v", err)
			}
			tx, err := db.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if err := master.Insert(t.Context(), tx, "acct", map[string]any{"id": 1, "name": "Ada"}); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if n := catalog.Load(); n != 0 {
				t.Errorf("the capture after Check ran %d catalog queries in the caller's transaction, want 0", n)
			}
		})
	}
}

// TestReplicaCheck: Replica.Check lists every problem of the tombstones and
// the models' tables at once, skips handler-only models, and once the
// problems are fixed it caches the metadata, so that applying reads no
// catalog inside the batch's transaction.
func TestReplicaCheck(t *testing.T) {
	t.Parallel()
	for _, dbx := range checkDatabases {
		t.Run(dbx.name, func(t *testing.T) {
			t.Parallel()
			db := dbx.open(t, `CREATE TABLE copy (id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0)`, `DROP TABLE cqrs_tombstones`)
			replica, err := cqrsync.NewReplica(databasesql.New(db, dbx.dialect), nil)
			if err != nil {
				t.Fatal(err)
			}
			handler := func(context.Context, sqldialect.Executor, *cqrsync.ReplicaEvent) error { return nil }
			for _, rm := range []*cqrsync.ReplicaModel{
				{CQRSID: "copy", Table: "copy", Mapping: map[string]string{"id": "id", "name": "title"}, Types: map[string]cqrsync.ValueType{"kind": cqrsync.TypeString}},
				{CQRSID: "gone", Table: "gone"},
				{CQRSID: "events", NoDBOperations: true, OnSave: handler, OnDelete: handler},
			} {
				if err := replica.Register(rm); err != nil {
					t.Fatal(err)
				}
			}
			ex := sqldialect.FromSQL(db)
			wantProblems(t, replica.Check(t.Context(), ex),
				"(5 problems)",
				"table cqrs_tombstones does not exist: run cqrsync migrate",
				"replica model copy: table copy has no column cqrs_updated: add it: ALTER TABLE",
				"replica model copy: table copy has no column kind (declared in Types)",
				"replica model copy: table copy has no column title (mapped from name)",
				"replica model gone: table gone does not exist: create it")

			migrateAnd(t, dbx.dialect, db, addColumn(dbx.dialect, "copy", cqrsync.UpdatedField),
				`ALTER TABLE copy ADD COLUMN title VARCHAR(50)`, `ALTER TABLE copy ADD COLUMN kind VARCHAR(50)`)
			if err := replica.Check(t.Context(), ex, "copy", "events"); err != nil {
				t.Fatalf("Check after the fixes: %v", err)
			}
			var catalog atomic.Int32
			p := &cqrsync.Payload{SignalType: cqrsync.SignalSave, CQRSID: "copy", InstancePK: 1, InstanceData: cqrsync.Object{
				{Key: "id", Value: 1}, {Key: "name", Value: "Ada"}, {Key: cqrsync.RevisionField, Value: 0}, {Key: cqrsync.UpdatedField, Value: "2024-01-01 00:00:00.000000+00:00"},
			}}
			out, err := replica.ApplyBatch(t.Context(), catalogCounter{ex, dbx.catalog, &catalog}, []*cqrsync.Payload{p})
			if err != nil || out[0] != cqrsync.OutcomeCreated {
				t.Fatalf("ApplyBatch = %v, %v; want created", out, err)
			}
			if n := catalog.Load(); n != 0 {
				t.Errorf("applying after Check ran %d catalog queries, want 0", n)
			}
		})
	}
}

// addColumn is the DDL that adds a version column on d.
func addColumn(d sqldialect.Dialect, table, col string) string {
	return d.AddVersionColumnSQL(table, col)
}

// migrateAnd runs cqrsync's migration on db, then the given DDL.
func migrateAnd(t *testing.T, d sqldialect.Dialect, db *sql.DB, ddl ...string) {
	t.Helper()
	if err := d.Migrate(t.Context(), sqldialect.FromSQL(db)); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range ddl {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// TestCheckOutboxColumns: an outbox without the columns the current
// migration creates (made by hand or by an older version) is a schema
// problem that names the columns and what to run.
func TestCheckOutboxColumns(t *testing.T) {
	t.Parallel()
	for _, dbx := range checkDatabases {
		t.Run(dbx.name, func(t *testing.T) {
			t.Parallel()
			db := dbx.open(t, `DROP TABLE cqrs_outbox`, `CREATE TABLE cqrs_outbox (id INTEGER PRIMARY KEY, cqrs_id VARCHAR(50))`)
			wantProblems(t, cqrsync.CheckOutbox(t.Context(), databasesql.New(db, dbx.dialect)),
				"table cqrs_outbox has no column queue, body, created_us, lease_us", "run cqrsync migrate")
		})
	}
}
