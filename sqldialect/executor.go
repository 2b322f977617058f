package sqldialect

import (
	"context"
	"database/sql"
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
