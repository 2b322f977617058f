package sqldialect

import "context"

// Features are what a driver declares it can do beyond the [Executor]
// contract, so that callers need not probe with type assertions.
type Features struct {
	// Pipeline reports that the Executor RunTx passes implements
	// [Deferrer]: statements whose results nobody reads travel with the
	// next one, saving round trips.
	Pipeline bool
}

// DB is one database reached through one driver: its dialect, a pool for
// statements outside a transaction, and transactions the driver opens
// itself. The parts of cqrsync that never see a caller's transaction (the
// replica, the consumer, the outbox relay and the operator tools) take a
// DB. Package sqldialect/databasesql makes one from a *sql.DB and
// sqldialect/pgxv5 from a *pgxpool.Pool.
type DB interface {
	// Dialect is the SQL dialect of the database.
	Dialect() Dialect
	// Pool runs statements outside any transaction; each call may use a
	// different connection.
	Pool() Executor
	// RunTx runs fn in one transaction and commits it if fn returns nil;
	// otherwise it rolls back and returns fn's error. Errors that start or
	// end the transaction say so ("begin: …", "commit: …").
	RunTx(ctx context.Context, fn func(ctx context.Context, ex Executor) error) error
	// Features declares what the driver can do.
	Features() Features
}

// Driver is a [DB] whose transactions a caller may also open himself, as
// a value of type TTx (*sql.Tx for database/sql, pgx.Tx for pgx): UnwrapTx
// turns one into an Executor that runs inside it. The master, which writes
// its outbox rows in the caller's business transaction, takes a Driver.
type Driver[TTx any] interface {
	DB
	// UnwrapTx returns an Executor that runs statements inside tx.
	UnwrapTx(tx TTx) Executor
}
