// Package databasesql is the cqrsync driver for database/sql: it bundles
// a *sql.DB with the [sqldialect.Dialect] of the database behind it, and
// runs transactions as plain *sql.Tx.
//
//	drv := databasesql.New(db, sqldialect.MySQL())
//
// Any database/sql driver serves, pgx's stdlib one included; for pgx's
// pipelined transactions use package sqldialect/pgxv5 on a *pgxpool.Pool.
package databasesql

import (
	"context"
	"database/sql"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// Driver is a *sql.DB with its dialect. It implements
// sqldialect.Driver[*sql.Tx].
type Driver struct {
	db      *sql.DB
	dialect sqldialect.Dialect
}

var _ sqldialect.Driver[*sql.Tx] = (*Driver)(nil)

// New returns the driver for db, whose database speaks dialect d
// (sqldialect.Postgres(), sqldialect.MySQL() or sqldialect.SQLite()). It
// panics if db or d is nil: both are required.
func New(db *sql.DB, d sqldialect.Dialect) *Driver {
	if db == nil {
		panic("databasesql.New: db is nil: pass an open *sql.DB")
	}
	if d == nil {
		panic("databasesql.New: dialect is nil: pass the database's dialect, e.g. sqldialect.Postgres()")
	}
	return &Driver{db: db, dialect: d}
}

// DB returns the *sql.DB the driver was made with.
func (d *Driver) DB() *sql.DB { return d.db }

// Dialect returns the database's dialect.
func (d *Driver) Dialect() sqldialect.Dialect { return d.dialect }

// Pool returns an Executor on the *sql.DB.
func (d *Driver) Pool() sqldialect.Executor { return sqldialect.FromSQL(d.db) }

// RunTx runs fn in a *sql.Tx and commits it if fn returns nil; otherwise
// it rolls back and returns fn's error.
func (d *Driver) RunTx(ctx context.Context, fn func(ctx context.Context, ex sqldialect.Executor) error) error {
	return sqldialect.RunTx(ctx, d.db, func(ex sqldialect.Executor) error { return fn(ctx, ex) })
}

// UnwrapTx returns an Executor that runs inside tx.
func (d *Driver) UnwrapTx(tx *sql.Tx) sqldialect.Executor { return sqldialect.FromSQL(tx) }

// Features declares what the driver can do: database/sql transactions are
// not pipelined.
func (d *Driver) Features() sqldialect.Features { return sqldialect.Features{} }
