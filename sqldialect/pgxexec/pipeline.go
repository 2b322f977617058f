package pgxexec

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// PipelineTx is a transaction on one pgx connection that spends fewer round
// trips than a pgx.Tx: BEGIN travels with the transaction's first
// statement, and statements whose results nobody reads ([PipelineTx.Defer],
// which the dialect uses for its advisory locks and tombstones) travel with
// the next statement that is read, or with COMMIT. A replica batch of
// SAVEs thus costs two round trips (BEGIN, lock and upsert; COMMIT) instead
// of four.
//
// Each statement still runs on its own, in order, with its own snapshot
// (READ COMMITTED), exactly as if sent one by one; only the waiting for the
// network is shared. A deferred statement's error is returned by the call
// that sent it (the next Exec, Query or Commit); the transaction is then
// aborted and must be rolled back.
//
// Like a pgx.Tx, a PipelineTx is not safe for concurrent use, and the rows
// of a Query must be closed before the next call.
type PipelineTx struct {
	conn   *pgx.Conn
	queued pgx.Batch
	begun  bool // BEGIN was sent
	closed bool
}

// BeginPipeline starts a transaction on conn. Nothing is sent until the
// first statement is.
func BeginPipeline(conn *pgx.Conn) *PipelineTx {
	t := &PipelineTx{conn: conn}
	t.queued.Queue("BEGIN")
	return t
}

// ErrTxClosed is returned by a PipelineTx used after Commit or Rollback.
var ErrTxClosed = errors.New("pgxexec: the transaction is already committed or rolled back")

// Defer queues a statement whose result is not read; it is sent with the
// next statement.
func (t *PipelineTx) Defer(_ context.Context, query string, args ...any) {
	t.queued.Queue(query, args...)
}

// send sends the queued statements and query, reads the results of all
// but the last, and returns the batch positioned at the last.
func (t *PipelineTx) send(ctx context.Context, query string, args []any) (pgx.BatchResults, error) {
	if t.closed {
		return nil, ErrTxClosed
	}
	t.queued.Queue(query, args...)
	b := t.queued
	t.queued = pgx.Batch{}
	t.begun = true
	br := t.conn.SendBatch(ctx, &b)
	for _, q := range b.QueuedQueries[:len(b.QueuedQueries)-1] {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, fmt.Errorf("%s: %w", firstLine(q.SQL), err)
		}
	}
	return br, nil
}

// Exec sends the deferred statements and query, and returns the number of
// rows query affected.
func (t *PipelineTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	br, err := t.send(ctx, query, args)
	if err != nil {
		return 0, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// Query sends the deferred statements and query, and returns query's rows.
func (t *PipelineTx) Query(ctx context.Context, query string, args ...any) (sqldialect.Rows, error) {
	br, err := t.send(ctx, query, args)
	if err != nil {
		return nil, err
	}
	r, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{rows: rows{r: r}, br: br}, nil
}

// batchRows are the rows of a batch's last statement; closing them ends the
// batch, so the connection is free again.
type batchRows struct {
	rows
	br pgx.BatchResults
}

func (r *batchRows) Close() error {
	err := r.rows.Close()
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

// Commit sends the deferred statements and COMMIT. A transaction that sent
// nothing commits without a round trip.
func (t *PipelineTx) Commit(ctx context.Context) error {
	if t.closed {
		return ErrTxClosed
	}
	if !t.begun && t.queued.Len() == 1 { // only BEGIN: nothing to do
		t.closed = true
		return nil
	}
	br, err := t.send(ctx, "COMMIT", nil)
	t.closed = true
	if err != nil {
		t.abandon(ctx)
		return err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.abandon(ctx)
		return fmt.Errorf("COMMIT: %w", err)
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// Rollback drops the deferred statements and rolls back what was sent. It
// is safe to call after Commit (it then does nothing).
func (t *PipelineTx) Rollback(ctx context.Context) error {
	if t.closed {
		return nil
	}
	t.closed = true
	t.queued = pgx.Batch{}
	if !t.begun || t.conn.PgConn().TxStatus() == 'I' {
		return nil
	}
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.abandon(ctx)
		return fmt.Errorf("ROLLBACK: %w", err)
	}
	return nil
}

// abandon closes a connection left inside a transaction, so that no later
// user of the pool finds it there.
func (t *PipelineTx) abandon(ctx context.Context) {
	if !t.conn.IsClosed() && t.conn.PgConn().TxStatus() != 'I' {
		_ = t.conn.Close(ctx)
	}
}

// firstLine shortens a statement for an error message: its first line, at
// most about 60 bytes.
func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' || i >= 60 {
			return s[:i] + "…"
		}
	}
	return s
}
