package cqrsync_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/pgxv5"
)

// TestMasterOnPgxTx captures changes in pgx transactions: the same master,
// generic over the transaction type.
func TestMasterOnPgxTx(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, cqrsynctesting.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	drv := pgxv5.New(pool)
	ex := drv.Pool()
	if err := sqldialect.Postgres().Migrate(ctx, ex); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE account (id BIGINT PRIMARY KEY, name TEXT NOT NULL, balance NUMERIC(12,2) NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`); err != nil {
		t.Fatal(err)
	}
	master, err := cqrsync.NewMaster(drv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account"}); err != nil {
		t.Fatal(err)
	}
	inTx := func(commit bool, fn func(tx pgx.Tx) error) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := fn(tx); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	create := func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO account (id, name, balance) VALUES (1, 'Ada', 10.50)`); err != nil {
			return err
		}
		return master.Create(ctx, tx, "account", int64(1))
	}
	inTx(false, create) // rolled back: nothing
	inTx(true, create)
	inTx(true, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE account SET balance = 11 WHERE id = 1`); err != nil {
			return err
		}
		return master.Update(ctx, tx, "account", int64(1))
	})
	inTx(true, func(tx pgx.Tx) error { return master.Delete(ctx, tx, "account", int64(1)) })

	rows, err := pool.Query(ctx, `SELECT body FROM cqrs_outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	bodies, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`"signal_type":"SAVE","cqrs_id":"account","instance_data":{"id":1,"name":"Ada","balance":10.5,"cqrs_revision":0,`,
		`"instance_data":{"id":1,"name":"Ada","balance":11.0,"cqrs_revision":1,`,
		`"signal_type":"DELETE","cqrs_id":"account","instance_data":{"id":1,"cqrs_revision":2,`,
	}
	if len(bodies) != len(want) {
		t.Fatalf("outbox has %d events, want %d (the rolled-back create must leave none)", len(bodies), len(want))
	}
	for i, w := range want {
		if !strings.Contains(string(bodies[i]), w) {
			t.Errorf("event %d = %s, want it to contain %s", i, bodies[i], w)
		}
	}
}
