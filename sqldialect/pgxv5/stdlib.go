package pgxv5

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// StdlibDriver is the driver for a *sql.DB opened with pgx's database/sql
// driver ("pgx", package github.com/jackc/pgx/v5/stdlib): the caller keeps
// *sql.Tx transactions, and cqrsync's own transactions are pipelined on the
// pgx connection underneath, as with [Driver]. Choose it explicitly; a
// database/sql driver from package databasesql never pipelines.
type StdlibDriver struct {
	db *sql.DB
}

var _ sqldialect.Driver[*sql.Tx] = (*StdlibDriver)(nil)

// NewStdlib returns the driver for db, which must have been opened with
// pgx's database/sql driver; RunTx reports an error otherwise.
func NewStdlib(db *sql.DB) *StdlibDriver {
	if db == nil {
		panic("pgxv5.NewStdlib: db is nil: pass a *sql.DB opened with the \"pgx\" driver")
	}
	return &StdlibDriver{db: db}
}

// Dialect returns the PostgreSQL dialect.
func (d *StdlibDriver) Dialect() sqldialect.Dialect { return sqldialect.Postgres() }

// Pool returns an Executor that runs each statement on the *sql.DB.
func (d *StdlibDriver) Pool() sqldialect.Executor { return sqldialect.FromSQL(d.db) }

// RunTx runs fn in a pipelined transaction on one of db's connections and
// commits it if fn returns nil; otherwise it rolls back and returns fn's
// error. The Executor fn gets implements [sqldialect.Deferrer].
func (d *StdlibDriver) RunTx(ctx context.Context, fn func(ctx context.Context, ex sqldialect.Executor) error) error {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer conn.Close()
	var runErr error
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("pgxv5.StdlibDriver: the *sql.DB's driver connection is %T, not pgx's: open it with sql.Open(\"pgx\", …) or use package databasesql", dc)
		}
		runErr = runPipelined(ctx, c.Conn(), fn)
		return nil
	})
	if err != nil {
		return err
	}
	return runErr
}

// UnwrapTx returns an Executor that runs inside tx, a transaction the
// caller began on db.
func (d *StdlibDriver) UnwrapTx(tx *sql.Tx) sqldialect.Executor { return sqldialect.FromSQL(tx) }

// Features declares what the driver can do: its transactions are
// pipelined.
func (d *StdlibDriver) Features() sqldialect.Features { return sqldialect.Features{Pipeline: true} }
