package pgxexec_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/pgxexec"
)

// roundTrips counts what a pgx connection sends: each batch and each
// single query is one round trip to the server.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// pipelineConn opens one pgx connection on a schema of its own with a table
// t (id bigint primary key, v text), counting its round trips.
func pipelineConn(t *testing.T) (*pgx.Conn, *roundTrips) {
	t.Helper()
	cfg := newSchema(t)
	rt := &roundTrips{}
	cfg.Tracer = rt
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(t.Context(), "CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	// Prepare the statements the tests use, so that pgx's statement cache
	// adds no round trips of its own to the counts.
	for _, q := range []string{"BEGIN", "COMMIT", "INSERT INTO t VALUES ($1, $2)", "SELECT id, v FROM t ORDER BY id", "SELECT count(*) FROM t"} {
		if _, err := conn.Prepare(t.Context(), q, q); err != nil {
			t.Fatal(err)
		}
	}
	rt.n.Store(0)
	return conn, rt
}

func count(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Deferred statements and BEGIN travel with the next statement, and the
// rest with COMMIT: five statements, two round trips.
func TestPipelineTxRoundTrips(t *testing.T) {
	conn, rt := pipelineConn(t)
	ctx := t.Context()
	tx := pgxexec.BeginPipeline(conn)
	tx.Defer(ctx, "INSERT INTO t VALUES ($1, $2)", 1, "a")
	rows, err := tx.Query(ctx, "SELECT id, v FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a" {
		t.Fatalf("the query saw %v, want the deferred insert's row [a]", got)
	}
	tx.Defer(ctx, "INSERT INTO t VALUES ($1, $2)", 2, "b")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load(); n != 2 {
		t.Fatalf("%d round trips, want 2 (BEGIN+insert+select, insert+COMMIT)", n)
	}
	if n := count(t, conn); n != 2 {
		t.Fatalf("%d rows committed, want 2", n)
	}
	if s := conn.PgConn().TxStatus(); s != 'I' {
		t.Fatalf("connection left in transaction status %q", s)
	}
}

// A deferred statement's error comes back from the call that sent it; the
// transaction is aborted, so nothing it sent is kept, and a COMMIT the
// caller sends anyway reports the rollback.
func TestPipelineTxDeferredError(t *testing.T) {
	conn, _ := pipelineConn(t)
	ctx := t.Context()
	tx := pgxexec.BeginPipeline(conn)
	tx.Defer(ctx, "INSERT INTO t VALUES ($1, $2)", 1, "a")
	tx.Defer(ctx, "INSERT INTO t VALUES ($1, $2)", 1, "duplicate")
	_, err := tx.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", 2, "b")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("Exec after a failing deferred insert: %v, want the unique violation", err)
	}
	if !strings.Contains(err.Error(), "INSERT INTO t") {
		t.Errorf("error %q does not name the deferred statement", err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Fatalf("Commit of the aborted transaction: %v, want pgx.ErrTxCommitRollback", err)
	}
	if n := count(t, conn); n != 0 {
		t.Fatalf("%d rows kept from an aborted transaction", n)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("Rollback after Commit: %v", err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); !errors.Is(err, pgxexec.ErrTxClosed) {
		t.Fatalf("Exec after Commit: %v, want ErrTxClosed", err)
	}
}

// Rollback drops what was deferred and rolls back what was sent; a
// transaction that sent nothing costs no round trip either way.
func TestPipelineTxRollback(t *testing.T) {
	conn, rt := pipelineConn(t)
	ctx := t.Context()
	tx := pgxexec.BeginPipeline(conn)
	tx.Defer(ctx, "INSERT INTO t VALUES ($1, $2)", 1, "never sent")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pgxexec.BeginPipeline(conn).Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load(); n != 0 {
		t.Fatalf("%d round trips for transactions that sent nothing", n)
	}
	tx = pgxexec.BeginPipeline(conn)
	if _, err := tx.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", 1, "sent"); err != nil {
		t.Fatal(err)
	}
	tx.Defer(ctx, "INSERT INTO t VALUES ($1, $2)", 2, "deferred")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn); n != 0 {
		t.Fatalf("%d rows kept after Rollback", n)
	}
	if s := conn.PgConn().TxStatus(); s != 'I' {
		t.Fatalf("connection left in transaction status %q", s)
	}
}

// tableIDs returns the ids in table t, in order.
func tableIDs(t *testing.T, db *sql.DB) []int64 {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT id FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

var _ sqldialect.Deferrer = (*pgxexec.PipelineTx)(nil)
