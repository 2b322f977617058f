package sqldialect

import (
	"context"
	"database/sql"
	"fmt"
)

// Rows is a result set being read. *sql.Rows satisfies it; other drivers
// (pgx) are adapted to it.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Columns() ([]string, error)
	Err() error
	Close() error
}

// Executor runs SQL on a connection or inside a transaction. Every dialect
// method takes one, so the same code serves a *sql.DB, a *sql.Tx and, through
// adapters, other drivers' transactions.
type Executor interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query runs a query. The caller closes the rows.
	Query(ctx context.Context, query string, args ...any) (Rows, error)
}

// SQLQuerier is what *sql.DB, *sql.Tx and *sql.Conn have in common.
type SQLQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// FromSQL adapts a database/sql handle (*sql.DB, *sql.Tx or *sql.Conn) to an
// Executor.
func FromSQL(q SQLQuerier) Executor { return sqlExecutor{q} }

type sqlExecutor struct{ q SQLQuerier }

// SQLOf returns the database/sql handle an Executor made by FromSQL runs
// on (a *sql.Tx inside a transaction), so code that needs the handle
// itself — an ORM's session in a replica handler — can join the
// transaction. ok is false for other Executors (pgx's).
func SQLOf(ex Executor) (q SQLQuerier, ok bool) {
	if e, is := ex.(sqlExecutor); is {
		return e.q, true
	}
	return nil, false
}

func (e sqlExecutor) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := e.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		// Some drivers cannot count; the statement itself succeeded.
		return -1, nil //nolint:nilerr // RowsAffected is optional in database/sql.
	}
	return n, nil
}

func (e sqlExecutor) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	rows, err := e.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// Deferrer is an Executor that can hold back a statement whose result
// nobody reads and send it with the next statement, saving a round trip
// (pgxexec's PipelineTx). The statement's error, if any, is returned by the
// call that sends it. The dialects defer their advisory locks and
// tombstone writes.
type Deferrer interface {
	Defer(ctx context.Context, query string, args ...any)
}

// execDeferred runs a statement whose result is not needed: deferred on a
// Deferrer, at once on any other Executor.
func execDeferred(ctx context.Context, ex Executor, query string, args ...any) error {
	if d, ok := ex.(Deferrer); ok {
		d.Defer(ctx, query, args...)
		return nil
	}
	_, err := ex.Exec(ctx, query, args...)
	return err
}

// TxBeginner is what *sql.DB and *sql.Conn have in common to start a
// transaction.
type TxBeginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// RunTx runs fn in a database/sql transaction on db and commits it if fn
// returns nil; otherwise it rolls back and returns fn's error. Errors that
// start or end the transaction say so ("begin: …", "commit: …").
func RunTx(ctx context.Context, db TxBeginner, fn func(Executor) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(FromSQL(tx)); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
