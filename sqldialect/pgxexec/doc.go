// Package pgxexec adapts pgx (github.com/jackc/pgx/v5) to
// [sqldialect.Executor], so that the [sqldialect.Postgres] dialect runs on
// a *pgxpool.Pool, a *pgx.Conn or inside a pgx.Tx, without database/sql:
//
//	ex := pgxexec.New(tx) // tx is a pgx.Tx
//	rows, err := dialect.ClaimOutbox(ctx, ex, params)
//
// # Scanned values
//
// pgx scans into *any as native Go types (int32 for integer, [16]byte for
// uuid, pgtype.Numeric for numeric, time.Time for timestamps, ...), not the
// few types database/sql drivers return. The adapter keeps them, with one
// exception: json and jsonb columns scanned into *any come back as
// [encoding/json.RawMessage] holding the JSON text as the server sent it,
// rather than a map[string]any, so that key order and number literals
// survive (as django-cqrs, which reads them in the database's order, would
// see them). Scans into typed destinations are pgx's own.
//
// Most programs use it through the driver sqldialect/pgxv5, which bundles
// a *pgxpool.Pool with the Postgres dialect and pipelined transactions; use
// the database/sql driver github.com/jackc/pgx/v5/stdlib with package
// sqldialect/databasesql instead when the rest of the program uses
// database/sql.
//
// # Pipelined transactions
//
// [PipelineTx] is a transaction that spends fewer round trips: BEGIN goes
// with the first statement, and statements whose results nobody reads
// ([sqldialect.Deferrer]) go with the next one or with COMMIT. The pgxv5
// driver's RunTx runs a function in one (the Consumer applies its batches
// this way).
package pgxexec
