package cqrsync_test

import (
	"bytes"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// contractMaster is a PostgreSQL master of contract_order, which publishes
// every column but internal's... and internal too (no Fields), and of a
// second model no replica here reads.
func contractMaster(t *testing.T) (*sql.DB, *cqrsync.Master[*sql.Tx]) {
	t.Helper()
	db := cqrsynctesting.OpenPostgres(t, `CREATE TABLE contract_order (
		id BIGINT PRIMARY KEY, code TEXT NOT NULL, note VARCHAR(50), total NUMERIC(14,4) NOT NULL,
		placed TIMESTAMPTZ NOT NULL, weight DOUBLE PRECISION, internal TEXT, qty BIGINT,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`,
		`CREATE TABLE contract_other (id BIGINT PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`)
	m, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.Postgres()), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, mm := range []*cqrsync.MasterModel{{CQRSID: "contract_order", Table: "contract_order"}, {CQRSID: "contract_other", Table: "contract_other"}} {
		if err := m.Register(mm); err != nil {
			t.Fatal(err)
		}
	}
	return db, m
}

// TestContractCheck: a MariaDB replica whose mapping and column types do
// not match what the PostgreSQL master publishes is told so, field by
// field, by the schema document the master writes — and the first event
// does fail there as the check said; a matching replica gets no problem
// and applies the event.
func TestContractCheck(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	masterDB, master := contractMaster(t)
	var doc bytes.Buffer
	s, err := master.Schema(ctx, sqldialect.FromSQL(masterDB))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteJSON(&doc); err != nil {
		t.Fatal(err)
	}
	schema, err := cqrsync.ReadSchema(&doc)
	if err != nil {
		t.Fatalf("ReadSchema of %s: %v", doc.String(), err)
	}

	replicaDB := cqrsynctesting.OpenMySQL(t, `CREATE TABLE order_bad (
		order_id BIGINT PRIMARY KEY, code VARCHAR(10) NOT NULL, note VARCHAR(100) NULL, total DECIMAL(10,2) NOT NULL,
		placed INT NOT NULL, qty INT, extra VARCHAR(5) NOT NULL, ghost_col INT NULL,
		cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME(6) NOT NULL)`,
		`CREATE TABLE order_good (
		order_id BIGINT PRIMARY KEY, code TEXT NOT NULL, note VARCHAR(50) NULL, total DECIMAL(18,4) NOT NULL,
		placed DATETIME(6) NOT NULL, qty BIGINT, weight DOUBLE,
		cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME(6) NOT NULL)`)
	newReplica := func(rm *cqrsync.ReplicaModel) *cqrsync.Replica {
		r, err := cqrsync.NewReplica(databasesql.New(replicaDB, sqldialect.MySQL()), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Register(rm); err != nil {
			t.Fatal(err)
		}
		return r
	}
	bad := newReplica(&cqrsync.ReplicaModel{CQRSID: "contract_order", Table: "order_bad", PK: "order_id", Mapping: map[string]string{
		"id": "order_id", "code": "code", "note": "note", "total": "total", "placed": "placed", "qty": "qty",
		"ghost": "ghost_col", "weight": "wt",
	}})
	rep, err := bad.CheckContract(ctx, sqldialect.FromSQL(replicaDB), schema)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range rep.Findings {
		got = append(got, string(f.Kind)+" "+f.CQRSID+"."+f.Field+">"+f.Column)
	}
	want := []string{
		"unread contract_order.internal>",        // not mapped
		"refused contract_order.code>code",       // text of any length into VARCHAR(10)
		"refused contract_order.total>total",     // 10 integer digits into 8
		"cut contract_order.total>total",         // 4 places into 2
		"refused contract_order.placed>placed",   // a datetime into an INT
		"dropped contract_order.weight>wt",       // the mapping names a column the table lacks
		"refused contract_order.qty>qty",         // 64-bit into 32-bit
		"dropped contract_order.ghost>ghost_col", // the master sends no ghost
		"refused contract_order.>extra",          // NOT NULL, nothing fills it
		"unread contract_other.>",                // a model this replica does not read
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("findings:\n%s\nwant:\n%s\nreport:\n%v", strings.Join(got, "\n"), strings.Join(want, "\n"), rep.Findings)
	}
	if err := rep.Err(); !errors.Is(err, cqrsync.ErrContract) || !strings.Contains(err.Error(), "VARCHAR(10)") && !strings.Contains(err.Error(), "varchar(10)") {
		t.Fatalf("Err() = %v", err)
	}

	// The check was right: the master's first event fails on that replica.
	if _, err := masterDB.ExecContext(ctx, `INSERT INTO contract_order (id, code, note, total, placed, weight, internal, qty)
		VALUES (1, 'a code longer than ten', 'n', 1234567890.1234, now(), 1.5, 'x', 5)`); err != nil {
		t.Fatal(err)
	}
	var body []byte
	err = cqrsync.RunTx(ctx, masterDB, master, func(tx *sql.Tx) error {
		if err := master.Create(ctx, tx, "contract_order", int64(1)); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT body FROM cqrs_outbox ORDER BY id DESC LIMIT 1").Scan(&body)
	})
	if err != nil {
		t.Fatal(err)
	}
	apply := func(r *cqrsync.Replica) error {
		p, err := cqrsync.DecodePayload(body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return sqldialect.RunTx(ctx, replicaDB, func(ex sqldialect.Executor) error {
			_, err := r.Apply(ctx, ex, p)
			return err
		})
	}
	if err := apply(bad); err == nil {
		t.Fatal("the event applied on the replica the check refused")
	}

	// A replica that matches: no problem, and the event applies.
	good := newReplica(&cqrsync.ReplicaModel{CQRSID: "contract_order", Table: "order_good", PK: "order_id", Mapping: map[string]string{
		"id": "order_id", "code": "code", "note": "note", "total": "total", "placed": "placed", "qty": "qty", "weight": "weight",
	}})
	rep, err = good.CheckContract(ctx, sqldialect.FromSQL(replicaDB), schema)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatalf("a matching replica: %v", err)
	}
	if err := apply(good); err != nil {
		t.Fatalf("the event on the matching replica: %v", err)
	}
	var total string
	if err := replicaDB.QueryRowContext(ctx, "SELECT total FROM order_good WHERE order_id = 1").Scan(&total); err != nil || total != "1234567890.1234" {
		t.Fatalf("order_good total %q, %v", total, err)
	}
}

// TestReadSchemaRefuses: a document of another version, or with a type
// this cqrsync does not know, is refused with what to do.
func TestReadSchemaRefuses(t *testing.T) {
	t.Parallel()
	for doc, want := range map[string]string{
		`{"version": 2, "dialect": "postgres", "models": []}`:                                                                          "version 2",
		`{"version": 1, "dialect": "postgres", "models": [{"cqrs_id": "a", "pk": "id", "fields": [{"name": "id", "type": "money"}]}]}`: "field id",
		`{"version": 1, "colour": "red"}`:                                                                                              "unknown field",
	} {
		if _, err := cqrsync.ReadSchema(strings.NewReader(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadSchema(%s) = %v, want an error naming %q", doc, err, want)
		}
	}
}
