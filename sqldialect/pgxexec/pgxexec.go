package pgxexec

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// Querier is what pgx.Tx, *pgx.Conn, *pgxpool.Pool, *pgxpool.Conn and
// *pgxpool.Tx have in common.
type Querier interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// New adapts a pgx pool, connection or transaction to a
// [sqldialect.Executor]. On a pool, each call may run on a different
// connection; pass a pgx.Tx to run several calls in one transaction.
//
// Exec without arguments runs in pgx's simple protocol and may hold several
// statements (Postgres's Migrate relies on it).
func New(q Querier) sqldialect.Executor { return executor{q} }

type executor struct{ q Querier }

func (e executor) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := e.q.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (e executor) Query(ctx context.Context, query string, args ...any) (sqldialect.Rows, error) {
	r, err := e.q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return &rows{r: r}, nil
}

// rows adapts pgx.Rows to sqldialect.Rows.
type rows struct {
	r pgx.Rows
	// jsonCols are the indexes of json and jsonb columns, found on the first
	// Scan (jsonKnown); scans of them into *any are redirected.
	jsonCols  []int
	jsonKnown bool
	jsonBufs  [][]byte
	redirect  []any
}

func (r *rows) Next() bool { return r.r.Next() }

func (r *rows) Err() error { return r.r.Err() }

// Close closes the rows and reports the error that ended them, if any: pgx
// reports a failed statement only once the rows are read or closed.
func (r *rows) Close() error {
	r.r.Close()
	return r.r.Err()
}

func (r *rows) Columns() ([]string, error) {
	fds := r.r.FieldDescriptions()
	names := make([]string, len(fds))
	for i, fd := range fds {
		names[i] = fd.Name
	}
	return names, nil
}

// Scan is pgx's Scan, except that a json or jsonb column scanned into *any
// gives its JSON text as a json.RawMessage (nil for SQL NULL) instead of
// the map[string]any, []any or float64 that pgx would decode: those lose
// the key order and turn every number into a float64.
func (r *rows) Scan(dest ...any) error {
	if !r.jsonKnown {
		r.jsonKnown = true
		for i, fd := range r.r.FieldDescriptions() {
			if fd.DataTypeOID == pgtype.JSONOID || fd.DataTypeOID == pgtype.JSONBOID {
				r.jsonCols = append(r.jsonCols, i)
			}
		}
		r.jsonBufs = make([][]byte, len(r.jsonCols))
	}
	redirected := false
	for k, i := range r.jsonCols {
		if i >= len(dest) {
			break
		}
		if _, ok := dest[i].(*any); !ok {
			continue
		}
		if !redirected {
			r.redirect = append(r.redirect[:0], dest...)
			redirected = true
		}
		r.redirect[i] = &r.jsonBufs[k]
	}
	if !redirected {
		return r.r.Scan(dest...)
	}
	if err := r.r.Scan(r.redirect...); err != nil {
		return err
	}
	for k, i := range r.jsonCols {
		if i >= len(dest) {
			break
		}
		p, ok := dest[i].(*any)
		if !ok {
			continue
		}
		if buf := r.jsonBufs[k]; buf != nil {
			*p = json.RawMessage(buf)
		} else {
			*p = nil
		}
		r.jsonBufs[k] = nil
	}
	return nil
}
