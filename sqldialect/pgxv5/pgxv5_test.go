package pgxv5_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/cqrsync/cqrsync"
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

// A connection lost in the middle of a pipelined transaction: the next
// statement fails with an error the consumer retries, nothing of the
// transaction is kept, and the pool does not hand the dead connection out
// again.
func TestRunTxConnectionLost(t *testing.T) {
	t.Parallel()
	proxy, dsn := cqrsynctesting.ProxiedPostgres(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // the failed transaction's connection would be the next one's
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	drv := pgxv5.New(pool)
	ctx := t.Context()
	if _, err := drv.Pool().Exec(ctx, "CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	insert := "INSERT INTO t (id, v) VALUES ($1, 'x')"
	err = drv.RunTx(ctx, func(ctx context.Context, ex sqldialect.Executor) error {
		if _, err := ex.Exec(ctx, insert, 1); err != nil { // BEGIN and the insert went out
			return err
		}
		ex.(sqldialect.Deferrer).Defer(ctx, insert, 2)
		if n := proxy.Drop(); n == 0 {
			t.Error("the proxy had no connection to drop")
		}
		_, err := ex.Exec(ctx, insert, 3)
		return err
	})
	if err == nil {
		t.Fatal("RunTx succeeded over a dropped connection")
	}
	t.Logf("over a dropped connection: %v", err)
	if !cqrsync.IsRetryable(err) {
		t.Errorf("RunTx over a dropped connection = %v: not retryable, so the consumer would dead-letter the batch", err)
	}
	err = drv.RunTx(ctx, func(ctx context.Context, ex sqldialect.Executor) error {
		_, err := ex.Exec(ctx, insert, 4)
		return err
	})
	if err != nil {
		t.Fatalf("RunTx after the drop: %v (the pool handed out the dead connection?)", err)
	}
	rows, err := pool.Query(ctx, "SELECT id FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != 4 {
		t.Fatalf("rows %v, want only the second transaction's [4]", ids)
	}
}

// The same suite on a *sql.DB opened with pgx's database/sql driver,
// pipelined through StdlibDriver.
func TestConformanceStdlib(t *testing.T) {
	t.Parallel()
	sqldialecttest.Run(t, &sqldialecttest.Harness{
		NewDriver: func(t *testing.T) sqldialect.DB {
			t.Helper()
			db, err := sql.Open("pgx", cqrsynctesting.PostgresDSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return pgxv5.NewStdlib(db)
		},
		TimestampType: "TIMESTAMPTZ",
		BinaryTypes:   []sqldialecttest.SizedType{{Type: "BYTEA"}},
	})
}

// StdlibDriver refuses, with what to do, a *sql.DB of another driver.
func TestStdlibDriverRefusesOtherDrivers(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t)
	err := pgxv5.NewStdlib(db).RunTx(t.Context(), func(context.Context, sqldialect.Executor) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "not pgx's") {
		t.Fatalf("RunTx on SQLite = %v, want a refusal naming the driver", err)
	}
}
