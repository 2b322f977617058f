// Package sqldialect holds the SQL cqrsync runs on each database: the
// transactional outbox, the master's revision bookkeeping, keyset reads, the
// replica's guarded upserts and deletes with tombstones, and introspection.
//
// # Dialects
//
// [SQLite] is the first dialect (modernc.org/sqlite, no cgo). A dialect only
// builds and runs SQL through an [Executor]; it imports no driver. Adapt a
// *sql.DB, *sql.Tx or *sql.Conn with [FromSQL].
//
// # Schema
//
// [Dialect.Migrate] creates cqrsync's own tables, cqrs_outbox and
// cqrs_tombstones, from embedded, readable SQL files; [Dialect.MigrationSQL]
// returns that SQL for users who apply migrations with their own tools.
// Master and replica tables are the user's; each needs two more columns:
//
//	cqrs_revision INTEGER NOT NULL DEFAULT 0
//	cqrs_updated  TIMESTAMP (DATETIME on SQLite) NOT NULL
//
// # Conformance
//
// Every dialect passes the suite in package sqldialecttest against its real
// database.
package sqldialect
