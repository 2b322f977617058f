// Package sqldialect holds the SQL cqrsync runs on each database: the
// transactional outbox, the master's revision bookkeeping, keyset reads, the
// replica's guarded upserts and deletes with tombstones, and introspection.
//
// # Dialects
//
// [SQLite] (modernc.org/sqlite, no cgo), [Postgres] (pgx, through
// database/sql or natively) and [MySQL] (MariaDB 10.6+ and MySQL 8,
// go-sql-driver/mysql). A dialect only builds and runs SQL through an
// [Executor]; it imports no driver. Adapt a *sql.DB, *sql.Tx or *sql.Conn
// with [FromSQL], and pgx pools, connections and transactions with
// pgxexec.New.
//
// # Drivers
//
// A driver bundles a database's dialect, its pool, its transactions and
// its declared [Features]: [DB] for the parts of cqrsync that open their
// own transactions (replica, consumer, relay, tools), [Driver] when a
// caller's transaction of type TTx must be accepted too. Package
// sqldialect/databasesql makes one from a *sql.DB and a dialect;
// sqldialect/pgxv5 from a *pgxpool.Pool, with pipelined transactions. The
// conformance suite sqldialecttest runs through a driver.
//
// # Concurrency
//
// Outbox claims never wait for capturing transactions still open and never
// hand a row to two relays: PostgreSQL uses FOR UPDATE SKIP LOCKED,
// MariaDB a non-locking read then a lease by primary key, SQLite a lease
// (it has one writer). On PostgreSQL a trigger notifies the channel
// cqrs_outbox at commit (see outbox/pglisten). Replica writes are guarded
// statements; [Dialect.LockKeys] serialises one key's events across
// consumer processes where the guards alone would not.
//
// # Schema
//
// [Dialect.Migrate] creates cqrsync's own tables, cqrs_outbox and
// cqrs_tombstones (and on MySQL [CaptureMarksTable], which the capture
// triggers read), from embedded, readable SQL files; [Dialect.MigrationSQL]
// returns that SQL for users who apply migrations with their own tools.
// Master and replica tables are the user's; each needs two more columns:
//
//	cqrs_revision INTEGER NOT NULL DEFAULT 0
//	cqrs_updated  TIMESTAMP (DATETIME on SQLite) NOT NULL
//
// A replica table may have unique keys besides its primary key: an upsert
// only ever writes the row with its own primary key, and a row whose value
// of another unique key a different row holds fails with the database's
// unique violation. On MySQL, tell Upsert and UpsertBatch about such keys
// (UpsertParams.UniqueKeys, from [Column].Unique): ON DUPLICATE KEY UPDATE
// fires for any unique key, so those tables are written by primary key
// instead.
//
// # Capture triggers
//
// [InstallCaptureTriggers] puts triggers on a master table (PostgreSQL,
// MySQL/MariaDB) that capture every write in the database: they keep
// cqrs_revision and cqrs_updated, record tombstones and write row images
// (see [RowImagePrefix]) into cqrs_outbox, which the relay renders into
// events. [MarkLibraryCapture] keeps them off a library capture's own
// statements. Package capture/trigger is the API for users; the tests of
// these functions run there, against the real databases.
//
// # Conformance
//
// Every dialect passes the suite in package sqldialecttest against its real
// database.
package sqldialect
