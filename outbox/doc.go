// Package outbox relays events from the transactional outbox to the broker.
//
// A master's capture calls (cqrsync.Master) write each event into the
// cqrs_outbox table in the same transaction as the change. A [Relay] claims
// committed events in ID order, publishes them, and deletes them only after
// the transport confirmed them, so an event is never lost: if the broker is
// down it waits and tries again; if the process dies, the next relay sends
// what was left. An event may be sent twice (a crash between confirm and
// delete); replicas drop the copy by its revision.
//
// The relay wakes at once when a transaction that captured events in the
// same process commits: pass it as cqrsync.MasterConfig.Relay, and commit
// with cqrsync.RunTx or call Master.Committed after your commit; each
// commit then costs one claim query ([Relay.Wake]). It polls for events
// committed elsewhere (or is woken by outbox/pglisten on PostgreSQL).
// [Relay.Notify], called inside the transaction (MasterConfig.Notify), still
// works, with a short burst of quick polls after each wake.
//
// On PostgreSQL a master may write its events into the write-ahead log
// instead (cqrsync.MasterConfig.Outbox = cqrsync.OutboxWAL): package
// outbox/pgwal relays them from a logical replication slot, with the same
// bytes on the wire and no outbox rows to claim and delete.
//
// Each event's headers (its correlation ID, the trace context a master's
// Propagator injected) go out as the transport message's headers; the body
// is sent byte for byte as captured, bar its expires.
package outbox
