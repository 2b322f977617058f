// Package pgwal relays events that a PostgreSQL master wrote into the
// write-ahead log (cqrsync.MasterConfig.Outbox = cqrsync.OutboxWAL) to the
// broker.
//
// With the WAL outbox, a capture call adds no outbox row: it writes each
// event with pg_logical_emit_message(true, 'cqrsync', …) in the caller's
// transaction, so the event exists in the log exactly when the change
// commits, and never for a rolled-back transaction. A [Relay] streams the
// committed messages from a logical replication slot (the pgoutput plugin
// with messages on, through github.com/jackc/pglogrepl), publishes them in
// commit order with the broker's confirms, and reports a position back to
// the slot only once the broker confirmed every earlier event. After a
// crash of the relay, the broker or the database, streaming starts again
// from the last confirmed position: nothing is lost, and events published
// but not yet confirmed to the slot are sent again, which replicas drop by
// revision.
//
// # Slot and publication
//
// The relay creates its slot (default "cqrsync") and its publication
// (default "cqrsync", no tables: pgoutput needs one, and the messages need
// no table) when they do not exist, and reuses them after a restart.
// Events captured before the slot existed are not in it: start the relay
// once before switching masters to the WAL outbox. One relay streams a slot
// at a time; a second one logs that the slot is in use and retries with
// backoff, taking over when the first stops.
//
// # A stopped relay keeps WAL
//
// While no relay confirms positions, PostgreSQL keeps every WAL segment
// from the slot's restart position on, however much the whole server
// writes: a relay that stays down fills the disk. Watch [ReadStatus]
// (LagBytes, RetainedBytes; `cqrsync outbox status` prints them) and drop
// a slot you no longer use with [DropSlot] or
// SELECT pg_drop_replication_slot('cqrsync'). docs/wal.md has the details,
// including wal_level = logical on managed databases.
package pgwal
