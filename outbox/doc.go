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
// The relay wakes at once when a capture in the same process calls
// [Relay.Notify] (pass it as cqrsync.MasterConfig.Notify), and polls for
// events committed elsewhere.
package outbox
