// Package tools holds cqrsync's operator tools, the library side of the
// `cqrsync` commands that work on a queue rather than on one event: the
// dead-letter tools (dump, retry, purge; django-cqrs's cqrs_dead_letters).
//
// # Dead letters
//
// A replica's consumer moves an event it cannot apply to the replica's
// dead-letter queue (transport.DeadLetterQueue), with the reason in the
// cqrsync.HeaderDeadLetterReason header and the time in
// cqrsync.HeaderDeadLetteredAt. [DumpDeadLetters] and [DumpDeadLettersJSONL]
// list them and leave them in place; [RetryDeadLetters] sends them back to
// the replica's queue and [PurgeDeadLetters] removes them, each on the
// dead letters a [DeadLetterFilter] selects. Removing needs a transport that
// declares transport.Capabilities.DeadLetterRemove; on one that does not
// (an append-only log) they return an error wrapping
// transport.ErrNotSupported and change nothing.
package tools
