// Package cqrsync keeps read-only copies of a master service's tables in
// replica services' own SQL databases, through a message broker, speaking the
// wire format of the Python library django-cqrs.
//
// # Master side
//
// A [Master] captures changes of registered tables ([MasterModel]) inside the
// caller's transaction: [Master.Create], [Master.Update], [Master.Delete] and
// [Master.Sync] bump the row's cqrs_revision, read the row back and write a
// [Payload] into the outbox table in the same transaction. The event exists
// exactly when the change commits; a rollback leaves no trace. The relay in
// package outbox publishes committed events and deletes them only after the
// broker confirmed them.
//
// # Replica side
//
// A [Replica] applies events to registered tables ([ReplicaModel]) with
// guarded SQL, by the rules documented on [Replica]. A [Consumer] takes a
// queue's deliveries from a transport, applies them in batches by parallel
// workers (one row's events always on the same worker, in order),
// acknowledges them after commit, and retries or dead-letters the events it
// cannot apply.
//
// # Tools
//
// The operator tools that work on a whole table or queue (bulk dump and
// load, the diff and repair pipelines, dead letters) live in package tools;
// they are made of the store operations here: [Master.Scan],
// [Master.MissingKeys], [Master.SyncQuery], [Replica.ScanKeys],
// [Replica.Revisions] and [Replica.DeleteKeys].
//
// # Wire format
//
// [Payload.AppendJSON] writes exactly the bytes django-cqrs writes (ujson:
// compact, ASCII-only, "\/" escaped) and [DecodePayload] reads what any
// django-cqrs master sends; [WireValue] and [ColumnValue] convert between
// database values and django-cqrs's value formats. The captured vectors in
// testdata/interop are the tests' oracle. The codec and the conversions
// live in internal packages; [Object], [ValueType] and the functions named
// here are their public face.
//
// # Schema
//
// Master and replica tables need two columns besides their own:
//
//	cqrs_revision INTEGER NOT NULL DEFAULT 0
//	cqrs_updated  TIMESTAMP  -- DATETIME on SQLite
//
// and the database needs cqrsync's own tables, created by
// sqldialect.Dialect.Migrate (readable with MigrationSQL).
//
// A replica table may have unique keys of its own besides the primary key
// (an email, say). Events of different keys are applied in parallel, by
// workers and consumer processes, so an event may take a value that
// another row still holds ("7 takes a@x" applied before "5 gives a@x
// up"). Its write then fails with the database's unique violation, on
// every database, and writes nothing. The consumer retries it under its
// [RetryPolicy] (like any constraint violation, it is not [IsRetryable]):
// it goes through once the other row has changed, and goes to the dead
// letters if that takes longer than the policy's retries (by default 30,
// 2 s apart), where it can be retried. The write never lands in the other
// row: on MySQL and MariaDB, whose INSERT … ON DUPLICATE KEY UPDATE fires
// for any unique key, the replica writes the tables with such keys (it
// finds them when it reads the table's columns) with an UPDATE by primary
// key or a plain INSERT instead. When a unique key is added to a MySQL
// replica table while a replica runs, the first event that meets it fails
// with sqldialect.ErrUnknownUniqueKey, writing nothing, and the replica
// reads the table again: its retry fails or goes through as above.
package cqrsync
