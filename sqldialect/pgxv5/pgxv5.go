// Package pgxv5 is the cqrsync driver for pgx (github.com/jackc/pgx/v5)
// on PostgreSQL: it runs on a *pgxpool.Pool with the
// [sqldialect.Postgres] dialect, without database/sql.
//
//	drv := pgxv5.New(pool)
//
// Its transactions are pipelined ([pgxexec.PipelineTx]): BEGIN travels
// with the first statement, and statements whose results nobody reads
// (advisory locks, tombstones) travel with the next one or with COMMIT, so
// a replica batch costs two round trips instead of four. A caller's own
// pgx.Tx is accepted by UnwrapTx.
package pgxv5

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/pgxexec"
)

// Driver is a pgx pool with the Postgres dialect. It implements
// sqldialect.Driver[pgx.Tx].
type Driver struct {
	pool    *pgxpool.Pool
	dialect sqldialect.Dialect
}

var _ sqldialect.Driver[pgx.Tx] = (*Driver)(nil)

// New returns the driver for pool. It panics if pool is nil: it is
// required.
func New(pool *pgxpool.Pool) *Driver {
	if pool == nil {
		panic("pgxv5.New: pool is nil: pass an open *pgxpool.Pool")
	}
	return &Driver{pool: pool, dialect: sqldialect.Postgres()}
}

// PgxPool returns the pool the driver was made with.
func (d *Driver) PgxPool() *pgxpool.Pool { return d.pool }

// Dialect returns sqldialect.Postgres().
func (d *Driver) Dialect() sqldialect.Dialect { return d.dialect }

// Pool returns an Executor on the pool.
func (d *Driver) Pool() sqldialect.Executor { return pgxexec.New(d.pool) }

// RunTx runs fn in a pipelined transaction ([pgxexec.PipelineTx]) on one
// of the pool's connections and commits it if fn returns nil; otherwise it
// rolls back and returns fn's error. The Executor fn gets implements
// [sqldialect.Deferrer].
func (d *Driver) RunTx(ctx context.Context, fn func(ctx context.Context, ex sqldialect.Executor) error) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer conn.Release()
	return runPipelined(ctx, conn.Conn(), fn)
}

// runPipelined runs fn in a pipelined transaction on c and commits it if fn
// returns nil; otherwise it rolls back and returns fn's error.
func runPipelined(ctx context.Context, c *pgx.Conn, fn func(ctx context.Context, ex sqldialect.Executor) error) error {
	t := pgxexec.BeginPipeline(c)
	if err := fn(ctx, t); err != nil {
		if rerr := t.Rollback(ctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return err
	}
	return t.Commit(ctx)
}

// UnwrapTx returns an Executor that runs inside tx, a transaction the
// caller began on this pool (or any pgx connection).
func (d *Driver) UnwrapTx(tx pgx.Tx) sqldialect.Executor { return pgxexec.New(tx) }

// Features declares what the driver can do: its transactions are
// pipelined.
func (d *Driver) Features() sqldialect.Features { return sqldialect.Features{Pipeline: true} }
