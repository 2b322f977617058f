// Package tools holds cqrsync's operator tools: the library side of the
// django-cqrs management commands that work on a whole table or queue
// rather than on one event. Package cli runs them as commands; a service
// can call them directly.
//
// # Dump and load
//
// [Dump] writes a master model's rows in django-cqrs's bulk dump format
// (cqrs_bulk_dump) and [Load] applies such a dump to a replica
// (cqrs_bulk_load), through the replica's guarded writes, so a load never
// overwrites a newer row.
//
// # Diff and repair
//
// The diff pipeline speaks django-cqrs's line formats, so a pipe can mix Go
// and Django services: [DiffMaster] | [DiffReplica] | [DiffSync] re-sends
// the rows a replica lacks or holds at another revision, and
// [DeletedDiffReplica] | [DeletedDiffMaster] | [DeletedSyncReplica] deletes
// the replica rows its master no longer has. The master-side tools take a
// [Master] (any *cqrsync.Master[TTx]); they are made of the store
// operations Master.Scan, Master.MissingKeys, Master.SyncQuery,
// Replica.ScanKeys, Replica.Revisions and Replica.DeleteKeys.
//
// # Dead letters
//
// A replica's consumer moves an event it cannot apply to the replica's
// dead-letter queue (transport.DeadLetterQueue), with the reason in the
// cqrsync.HeaderDeadLetterReason header and the time in
// cqrsync.HeaderDeadLetteredAt. [DumpDeadLetters] and [DumpDeadLettersJSONL]
// list them and leave them in place; [RetryDeadLetters] sends them back to
// the replica's queue and [PurgeDeadLetters] removes them, each on the
// dead letters a [DeadLetterFilter] selects (cqrs_dead_letters). Removing
// needs a transport that declares transport.Capabilities.DeadLetterRemove;
// on one that does not (an append-only log) they return an error wrapping
// transport.ErrNotSupported and change nothing.
package tools
